"""The GPU job runner and bench.py, exercised on the CPU with tiny shapes, so neither breaks unnoticed between the
rare GPU leases."""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "experiments"))


def test_dry_run_measures_every_step_and_resumes(tmp_path, tiny_dataset):
    cmd = [sys.executable, "experiments/gpu_jobs.py", "--dry-run", "--device=cpu", f"--results={tmp_path}",
           f"--dataset={tiny_dataset}", "--minutes=5"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=300)
    data = json.loads((tmp_path / "speed" / "results.json").read_text())
    steps = data["steps"]
    assert {"env", "cuda_checks", "train_smoke", "growth", "switches", "attention", "microbatch_2",
            "microbatch_8"} <= set(steps)
    assert not [k for k, v in steps.items() if "error" in v]
    assert steps["cuda_checks"]["ok"] and steps["cuda_checks"]["max_abs_diff"]["gpt2: depth zero growth gap"] < 1e-5
    # on a CPU both train.py runs are eager float32 with one seed: identical losses, and training lowers them
    smoke = steps["train_smoke"]
    assert smoke["final_gap"] == 0.0 and smoke["runs"]["eager"]["val"][-1][1] < smoke["runs"]["eager"]["val"][0][1]
    for v in ("growth", "switches", "attention"):
        res = steps[v]["results"]
        assert set(res) == set(steps[v]["variants"]) and all(r["tokens_per_s"] > 0 for r in res.values())
    assert set(steps["attention"]["results"]) == {"attention=auto", "attention=flash", "attention=math"}
    md = (tmp_path / "speed" / "results.md").read_text()
    assert "## Numerics on the device" in md and "grown x2 (direct)" in md
    # a second call finds every step measured and runs none of them again
    walls = {k: v["wall_s"] for k, v in steps.items()}
    out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True, timeout=300).stdout
    again = json.loads((tmp_path / "speed" / "results.json").read_text())["steps"]
    assert {k: v["wall_s"] for k, v in again.items()} == walls and "estimated" not in out
    listing = subprocess.run(cmd[:2] + ["--list", f"--results={tmp_path}"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout
    assert listing.startswith("speed: env, cuda_checks")


def test_a_step_runs_only_when_it_fits_and_a_failed_step_runs_again(tmp_path):
    import gpu_jobs
    job = gpu_jobs.Job("j", "t", str(tmp_path), time.time() + 30, True, "cpu", "", lambda j: "")
    assert job.step("big", 60, lambda: {"x": 1}) is None  # 60 s estimated, 30 s left
    assert job.step("bad", 1, lambda: 1 / 0)["error"].startswith("ZeroDivisionError")
    assert job.step("bad", 1, lambda: {"x": 2})["x"] == 2
    assert job.step("bad", 1, lambda: {"x": 3})["x"] == 2  # measured: kept
    assert json.loads((tmp_path / "results.json").read_text())["steps"]["bad"]["x"] == 2


def test_bench_cpu_defaults_and_clear_errors(tmp_path):
    import bench
    s = bench.settings(["--device=cpu"])
    assert (s["n_layer"], s["n_embd"], s["block_size"]) == (4, 128, 64)  # not 124M on a CPU
    assert bench.settings(["--device=cpu", "--n_layer=2"])["n_layer"] == 2
    from configurator import ConfigError
    with pytest.raises(ConfigError, match="attention='fast'"):
        bench.settings(["--device=cpu", "--attention=fast"])
    with pytest.raises(ConfigError, match="no model.py there"):
        bench.build_nanogpt(s, str(tmp_path))
    r = subprocess.run([sys.executable, "bench.py", "--device=cuda"] if not _has_cuda() else ["true"], cwd=REPO,
                       capture_output=True, text=True)
    if not _has_cuda():
        lines = r.stderr.strip().splitlines()  # one line, whether torch is a CPU build or sees no GPU
        assert r.returncode == 1 and len(lines) == 1
        assert lines[0].startswith("bench.py: device='cuda', but this machine has") and "use --device=cpu" in lines[0]


def test_bench_against_a_nanogpt_checkout_times_both_in_turns(capsys):
    import bench
    res = bench.main(["--device=cpu", "--nanogpt=tests/fixtures/nanogpt_standin", "--steps=1", "--rounds=4",
                      "--warmup=1", "--n_layer=1", "--n_embd=32", "--n_head=2", "--block_size=16", "--batch_size=2"])
    assert set(res) == {"nanogrow", "nanoGPT"} and all(len(r["rounds_ms"]) == 4 for r in res.values())
    out = capsys.readouterr().out
    assert "step time nanogrow / nanoGPT: median" in out and "over 4 pairs of 1 step(s)" in out


def _has_cuda():
    import torch
    return torch.cuda.is_available()
