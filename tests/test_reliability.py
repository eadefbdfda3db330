"""Nothing lost on a crash, a preemption or bad input: real processes, real signals, real files."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import REPO, TINY_RUN, read_metrics, run_train, write_dataset, real_text
from data.loader import Batcher, DataError
from model import GPT, GPTConfig
from runs import CheckpointError, checkpoint_paths, find_checkpoint, load_checkpoint, save_checkpoint


def start_train(args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, os.path.join(REPO, "train.py")] + args, cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=120):
    t = time.time()
    while not os.path.exists(path):
        assert proc.poll() is None, f"train.py ended before {path} appeared:\n{proc.communicate()}"
        assert time.time() - t < timeout, f"{path} did not appear"
        time.sleep(0.02)


def final_state(out_dir):
    return load_checkpoint(checkpoint_paths(str(out_dir))[-1])


def assert_same_run(a_dir, b_dir):
    a, b = read_metrics(a_dir), read_metrics(b_dir)
    key = lambda ms: [(m["iter"], m.get("train_loss"), m.get("val_loss_mean")) for m in ms]
    assert key(a) == key(b)
    sa, sb = final_state(a_dir), final_state(b_dir)
    assert sa["iter_num"] == sb["iter_num"]
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k


RUN = TINY_RUN + ["--max_iters=60", "--lr_decay_iters=60", "--eval_interval=5", "--log_interval=5", "--dropout=0.1"]


@pytest.fixture(scope="module")
def uninterrupted(tiny_dataset, tmp_path_factory):
    """The run every interrupted-and-resumed run must reproduce."""
    out = tmp_path_factory.mktemp("uninterrupted")
    run_train(RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}"])
    return out


def test_sigkill_then_resume_matches_uninterrupted_run_bitwise(tiny_dataset, tmp_path, uninterrupted):
    """CPU fp32 is deterministic, the data order is a function of (seed, step) and the RNG states are in the
    checkpoint, so the resumed run is bitwise the uninterrupted one."""
    args = RUN + [f"--dataset={tiny_dataset}"]
    p = start_train(args + [f"--out_dir={tmp_path / 'crash'}"])
    wait_for(tmp_path / "crash" / "ckpt_0000010.pt", p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    done = final_state(tmp_path / "crash")["iter_num"]
    assert done < 60, "the run finished before it was killed; nothing was tested"
    with open(tmp_path / "crash" / "metrics.jsonl", "a") as f:
        f.write('{"iter": 99, "tokens": 12')  # a line the kill cut short
    run_train(args + [f"--out_dir={tmp_path / 'crash'}", "--init_from=resume"])
    assert_same_run(uninterrupted, tmp_path / "crash")


def test_a_full_disk_while_checkpointing_then_resume_is_bitwise_the_uninterrupted_run(tiny_dataset, tmp_path,
                                                                                     uninterrupted):
    """Checkpoints are written, then the "disk fills" (a file size limit below a checkpoint's size): the next save
    fails with one line, leaves no partial file, and a resume continues from the last whole checkpoint as if the
    failed save had never been tried."""
    out = tmp_path / "run"
    wrapper = tmp_path / "limited_train.py"
    wrapper.write_text(f"""import os, resource, runpy, sys
sys.path.insert(0, {REPO!r})
import runs
save = runs.save_checkpoint
def save_then_fill(ckpt, path):
    save(ckpt, path)
    if not path.endswith("ckpt_0000005.pt"):
        return
    half = os.path.getsize(path) // 2  # metrics.jsonl stays far below it
    resource.setrlimit(resource.RLIMIT_FSIZE, (half, half))
runs.save_checkpoint = save_then_fill
sys.argv = sys.argv[1:]  # [train.py, its arguments...]: run_train puts train.py after the launcher
runpy.run_path(sys.argv[0], run_name="__main__")
""")
    args = RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}"]
    p = run_train(args, check=False, launcher=[sys.executable, str(wrapper)])
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and lines[-1].startswith(f"train.py: cannot write checkpoint {out}/ckpt_0000010.pt: "
                                                      "the file size limit (ulimit -f) is below"), p.stderr
    assert "the earlier checkpoints are whole (newest: ckpt_0000005.pt)" in lines[-1]
    assert "Traceback" not in p.stderr
    assert [f for f in os.listdir(out) if f.startswith("ckpt_0000010") or ".tmp" in f] == []  # no partial file
    assert max(m["iter"] for m in read_metrics(out)) == 10  # it logged past the checkpoint before the save failed
    run_train(RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--init_from=resume"])
    assert_same_run(uninterrupted, out)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_preemption_signal_writes_a_checkpoint_and_exits_cleanly(tiny_dataset, tmp_path, sig, uninterrupted):
    args = RUN + [f"--dataset={tiny_dataset}"]
    p = start_train(args + [f"--out_dir={tmp_path / 'run'}"])
    wait_for(tmp_path / "run" / "ckpt_0000005.pt", p)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert f"stopped by signal {int(sig)} at iter" in out and "--init_from=resume" in out
    stopped = final_state(tmp_path / "run")["iter_num"]
    assert 5 <= stopped < 60 and f"at iter {stopped}:" in out  # the newest checkpoint is the signal's
    run_train(args + [f"--out_dir={tmp_path / 'run'}", "--init_from=resume"])
    assert_same_run(uninterrupted, tmp_path / "run")


def test_last_k_checkpoints_kept_and_damaged_ones_named_and_skipped(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    run_train(RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--max_iters=20", "--keep_checkpoints=2"])
    paths = checkpoint_paths(str(out))
    assert [os.path.basename(p) for p in paths] == ["ckpt_0000015.pt", "ckpt_0000020.pt"]
    newest = paths[-1]
    with open(newest, "r+b") as f:  # truncated: a crash of the disk or the copy, not of our write
        f.truncate(os.path.getsize(newest) // 2)
    with pytest.raises(CheckpointError, match=f"checkpoint {newest} is truncated or corrupted"):
        load_checkpoint(newest)
    logged = []
    ckpt, used = find_checkpoint(str(out), log=logged.append)
    assert used == paths[0] and ckpt["iter_num"] == 15 and newest in logged[0]
    p = run_train(RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--max_iters=20", "--init_from=resume"])
    assert "falling back to the checkpoint before it" in p.stdout and f"resuming from {paths[0]}" in p.stdout


def test_flipped_bytes_inside_a_checkpoint_fail_the_digest(tmp_path):
    m = GPT(GPTConfig(block_size=8, vocab_size=64, n_layer=1, n_head=2, n_embd=16))
    path = str(tmp_path / "ckpt_0000001.pt")
    save_checkpoint({"model": m.state_dict(), "model_args": {}, "iter_num": 1}, path)
    raw = bytearray(open(path, "rb").read())
    w = m.blocks[0].mlp.up_proj.weight.detach().numpy().tobytes()
    at = raw.find(w[:64])  # the tensor's bytes are stored as they are: flip one inside them
    assert at > 0
    raw[at + 10] ^= 0xFF
    open(path, "wb").write(bytes(raw))
    with pytest.raises(CheckpointError, match="is corrupted: its contents .* do not match the digest"):
        load_checkpoint(path)


def test_the_digest_covers_counters_and_settings(tmp_path):
    """A resumed run trusts iter_num, the settings and the RNG states as much as the weights: a changed counter
    fails the digest, as does a checkpoint without one."""
    path = str(tmp_path / "ckpt_0000007.pt")
    save_checkpoint({"model": {"w": torch.ones(2)}, "model_args": {}, "iter_num": 7, "config": {"lr": 1e-3}}, path)
    ckpt = torch.load(path, weights_only=False)
    assert load_checkpoint(path)["iter_num"] == 7
    for changed in (dict(ckpt, iter_num=6), dict(ckpt, config={"lr": 1e-2}),  # a counter or a setting edited
                    {k: v for k, v in ckpt.items() if k != "digest"}):
        torch.save(changed, path)
        with pytest.raises(CheckpointError, match="is corrupted: its contents"):
            load_checkpoint(path)


def test_a_killed_writers_temp_file_is_removed_by_the_next_save(tmp_path):
    import subprocess
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer exists (reaped)
    stale = tmp_path / f"ckpt_0000005.pt.tmp.{dead.pid}"
    stale.write_bytes(b"half a checkpoint, 19 MB in real life")
    mine = tmp_path / f"ckpt_0000005.pt.tmp.{os.getpid()}x"  # not a pid: left alone
    mine.write_bytes(b"")
    save_checkpoint({"model": {"w": torch.ones(1)}, "model_args": {}}, str(tmp_path / "ckpt_0000010.pt"))
    assert sorted(os.listdir(tmp_path)) == sorted(["ckpt_0000010.pt", mine.name])


def test_a_crash_during_a_checkpoint_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint({"model": {"w": torch.ones(3)}, "model_args": {}}, path)

    def dies_halfway(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("killed during the write")
    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {"w": torch.zeros(3)}, "model_args": {}}, path)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temp file left behind


def test_nan_loss_stops_naming_the_step_and_keeps_the_good_checkpoint(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    p = run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--learning_rate=1e30",
                              "--grad_clip=0.0", "--warmup_iters=0"], check=False)
    assert p.returncode != 0
    assert "non-finite training loss at iter 1 (nan_policy='stop'); no checkpoint was written after it" in p.stderr
    assert [os.path.basename(c) for c in checkpoint_paths(str(out))] == ["ckpt_0000000.pt"]
    assert all(torch.isfinite(t).all() for t in final_state(out)["model"].values())


def test_nan_policy_skip_skips_updates_and_never_saves_non_finite_weights(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    p = run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--learning_rate=1e30",
                              "--grad_clip=0.0", "--warmup_iters=0", "--nan_policy=skip"], check=False)
    assert "iter 1: non-finite loss, update skipped (nan_policy='skip')" in p.stdout
    assert p.returncode != 0 and "validation loss is nan; no checkpoint written" in p.stderr
    for c in checkpoint_paths(str(out)):
        assert all(torch.isfinite(t).all() for t in load_checkpoint(c)["model"].values())


def test_float16_skip_without_clipping_and_nan_before_a_growth(tiny_dataset, tmp_path):
    """float16's GradScaler with nan_policy='skip' and no clipping skips, not crashes; a run whose loss went
    non-finite stops before an in-run growth instead of checkpointing a NaN model."""
    p = run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / 'fp16'}", "--dtype=float16",
                              "--grad_clip=0", "--nan_policy=skip", "--learning_rate=1e4", "--max_iters=10"],
                  check=False)
    assert "update skipped (nan_policy='skip')" in p.stdout and "Traceback" not in p.stderr
    out = tmp_path / "grow"
    p = run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--learning_rate=1e9", "--grad_clip=0",
                              "--grow_at_tokens=256", "--log_interval=8"], check=False)
    assert p.returncode != 0 and "non-finite training loss at iter 1" in p.stderr
    assert [os.path.basename(c) for c in checkpoint_paths(str(out))] == ["ckpt_0000000.pt"]


def test_the_last_step_is_saved_eval_only_writes_nothing_and_old_runs_are_not_overwritten(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    # learning_rate=0: the val loss never improves, yet the last step is saved (resume must not redo it)
    run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--learning_rate=0", "--min_lr=0",
                          "--always_save_checkpoint=False", "--max_iters=10", "--eval_interval=5"])
    assert [os.path.basename(c) for c in checkpoint_paths(str(out))] == ["ckpt_0000000.pt", "ckpt_0000010.pt"]
    before = {f: (out / f).read_bytes() for f in os.listdir(out)}
    p = run_train([f"--out_dir={out}", "--init_from=resume", "--eval_only=True"])
    assert "iter 10: val loss" in p.stdout
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == before  # it only printed
    p = run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}"], check=False)
    assert p.returncode != 0 and "holds the checkpoints of an earlier run (newest: ckpt_0000010.pt)" in p.stderr
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == before
    run_train([f"--out_dir={out}", "--init_from=resume", "--max_iters=12"])  # eval_only did not stick
    assert final_state(out)["iter_num"] == 12


# --- data refused before training starts -------------------------------------------------------------------------

@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "ds", {k: v[:20000] for k, v in real_text().items()})


def test_data_errors_say_what_to_do(dataset, tmp_path):
    with pytest.raises(DataError, match="does not exist: build it first with `python data/prepare.py`"):
        Batcher(str(tmp_path / "none"), 32, 4)
    open(os.path.join(dataset, "code", "val.bin"), "wb").close()
    with pytest.raises(DataError, match="code/val.bin is empty; give domain 'code' more text"):
        Batcher(dataset, 32, 4)
    np.arange(10, dtype=np.uint16).tofile(os.path.join(dataset, "code", "val.bin"))
    with pytest.raises(DataError, match="holds 10 tokens but .*meta.json counts"):  # not the file prepare.py wrote
        Batcher(dataset, 32, 4)
    meta_path = os.path.join(dataset, "meta.json")
    meta = json.load(open(meta_path))
    meta["domains"]["code"]["val_tokens"] = 10  # a dataset whose val split really is that short
    json.dump(meta, open(meta_path, "w"))
    with pytest.raises(DataError, match="holds 10 tokens, fewer than block_size \\+ 1 = 33: lower block_size"):
        Batcher(dataset, 32, 4)
    with open(os.path.join(dataset, "code", "val.bin"), "ab") as f:
        f.write(b"\x01")  # an odd byte: not whole uint16 tokens
    with pytest.raises(DataError, match="not a whole number of uint16 tokens"):
        Batcher(dataset, 8, 4)
    os.remove(os.path.join(dataset, "meta.json"))
    with pytest.raises(DataError, match="meta.json is missing"):
        Batcher(dataset, 8, 4)


def test_tokens_outside_the_vocabulary_and_a_disagreeing_meta_are_refused(dataset, tmp_path):
    with pytest.raises(DataError, match="tokenizer 'byte' has 256 tokens but the model's vocab_size is 128"):
        Batcher(dataset, 32, 4, model_vocab_size=128)
    ids = np.fromfile(os.path.join(dataset, "prose", "train.bin"), dtype=np.uint16)
    ids[5] = 300
    ids.tofile(os.path.join(dataset, "prose", "train.bin"))
    with pytest.raises(DataError, match="prose/train holds token id 300, outside the vocabulary of size 256"):
        Batcher(dataset, 32, 4)
    p = run_train(TINY_RUN + [f"--dataset={dataset}", f"--out_dir={tmp_path / 'o'}"], check=False)
    assert p.returncode != 0 and "outside the vocabulary of size 256" in p.stderr
    assert not os.path.exists(tmp_path / "o" / "ckpt_0000000.pt")


def test_ddp_rank_death_is_reported_and_resume_continues(tiny_dataset, tmp_path):
    """One of two torchrun workers is killed: torchrun reports the failure and exits non-zero; relaunching the
    same command with --init_from=resume continues from the last checkpoint to the end. The default accumulation
    (1) is rounded up to the 2 processes, in one line."""
    out = tmp_path / "run"
    args = RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--max_iters=30"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen(torchrun + [os.path.join(REPO, "train.py")] + args, cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out / "ckpt_0000010.pt", p)
    rank1 = [pid for pid in _descendants(p.pid) if "RANK=1" in _environ(pid).split("\n")]
    assert rank1, "no rank-1 worker found"
    os.kill(rank1[0], signal.SIGKILL)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode != 0 and "train.py FAILED" in stderr and "Signal 9 (SIGKILL)" in stderr
    assert "gradient_accumulation_steps=1 rounded up to 2, a multiple of the 2 processes" in stdout
    run_train(args + ["--init_from=resume"], launcher=torchrun)
    assert final_state(out)["iter_num"] == 30


def _descendants(pid):
    kids = []
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/children") as f:
            kids += [int(c) for c in f.read().split()]
    return kids + [d for k in kids for d in _descendants(k)]


def _environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return "\n".join(e.decode(errors="replace") for e in f.read().split(b"\0"))
