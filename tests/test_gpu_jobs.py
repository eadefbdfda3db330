"""tools/gpu_jobs.py and bench.py, exercised on a CPU with tiny shapes, so that neither breaks unnoticed between GPU
runs: the speed job, and the experiment jobs (dry runs on tiny shapes; the four run in two processes at once, ~30-60 s
on 2 cores)."""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
RUNNER = os.path.join("tools", "gpu_jobs.py")


def test_speed_dry_run_measures_every_step_and_resumes(tmp_path):
    cmd = [sys.executable, RUNNER, "--dry-run", "--device=cpu", f"--results={tmp_path}", "--minutes=5", "--only=speed"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=300)
    steps = json.loads((tmp_path / "speed" / "results.json").read_text())["steps"]
    assert set(steps) == {"cuda_checks", "switches", "microbatch_2", "microbatch_8"}  # no nanoGPT here
    assert not [k for k, v in steps.items() if "error" in v]
    assert steps["cuda_checks"]["ok"] and steps["cuda_checks"]["max_abs_diff"]["gpt2: depth zero growth gap"] < 1e-5
    for v in ("switches", "microbatch_8"):
        res = steps[v]["results"]
        assert set(res) == set(steps[v]["variants"]) and all(r["tokens_per_s"] > 0 for r in res.values())
    assert set(steps["switches"]["results"]) == {"all on", "no compile", "float32 (TF32)", "for-each AdamW",
                                                 "tanh GELU (GPT-2's own)"}
    md = (tmp_path / "speed" / "results.md").read_text()
    assert table_rows(md)[:4] == ["cuda_checks", "switches", "microbatch_2", "microbatch_8"]  # the steps' table
    assert "## switches: 2 layers" in md and "| for-each AdamW | 12 |" in md and "| nanogrow B=8 | 8 |" in md
    # a second call finds every step measured and runs none of them again
    walls = {k: v["wall_s"] for k, v in steps.items()}
    out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True, timeout=300).stdout
    again = json.loads((tmp_path / "speed" / "results.json").read_text())["steps"]
    assert {k: v["wall_s"] for k, v in again.items()} == walls and "estimated" not in out
    listing = subprocess.run(cmd[:2] + ["--list", f"--results={tmp_path}"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout
    assert listing.startswith("speed: cuda_checks, switches")


def test_results_with_steps_the_runner_does_not_take_are_read(tmp_path):
    """docs/results/gpu/ may hold results of steps this runner does not take (dropped ones, or superseded ones kept
    as <step>@<version>): they are read and kept in results.json, the superseded ones are left out of results.md,
    and a step missing under its own name is run."""
    import gpu_jobs
    shutil.copytree(os.path.join(REPO, "docs", "results", "gpu"), tmp_path, dirs_exist_ok=True)
    opts = argparse.Namespace(results=str(tmp_path), deadline=time.time() + 60)
    for name in gpu_jobs.JOBS:
        job = gpu_jobs.Job(name, opts)
        steps = dict(job.data["steps"])
        job.save()
        assert json.loads((tmp_path / name / "results.json").read_text())["steps"] == steps
        assert (tmp_path / name / "results.md").read_text().startswith(f"# GPU job `{name}`")
    job = gpu_jobs.Job("speed", opts)
    job.data["steps"]["microbatch_16@old"] = dict(job.data["steps"].pop("microbatch_16", {}), note="another model")
    job.save()
    assert "@old" not in (tmp_path / "speed" / "results.md").read_text() and not job.ok("microbatch_16")
    assert job.step("microbatch_16", 1, lambda: {"x": 1})["x"] == 1
    assert subprocess.run([sys.executable, RUNNER, "--list"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.startswith("speed: ")


def test_a_step_runs_only_when_it_fits_and_a_failed_step_runs_again(tmp_path):
    import gpu_jobs
    job = gpu_jobs.Job("j", argparse.Namespace(results=str(tmp_path), deadline=time.time() + 30))
    assert job.step("big", 60, lambda: {"x": 1}) is None  # 60 s estimated, 30 s left
    assert job.step("bad", 1, lambda: 1 / 0)["error"].startswith("ZeroDivisionError")
    assert job.step("bad", 1, lambda: {"x": 2})["x"] == 2
    assert job.step("bad", 1, lambda: {"x": 3})["x"] == 2  # measured: kept
    assert json.loads((tmp_path / "j" / "results.json").read_text())["steps"]["bad"]["x"] == 2

    def script_error():  # an experiment script's own one-line error: a failed step too, not the runner's end
        raise SystemExit("arm x: train.py failed")
    assert job.step("script", 1, script_error)["error"] == "SystemExit: arm x: train.py failed"
    assert "| script | error (below) |" in (tmp_path / "j" / "results.md").read_text()


def test_bench_cpu_defaults_and_clear_errors(tmp_path):
    import bench
    s = bench.settings(["--device=cpu"])
    assert (s["n_layer"], s["n_embd"], s["block_size"]) == (4, 128, 64)  # not 124M on a CPU
    assert bench.settings(["--device=cpu", "--n_layer=2"])["n_layer"] == 2
    from configurator import ConfigError
    with pytest.raises(ConfigError, match="adamw='fast': must be one of own, fused, foreach"):
        bench.settings(["--device=cpu", "--adamw=fast"])
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


def test_bench_adamw_kernel_is_the_one_asked_for():
    """make_step(fused=False) is the for-each kernel even where the model's own groups say fused (a group's own
    'fused' key used to win over the constructor's, so 'for-each instead of fused' timed fused twice)."""
    import bench
    from configurator import ConfigError
    s = bench.settings(["--device=cpu", "--n_layer=1", "--n_embd=32", "--n_head=2", "--block_size=16"])
    kernels = {f: {(g["fused"], g["foreach"]) for g in bench.make_step(bench.build_ours(s), s, f).optimizer.param_groups}
               for f in (None, False, True)}
    assert kernels == {None: {(True, False)}, False: {(False, True)}, True: {(True, False)}}
    with pytest.raises(ConfigError, match="adamw='adam'"):
        bench.settings(["--device=cpu", "--adamw=adam"])


def _has_cuda():
    import torch
    return torch.cuda.is_available()


# -------------------------------------------------------------------------------------------------------------
# the experiment jobs at the gpu scale, dry-run on tiny shapes

EXPERIMENT_JOBS = {"gstack": ["scratch", "gstack"], "inheritune": ["reference", "inherit", "scratch_T", "scratch_2T"],
                   "bimix": ["natural", "uniform", "ce", "fitted"],
                   "operators": ["scratch", "gstack", "depth_zero", "depth_random", "depth_learn", "width_direct",
                                 "width_zero", "width_random", "width_learn"]}


def dry_cmd(root, dataset, only, work="work"):
    return [sys.executable, RUNNER, "--dry-run", "--device=cpu", f"--results={root / 'results'}",
            f"--work={root / work}", f"--dataset={dataset}", "--minutes=5", f"--only={only}"]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, tiny_dataset):
    """The four experiment jobs' dry runs, two processes at once (2 cores, one thread each): gstack then operators
    (which borrows gstack's scratch and Gstack arms), inheritune then bimix. Returns the root folder."""
    root = tmp_path_factory.mktemp("gpu_jobs")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = []
    for only in ("gstack,operators", "inheritune,bimix"):
        log = open(root / f"{only}.log", "w")  # a file, not a pipe: neither process waits for the test to read
        procs.append((only, log, subprocess.Popen(dry_cmd(root, tiny_dataset, only), cwd=REPO, env=env,
                                                  stdout=log, stderr=subprocess.STDOUT)))
    for only, log, p in procs:
        p.wait(timeout=600)
        log.close()
        assert p.returncode == 0, (root / f"{only}.log").read_text()[-4000:]
    return root


def job_files(root, name):
    return {"json": json.loads((root / "results" / name / "results.json").read_text()),
            "md": (root / "results" / name / "results.md").read_text(),
            "report": (root / "results" / name / "experiment.md").read_text(),
            "experiment": json.loads((root / "results" / name / "experiment.json").read_text())}


def table_rows(md):
    """The first cell of every body row of the markdown tables in md (headers and rules left out)."""
    lines = md.splitlines() + [""]
    return [line.split("|")[1].strip() for line, after in zip(lines, lines[1:])
            if line.startswith("| ") and not line.startswith("| ---") and not after.startswith("| ---")]


@pytest.mark.parametrize("name", list(EXPERIMENT_JOBS))
def test_experiment_job_keeps_every_arm(jobs, name):
    """Every step measured without error, a row per step in the job's results.md and a row per arm in the
    experiment's own report (experiment.md), each arm's small files kept for a later call, and no path of this
    machine in any file of the job folder."""
    import gpu_jobs
    f = job_files(jobs, name)
    steps = f["json"]["steps"]
    assert list(steps) == gpu_jobs.SPECS[name][1]
    assert not [k for k, v in steps.items() if "error" in v]
    arms = EXPERIMENT_JOBS[name]
    assert set(f["experiment"]["arms"]) == set(arms)
    assert table_rows(f["md"]) == gpu_jobs.SPECS[name][1]  # the steps table: one row a step
    for arm in arms:
        assert arm in table_rows(f["report"]), (name, arm)  # the experiment's table: one row an arm
        assert f["experiment"]["arms"][arm]["val_loss_mean"] > 0
        saved = jobs / "results" / name / "runs" / arm
        assert {"arm.json", "config.json", "metrics.jsonl", "train.log"} <= {p.name for p in saved.iterdir()}
    for step, res in steps.items():  # each step's own arms carry their final evaluation
        for arm, row in res["arms"].items():
            assert row["val_loss_mean"] == f["experiment"]["arms"][arm]["val_loss_mean"], (step, arm)
    if importlib.util.find_spec("matplotlib"):  # optional: CI's venv has none, and the job then writes no plot
        assert any(p.suffix == ".png" for p in (jobs / "results" / name).iterdir())
    for p in (jobs / "results" / name).rglob("*"):
        if p.is_file() and p.suffix != ".png":
            text = p.read_text()
            assert REPO not in text and str(jobs / "work") not in text and sys.executable not in text, p


def test_gstack_and_operators_jobs(jobs):
    import gpu_jobs
    g, o = job_files(jobs, "gstack"), job_files(jobs, "operators")
    arms = g["experiment"]["arms"]
    assert arms["scratch"]["n_layer"] == 4 and not arms["scratch"]["grow_events"]
    ev = arms["gstack"]["grow_events"][0]
    assert (ev["before"]["n_layer"], ev["after"]["n_layer"], ev["tokens"]) == (1, 4, 512)
    assert arms["gstack"]["flops"] < arms["scratch"]["flops"] and arms["gstack"]["tokens"] == arms["scratch"]["tokens"]
    # the operators job borrowed both from the gstack job's folder instead of training them again
    for arm in ("scratch", "gstack"):
        step = o["json"]["steps"][arm]
        assert step["trained"] == [] and step["estimate_s"] == gpu_jobs.STEP_S  # nothing to train: no time for it
        kept = [(jobs / "results" / j / "runs" / arm / "metrics.jsonl").read_text() for j in ("gstack", "operators")]
        assert kept[0] == kept[1]
    first = g["json"]["steps"]["scratch"]  # trained: a train.py start at least (no compile on a CPU)
    assert first["trained"] == ["scratch"] and first["estimate_s"] >= gpu_jobs.STEP_S + gpu_jobs.START_S
    for arm, row in o["experiment"]["arms"].items():
        if arm.startswith("depth_"):
            ev = row["grow_events"][0]
            assert (ev["before"]["n_layer"], ev["after"]["n_layer"], ev["op"]) == (1, 4, arm[6:])
        elif arm.startswith("width_"):
            ev = row["grow_events"][0]
            assert (ev["before"]["n_embd"], ev["after"]["n_embd"], ev["op"]) == (16, 32, arm[6:])
        assert row["tokens"] == arms["scratch"]["tokens"], arm


def test_inheritune_and_bimix_jobs(jobs):
    arms = job_files(jobs, "inheritune")["experiment"]["arms"]
    assert arms["reference"]["n_layer"] == 2 and arms["inherit"]["n_layer"] == 1
    assert (arms["inherit"]["iter"], arms["scratch_T"]["iter"], arms["scratch_2T"]["iter"]) == (8, 8, 16)
    cfg = json.loads((jobs / "results" / "inheritune" / "runs" / "inherit" / "config.json").read_text())
    assert cfg["init_from"] == "inherit" and cfg["inherit_n_layer"] == 1
    b = job_files(jobs, "bimix")
    arms = b["experiment"]["arms"]
    assert arms["uniform"]["mixture"] == {"code": 0.5, "prose": 0.5}
    assert arms["natural"]["mixture"] != arms["ce"]["mixture"]
    fit = b["experiment"]["fit"]
    assert fit["mixture"] and arms["fitted"]["mixture"] == pytest.approx(fit["mixture"], abs=1e-5)
    assert len({a["tokens"] for a in arms.values()}) == 1  # equal tokens


def test_a_fresh_machine_continues_from_the_job_folder(jobs, tiny_dataset, tmp_path):
    """A fresh machine has the job folder only: finished arms are restored from their small files, not trained
    again; the missing step runs; a job with every step measured builds and runs nothing."""
    shutil.copytree(jobs / "results" / "gstack", tmp_path / "results" / "gstack")
    path = tmp_path / "results" / "gstack" / "results.json"
    data = json.loads(path.read_text())
    del data["steps"]["gstack"]  # cut off before its second step had finished (and kept its files)
    path.write_text(json.dumps(data))
    shutil.rmtree(tmp_path / "results" / "gstack" / "runs" / "gstack")
    scratch_metrics = (tmp_path / "results" / "gstack" / "runs" / "scratch" / "metrics.jsonl").read_text()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(dry_cmd(tmp_path, tiny_dataset, "gstack", work="machine2"), cwd=REPO, env=env, text=True,
                         capture_output=True, check=True).stdout
    assert "scratch: finished in an earlier call, restored" in out and "[scratch] running" not in out
    assert "[gstack] running" in out and "finished earlier (evaluated at iter 12): reusing" in out
    steps = json.loads(path.read_text())["steps"]
    assert set(steps) == {"scratch", "gstack"} and not [k for k, v in steps.items() if "error" in v]
    assert steps["scratch"] == data["steps"]["scratch"]
    assert (tmp_path / "results" / "gstack" / "runs" / "scratch" / "metrics.jsonl").read_text() == scratch_metrics
    assert "| gstack | depth | direct |" in (tmp_path / "results" / "gstack" / "experiment.md").read_text()
    out = subprocess.run(dry_cmd(tmp_path, tiny_dataset, "gstack", work="machine3"), cwd=REPO, env=env, text=True,
                         capture_output=True, check=True).stdout
    assert "every step has its result" in out and "estimated" not in out and not (tmp_path / "machine3").exists()


def test_listing_names_each_job_and_its_steps(jobs):
    out = subprocess.run([sys.executable, RUNNER, "--list", f"--results={jobs / 'results'}"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "speed: no results"
    assert out[1].startswith("gstack: scratch, gstack (2 of 2 steps; all of them ~")
    assert out[3].startswith("bimix: natural, uniform, ce, fitted (4 of 4 steps")


def test_job_estimates_fit_the_default_minutes():
    """At the real sizes (config/<experiment>_gpu.py, on paper), at the assumed rate and compile time: gstack,
    inheritune and bimix fit the default 8 minutes with the data preparation, and use most of them; every operators
    step fits 8 minutes too (the job spans several calls). The check can fail: twice the steps do not fit."""
    import gpu_jobs
    for name in ("gstack", "inheritune", "bimix"):
        total = gpu_jobs.DATA_S + sum(e for e, _ in gpu_jobs.estimates(name).values())
        assert 5 * 60 <= total <= 8 * 60, (name, total)
    ops = gpu_jobs.estimates("operators")
    assert ops["scratch"] == ops["gstack"] == [gpu_jobs.STEP_S, []]  # borrowed from the gstack job
    assert all(gpu_jobs.DATA_S + e <= 8 * 60 for e, _ in ops.values())
    assert gpu_jobs.estimates("inheritune")["reference+inherit"][1] == ["reference", "inherit"]
    longer = gpu_jobs.estimates("bimix", overrides=["--max_iters=1280"])
    assert gpu_jobs.DATA_S + sum(e for e, _ in longer.values()) > 8 * 60
    # the grown arm: one compile more than scratch (same final model, same tokens); G_random: one more (its ramp ends
    # with a plain model); nothing compiled on a CPU
    g, cpu = gpu_jobs.estimates("gstack"), gpu_jobs.estimates("gstack", device="cpu")
    assert g["gstack"][0] - g["scratch"][0] == pytest.approx(gpu_jobs.COMPILE_S)
    assert ops["depth_random"][0] - ops["depth_zero"][0] == pytest.approx(gpu_jobs.COMPILE_S)
    assert g["gstack"][0] - cpu["gstack"][0] == pytest.approx(2 * gpu_jobs.COMPILE_S)
    # at least start-up, a compile and the training FLOPs of the 8-layer model at the assumed rate
    from configurator import model_args
    from experiments import common
    s = common.resolve(["config/gstack_gpu.py", "--n_layer=8"])
    with gpu_jobs.torch.device("meta"):
        fpt = gpu_jobs.GPT(gpu_jobs.GPTConfig(**dict(model_args(s), vocab_size=256))).flops_per_token()
    train = common.final_iter(s) * common.tokens_per_iter(s) * fpt / gpu_jobs.RATE
    assert gpu_jobs.START_S + gpu_jobs.COMPILE_S + train < g["scratch"][0] - gpu_jobs.STEP_S < 1.3 * (
        gpu_jobs.START_S + gpu_jobs.COMPILE_S + train)
