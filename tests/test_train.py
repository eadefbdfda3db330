"""train.py as users run it: real processes on a tiny real-text dataset (CPU, fp32)."""
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import REPO, TINY_RUN, read_metrics, run_train
from configurator import ConfigError, apply_overrides
from runs import checkpoint_paths, load_checkpoint


def evals(metrics):
    return [m for m in metrics if "val_loss" in m]


def trains(metrics):
    return [m for m in metrics if "train_loss" in m]


def test_training_lowers_loss_and_writes_checkpoints(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--max_iters=40", "--eval_interval=20"])
    m = read_metrics(out)
    ev = evals(m)
    assert [e["iter"] for e in ev] == [0, 20, 40]
    assert ev[-1]["val_loss_mean"] < ev[0]["val_loss_mean"] - 1.0, ev  # from ~ln(256)=5.5 down by > 1 nat
    assert set(ev[-1]["val_loss"]) == {"code", "prose"}
    assert trains(m)[-1]["tokens"] == 40 * 4 * 32 and trains(m)[-1]["flops"] > 0
    ckpts = checkpoint_paths(str(out))
    assert [os.path.basename(p) for p in ckpts] == ["ckpt_0000020.pt", "ckpt_0000040.pt"]  # keep_checkpoints=2
    ck = load_checkpoint(ckpts[-1])
    assert ck["iter_num"] == 40 and ck["model_args"]["n_layer"] == 2 and ck["sampler"]["step"] == 40
    assert os.path.exists(out / "config.json")


TWO_PROCESS_RUN = TINY_RUN + ["--gradient_accumulation_steps=2", "--max_iters=10", "--log_interval=1",
                               "--eval_interval=5", "--eval_iters=3"]


@pytest.fixture(scope="module")
def one_process(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    run_train(TWO_PROCESS_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}"])
    return out


def test_two_processes_follow_the_single_process_trajectory(tiny_dataset, tmp_path, one_process):
    """torchrun --nproc_per_node=2 (gloo, DDP) with the same global batch sees
    the same sequences as one process, so it follows the same losses (up to float summation order). (Exact resume
    is tested with real signals in test_reliability.py.)"""
    common = TWO_PROCESS_RUN + [f"--dataset={tiny_dataset}"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run_train(common + [f"--out_dir={tmp_path / 'two'}"], launcher=torchrun)
    one, two = trains(read_metrics(one_process)), trains(read_metrics(tmp_path / "two"))
    assert len(one) == len(two) == 10
    for a, b in zip(one, two):
        assert a["tokens"] == b["tokens"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4), (a, b)
    va, vb = evals(read_metrics(one_process))[-1], evals(read_metrics(tmp_path / "two"))[-1]
    assert va["val_loss_mean"] == pytest.approx(vb["val_loss_mean"], abs=1e-4)
    a, b = load_checkpoint(checkpoint_paths(str(one_process))[-1]), load_checkpoint(checkpoint_paths(str(tmp_path / "two"))[-1])
    assert set(a["model"]) == set(b["model"])
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=1e-4)


def test_total_batch_tokens_sets_accumulation(tiny_dataset, tmp_path):
    run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path}", "--max_iters=2",
                          "--total_batch_tokens=512", "--log_interval=1"])
    assert trains(read_metrics(tmp_path))[0]["tokens"] == 512  # 4 seqs x 32 tokens x 4 micro-steps


def test_bad_config_key_and_type_are_named():
    defaults = {"batch_size": 16, "learning_rate": 1e-3, "mixture": None, "compile": True}
    with pytest.raises(ConfigError, match=r"unknown setting 'bach_size'.*did you mean 'batch_size'.*Valid settings: "
                                          r"batch_size, compile, learning_rate, mixture"):
        apply_overrides(defaults, ["--bach_size=3"])
    with pytest.raises(ConfigError, match="'batch_size' in the command line must be int like its default 16, got str"):
        apply_overrides(defaults, ["--batch_size=lots"])
    with pytest.raises(ConfigError, match="does not exist"):
        apply_overrides(defaults, ["nope.py"])
    got = apply_overrides(defaults, ["--learning_rate=1", "--mixture={'a': 1.0}", "--compile=False", "--batch_size=1e2"])
    assert got == {"batch_size": 100, "learning_rate": 1.0, "mixture": {"a": 1.0}, "compile": False}
    with pytest.raises(ConfigError, match="must be int like its default 16, got float 2.5"):
        apply_overrides(defaults, ["--batch_size=2.5"])


def test_bad_key_in_config_file_stops_train_py(tmp_path, tiny_dataset):
    cfg = tmp_path / "cfg.py"
    cfg.write_text("import math\nn_layers = 4\n")
    p = run_train([str(cfg), f"--dataset={tiny_dataset}"], check=False)
    assert p.returncode != 0 and f"unknown setting 'n_layers' in {cfg} (did you mean 'n_layer'?)" in p.stderr
    assert "Traceback" not in p.stderr
    # a setting whose default is None takes any type in the configurator: train.py checks it
    p = run_train([f"--dataset={tiny_dataset}", "--lr_decay_iters=abc", f"--out_dir={tmp_path / 'o'}"], check=False)
    assert p.returncode != 0 and "lr_decay_iters='abc': must be of type int, or None" in p.stderr


def test_bench_times_any_train_config_and_the_grown_model():
    """bench.py takes train.py's settings; after --grow_at_tokens it times the grown model (timings are printed,
    never asserted: machines are noisy)."""
    import subprocess
    from conftest import REPO
    cmd = [sys.executable, os.path.join(REPO, "bench.py"), "--n_layer=2", "--n_head=2", "--n_embd=32",
           "--block_size=32", "--batch_size=2", "--warmup=1", "--steps=2", "--device=cpu", "--peak_flops=1e12",
           "--grow_at_tokens=1", "--grow_factor=3", "--total_batch_tokens=256"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "gpt2 6L 32d" in p.stdout  # the grown model (2 layers stacked 3 times) is what was timed
    assert "batch 2x32x4" in p.stdout  # a step of total_batch_tokens, as train.py takes it
    assert "ms/iter" in p.stdout and "tokens/s" in p.stdout and "MFU " in p.stdout and "peak RSS" in p.stdout


def test_missing_dataset_and_data_file_are_clear(tmp_path, tiny_dataset):
    p = run_train(TINY_RUN + [f"--dataset={tmp_path / 'nothing'}", f"--out_dir={tmp_path / 'o'}"], check=False)
    assert p.returncode != 0 and "does not exist: build it first with `python data/prepare.py`" in p.stderr
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    os.remove(broken / "prose" / "val.bin")
    p = run_train(TINY_RUN + [f"--dataset={broken}", f"--out_dir={tmp_path / 'o'}"], check=False)
    assert p.returncode != 0 and f"token file {broken}/prose/val.bin is missing" in p.stderr
    assert "Traceback" not in p.stderr
    p = run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / 'o'}", "--mixture=entropy"],
                  check=False)
    assert p.returncode != 0 and "mixture='entropy': " in p.stderr and "Traceback" not in p.stderr


def test_notices_a_moved_cosine_on_resume_and_a_gpu_sized_run_on_a_cpu(tiny_dataset, tmp_path):
    args = TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / 'r'}", "--warmup_iters=2"]
    run_train(args + ["--max_iters=10"])
    p = run_train(args + ["--max_iters=20", "--init_from=resume"])
    assert re.search(r"note: the cosine now ends at iter 20, not at 10 as the run began, so the learning rate at iter "
                     r"10 is now [0-9.e-]+; --lr_decay_iters=10 keeps the run's schedule", p.stdout), p.stdout
    p = run_train(args + ["--max_iters=30", "--init_from=resume", "--lr_decay_iters=20"])
    assert "note: the cosine" not in p.stdout  # the run's own schedule: nothing to say
    big = subprocess.Popen([sys.executable, os.path.join(REPO, "train.py"), *TINY_RUN, f"--dataset={tiny_dataset}",
                            f"--out_dir={tmp_path / 'big'}", "--max_iters=1000000000"], cwd=REPO,
                           stdout=subprocess.PIPE, text=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:  # said before the first step (which is not waited for)
        assert any("hours on a CPU at 100 GFLOP/s: is this config meant for a GPU?" in line for line in big.stdout)
    finally:
        big.kill()
        big.wait()
