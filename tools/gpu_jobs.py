"""
GPU work for a slot that is short or may be cut off (a spot instance, a shared cluster's time limit): a queue of
self-contained jobs, each step of which saves its result the moment it is done.

    python tools/gpu_jobs.py --list                   # what each job has measured, and its estimate
    python tools/gpu_jobs.py --minutes 8              # the next steps that fit in 8 minutes
    python tools/gpu_jobs.py --minutes 8 --only gstack,inheritune
    python tools/gpu_jobs.py --dry-run --device=cpu --results /tmp/r --work /tmp/w   # tiny shapes, on a CPU

Jobs, in order: speed (numerics, bench.py against nanoGPT's model.py in .nanogpt/), then gstack, inheritune, bimix
and operators at --scale gpu. A step starts only when its estimate fits in the time left and saves its result in
docs/results/gpu/<job>/ at once: a later call, here or on a fresh machine with that folder, runs the missing steps.
"""

import argparse
import copy
import importlib
import json
import os
import subprocess
import sys
import time
import traceback

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import bench  # noqa: E402
import grow  # noqa: E402
from configurator import ConfigError, install_error_hook, model_args  # noqa: E402
from experiments import common  # noqa: E402
from model import GPT, GPTConfig, device_peak_flops  # noqa: E402
from runs import final_eval, is_done  # noqa: E402

# The estimates, high on purpose (a step that overruns may be cut off with the slot). An experiment arm: START_S +
# COMPILE_S a torch.compile (one, one more after a growth, one more when G_random's ramp ends) + (its training tokens
# + 2 x its evaluation tokens: eager forward passes, about a training step's FLOPs a batch, at half the rate) x the
# FLOPs per token of its final model / RATE + a checkpoint an evaluation (12 bytes a parameter) at CKPT_BYTES_PER_S.
# An experiment step: STEP_S + its arms not finished yet. A speed step: COMPILE_S a compiled variant + 2 x STEP_S.
RATE = 1e14             # training FLOP/s: 10% MFU of an H100, low on purpose for narrow models
COMPILE_S = 45.0        # one cold torch.compile of a 124M model (later ones may hit the cache)
START_S = 15.0          # one train.py start: interpreter, CUDA context, dataset, model
CKPT_BYTES_PER_S = 3e8  # a checkpoint written, digested and fsynced
STEP_S = 10.0           # per step: the runs read back, the script's tables and plot
DATA_S = 60.0           # data/prepare.py --tokenizer=byte --name=pybytes, worst case


class Job:
    """One job's folder and clock (a: main's options): runs the steps that fit, saves each result at once."""

    def __init__(self, name, a):
        self.name, self.a, self.folder = name, a, os.path.join(a.results, name)
        self.path, self.data = os.path.join(self.folder, "results.json"), {"job": name, "steps": {}}
        if os.path.isfile(self.path):
            with open(self.path) as f:
                self.data = json.load(f)

    def ok(self, name):
        return "error" not in self.data["steps"].get(name, {"error": "not run"})

    def step(self, name, est_s, fn):
        """fn() -> dict, saved as the step's result; not run when the step has a result already (returned) or
        when its estimate does not fit in the time left (None). A step that failed runs again."""
        left = self.a.deadline - time.time()
        if self.ok(name):
            return self.data["steps"][name]
        if est_s > left:
            print(f"[{self.name}] {name}: needs ~{est_s:.0f} s, {left:.0f} s left: not run")
            return None
        print(f"[{self.name}] {name} (~{est_s:.0f} s estimated, {left:.0f} s left)", flush=True)
        t0 = time.time()
        try:
            out = fn()
        except (Exception, SystemExit) as e:  # one broken step (or a script's own error) should not lose the others
            traceback.print_exc()
            out = {"error": f"{type(e).__name__}: {e}"}
        out.update(estimate_s=round(est_s), wall_s=round(time.time() - t0, 1),
                   ran={"device": common.host_device(), "date": time.strftime("%Y-%m-%d")})
        self.data["steps"][name] = out
        self.save()
        return out

    def save(self):
        os.makedirs(self.folder, exist_ok=True)
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.data, f, indent=2, default=str)
        os.replace(self.path + ".tmp", self.path)  # a job killed while writing keeps the previous file
        with open(os.path.join(self.folder, "results.md"), "w") as f:
            f.write(render(self) + "\n")


def render(job):
    """results.md: a row per step, a table per timing step (ratio: tokens/s over its first row's), the errors. Results
    kept as <step>@<version> (superseded by a later model) stay in results.json only, as do the numerics' values."""
    steps, fmt = {k: v for k, v in job.data["steps"].items() if "@" not in k}, common.fmt
    rows = [(k, "error (below)" if "error" in r else "fit failed: " + r["fit_error"] if "fit_error" in r else
             f"over its limits: {r['failed']}" if r.get("failed") else "done" + "".join(
                 f", {a}: final val loss {fmt(v['val_loss_mean'])}" for a, v in r.get("arms", {}).items()),
             "{estimate_s:.0f} / {wall_s:.0f}".format(**r) if "estimate_s" in r else "-") for k, r in steps.items()]
    lines = [f"# GPU job `{job.name}`", "", f"- command: `{job.data.get('command')}`", "",
             common.md_table(["step", "status", "estimated / wall s"], rows, ["---", "---", "---:"])]
    head = ["variant", "batch", "ms/iter", "tokens/s", "ratio", "MFU", "peak GiB", "first step s"]
    for name, r in [(k, r) for k, r in steps.items() if "results" in r]:
        s, first = r["settings"], next(iter(r["results"].values()), {}).get("tokens_per_s")
        rows = [(k, r["variants"][k].get("batch_size", s["batch_size"]), f"{x['ms']:.1f}", f"{x['tokens_per_s']:,.0f}",
                 f"{x['tokens_per_s'] / first:.3f}", fmt(x.get("mfu"), ".1%"), fmt(x.get("mem_gib"), ".1f"),
                 fmt(x.get("first_step_s"), ".1f")) for k, x in r["results"].items()]
        lines += ["", f"## {name}: {s['n_layer']} layers, {s['n_embd']} wide, context {s['block_size']}, {s['dtype']}, "
                  f"compile={s['compile']}", "", common.md_table(head, rows + [(k, "-", "failed: " + e) + ("",) * 5
                                                                              for k, e in r["errors"].items()])]
    errors = [f"- {k}: {v['error'][:500]}" for k, v in steps.items() if "error" in v]
    return "\n".join(lines + (["", "## Errors", ""] + errors if errors else []))


# -------------------------------------------------------------------------------------------------------------
# the speed job: the model's numerics on the device, then bench.py's timings, variants side by side

def cuda_checks(device):
    """Our model's logits on the CPU and on the device, a growth that must keep them, and compiled + bf16 against
    eager bf16: the largest differences, and those over their limit."""
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 in full (speed() turns TF32 on for the timings)
    out = {}
    for arch in ("gpt2", "llama"):
        torch.manual_seed(0)
        m = GPT(GPTConfig(arch=arch, n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=512)).eval()
        idx = torch.randint(0, 512, (2, 64))
        md, x = copy.deepcopy(m).to(device), idx.to(device)
        out[f"{arch}: cpu vs device fp32"] = (md(x)[0].cpu() - m(idx)[0]).abs().max().item()
        for op in ("zero", "random"):  # at ramp 0 / with zero writers the grown model is the small one
            out[f"{arch}: depth {op} growth gap"] = grow.logit_gap(md, grow.grow_depth(md, op, 2).to(device).eval(), x)
        if torch.device(device).type == "cuda":
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                diff = torch.compile(md)(x)[0].float() - md(x)[0].float()
            out[f"{arch}: compiled vs eager bf16"] = diff.abs().max().item()
    limits = {"cpu vs device": 1e-4, "growth gap": 1e-5, "compiled vs eager": 0.1}
    failed = [k for k, v in out.items() if v > next(lim for key, lim in limits.items() if key in k)]
    return {"max_abs_diff": out, "limits": limits, "ok": not failed, "failed": failed, "device": common.host_device(),
            "torch": torch.__version__, "cuda": torch.version.cuda}


def compare(base, variants):
    """Time {name: settings changes} side by side with bench.time_steps: our model, or nanoGPT's for a name that
    starts with "nanoGPT". A variant whose first step fails (a kernel this device lacks) is reported and left out."""
    steps, errors = {}, {}
    for name, change in variants.items():
        s = {**base, **change}
        try:
            nano = name.startswith("nanoGPT")
            model = bench.build_nanogpt(s, os.path.join(REPO, ".nanogpt")) if nano else bench.build_ours(s)
            steps[name] = step = bench.make_step(model, s, fused=change.get("fused"))
            t0 = time.perf_counter()
            step()  # compiles
            step.first_s = time.perf_counter() - t0
            step.flops = (bench.build_ours(s) if nano else model).flops_per_token()  # the same shapes: the same FLOPs
        except Exception as e:
            steps.pop(name, None)
            errors[name] = f"{type(e).__name__}: {str(e)[:300]}"
    res = bench.time_steps(steps, base)
    peak = base["peak_flops"] or (device_peak_flops() if base["device_type"] == "cuda" else None)
    for name, r in res.items():
        r.update(first_step_s=steps[name].first_s, mfu=steps[name].flops * r["tokens_per_s"] / peak if peak else None)
    keys = ("n_layer", "n_embd", "block_size", "batch_size", "dtype", "compile", "vocab_size")
    return {"settings": {k: base[k] for k in keys}, "variants": variants, "results": res, "errors": errors}


def speed(job):
    """Numerics on the device, then bench.py's timings at GPT-2 124M's shapes (a dry run: 2 layers, a few steps)."""
    dry = ["--n_layer=2", "--warmup=1", "--steps=2", "--rounds=2"] if job.a.dry_run else []  # on a CPU: its shapes
    base = bench.settings([f"--device={job.a.device}"] + dry)
    job.step("cuda_checks", 60, lambda: cuda_checks(job.a.device))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    nano = os.path.isfile(os.path.join(REPO, ".nanogpt", "model.py"))  # without it, no comparisons with nanoGPT
    steps = {"vs_nanogpt": {"nanogrow": {}, "nanoGPT": {}},
             "switches": {"all on": {}, "no compile": {"compile": False}, "float32 (TF32)": {"dtype": "float32"},
                          "for-each AdamW": {"fused": False}, "tanh GELU (GPT-2's own)": {"gelu_approximate": "tanh"}},
             **{f"microbatch_{b}": {f"{m} B={b}": {"batch_size": b} for m in ("nanogrow", "nanoGPT")}
                for b in ([2, 8] if job.a.dry_run else [16, 24, 32])}}
    for name, variants in steps.items():
        variants = {k: v for k, v in variants.items() if nano or not k.startswith("nanoGPT")}
        if nano or name != "vs_nanogpt":
            est = COMPILE_S * sum(v.get("compile", base["compile"]) for v in variants.values()) + 2 * STEP_S
            job.step(name, est, lambda v=variants: compare(base, v))


# -------------------------------------------------------------------------------------------------------------
# the experiment jobs: a step per arm (or arms: Inheritune's inherited arm needs the reference's checkpoint) runs
# `python experiments/<script>.py --scale gpu --out <work>/<job> --arms <the arms done and its>` in this process:
# finished arms are reused, interrupted ones resumed. Each finished arm's small files go to <job folder>/runs/<arm>/,
# and a later call copies them back, where the script finds the arm finished.

DRY = {"gstack": "--n_layer=1 --max_iters=12 --eval_interval=4 --grow_at_tokens=512 --grow_ramp_steps=4 "
                 "--grow_learn_steps=2", "inheritune": "--n_layer=2 --max_iters=8 --eval_interval=4",
       "bimix": "--n_layer=1 --max_iters=20 --eval_interval=2"}  # + tiny shapes (experiment())
SPECS = {"gstack": ("gstack", ["scratch", "gstack"]),  # {job: (script, its steps: an arm, or arms joined by +)}
         "inheritune": ("inheritune", ["reference+inherit", "scratch_T", "scratch_2T"]),
         "bimix": ("bimix", ["natural", "uniform", "ce", "fitted"]),
         "operators": ("gstack", ["scratch", "gstack", "depth_zero", "depth_random", "depth_learn", "width_direct",
                                  "width_zero", "width_random", "width_learn"])}
BORROW = {"operators": {"scratch": "gstack", "gstack": "gstack"}}  # {job: {arm: the job whose finished arm it reuses}}
JOBS = ["speed"] + list(SPECS)


def estimates(name, overrides=(), device="cuda", out=None):
    """{step: (estimated seconds, [its arms to train])} of an experiment job, from the script's own settings for each
    arm (see the estimates' comment). Left out: the arms finished in the run folder out, or without out, borrowed."""
    script, steps = SPECS[name]
    config = [f"config/{script}_gpu.py"] + list(overrides)
    s, mod = common.resolve(config), importlib.import_module(f"experiments.{script}")
    extra, res = {"gstack": (), "inheritune": ("reference",)}.get(script), {step: [STEP_S, []] for step in steps}
    for step, arm in [(step, arm) for step in steps for arm in step.split("+")]:  # bimix (extra None): mixtures only
        a = s if extra is None else common.resolve(config + mod.arm_args(arm, s, *extra))
        grows, last = bool(a["grow_at_tokens"]), common.final_iter(a)
        if is_done(os.path.join(out, arm), last) if out else arm in BORROW.get(name, {}):
            continue
        m = dict(s, n_layer=s["n_layer"] * s["grow_factor"]) if grows else a  # grown: the config's width, g x depth
        with torch.device("meta"):  # shapes and FLOPs, no memory
            model = GPT(GPTConfig(**dict(model_args(m), vocab_size=m["vocab_size"] or 50304)))
        evals = last // a["eval_interval"] + 2  # + iteration 0, and the last or a growth's checkpoint
        compiles = (1 + grows + (grows and a["grow_op"] == "random")) * (
            device.startswith("cuda") if a["compile"] is None else a["compile"])
        tokens = last * common.tokens_per_iter(a) + 2 * evals * a["eval_iters"] * a["batch_size"] * a["block_size"]
        res[step][0] += START_S + compiles * COMPILE_S + tokens * model.flops_per_token() / RATE + \
            evals * 12 * model.num_params(non_embedding=False) / CKPT_BYTES_PER_S
        res[step][1].append(arm)
    return res


def portable(text, job, exact=False):
    """Text as the job folder keeps it, the same on any machine: the job's run folder as {out} (the work folder as
    {work}), then common.portable's (paths in the repository relative to it), or with exact, the repository as {repo};
    copy_arm puts {out} and {repo} back."""
    text = text.replace(os.path.join(job.a.work, job.name), "{out}").replace(job.a.work, "{work}")
    return text.replace(REPO, "{repo}") if exact else common.portable(text)


def copy_arm(job, src, dest, restore=False):
    """A finished arm's small files from its run folder to the job folder, this machine's paths taken out, or back
    (restore) with this machine's paths: the script then finds the arm finished, with the same settings."""
    os.makedirs(dest, exist_ok=True)
    for name in ("metrics.jsonl", "config.json", "train.log", "arm.json"):  # arm.json: the settings, exactly
        with open(os.path.join(src, name)) as f, open(os.path.join(dest, name), "w") as g:
            g.write(f.read().replace("{out}", os.path.join(job.a.work, job.name)).replace("{repo}", REPO) if restore
                    else portable(f.read(), job, exact=name == "arm.json"))


def experiment(job):
    """Run the job's steps that fit, in order (see the section's comment)."""
    script, steps = SPECS[job.name]
    if all(job.ok(step) for step in steps):
        print(f"[{job.name}] every step has its result (in {job.folder})")
        return
    cmd = [sys.executable, "data/prepare.py", "--tokenizer=byte", "--name=pybytes"]
    if not (job.a.dataset or os.path.isfile(os.path.join(REPO, "data", "pybytes", "meta.json"))) and (
            job.a.deadline - time.time() < DATA_S or subprocess.run(cmd, cwd=REPO).returncode):
        print(f"[{job.name}] no data: too little time left for {' '.join(cmd[1:])}, or it failed")
        return
    overrides = (f"--n_head=2 --n_embd=32 --block_size=32 --batch_size=4 --warmup_iters=2 --eval_iters=1 "
                 f"--log_interval=2 --device={job.a.device} {DRY[script]}".split() if job.a.dry_run else [])
    if job.a.dataset:  # the script's option, which makes a path absolute
        overrides.append(f"--dataset={job.a.dataset}")
    out = os.path.join(job.a.work, job.name)
    for arm in [arm for step in steps for arm in step.split("+")]:  # kept by earlier calls, here or in BORROW's job
        saved = os.path.join(job.a.results, BORROW.get(job.name, {}).get(arm, job.name), "runs", arm)
        if os.path.isfile(os.path.join(saved, "arm.json")) and not os.path.isfile(os.path.join(out, arm, "arm.json")):
            copy_arm(job, saved, os.path.join(out, arm), restore=True)
            print(f"[{job.name}] {arm}: finished in an earlier call, restored from {portable(saved, job)}")
    for step, (est, todo) in estimates(job.name, overrides, job.a.device, out).items():
        if job.step(step, est, lambda: run_step(job, script, out, step.split("+"), todo, overrides)) is None:
            break  # a later step may need this one's arms (BiMix's fitted mixture)


def run_step(job, script, out, arms, todo, overrides):
    """The script's main() on the step's arms and every arm done before (found finished); the arms' small files and
    the script's report (results.md and .json as experiment.md and .json, fit.json, the plot) go to the job folder."""
    done = [arm for step in SPECS[job.name][1] if job.ok(step) for arm in step.split("+")]
    argv = ["--scale", "gpu", "--out", out, "--arms", ",".join(done + arms)] + overrides
    print(f"[{job.name}] python experiments/{script}.py {portable(' '.join(argv), job)}", flush=True)
    data = importlib.import_module(f"experiments.{script}").main(argv) or {}
    res = {"arms": {}, "trained": todo}  # no arm trained: finished earlier, or borrowed
    if "error" in (data.get("fit") or {}):  # BiMix's law not fitted: a result (no fitted arm), not a failure to rerun
        res["fit_error"], arms = data["fit"]["error"], [a for a in arms if a != "fitted"]
    for a in arms:
        res["arms"][a] = {"val_loss_mean": final_eval(os.path.join(out, a))["val_loss_mean"]}
        copy_arm(job, os.path.join(out, a), os.path.join(job.folder, "runs", a))
    for name in [n for n in os.listdir(out) if n.endswith(".png") or n in ("results.md", "results.json", "fit.json")]:
        with open(os.path.join(out, name), "rb") as f:  # the script's report
            text = f.read() if name.endswith(".png") else portable(f.read().decode(), job).encode()
        with open(os.path.join(job.folder, name.replace("results.", "experiment.")), "wb") as f:
            f.write(text)
    return res


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=8.0, help="wall time for this call (default 8)")
    p.add_argument("--only", default=",".join(JOBS), help="comma-separated job names (default: all, in order)")
    p.add_argument("--results", default=os.path.join(REPO, "docs/results/gpu"), help="job folders (docs/results/gpu)")
    p.add_argument("--work", default=os.path.join(REPO, "out/gpu_jobs"), help="run folders, not kept (out/gpu_jobs)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dataset", default="", help="a prepared dataset (default: pybytes, built here)")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes, to check the runner itself on a CPU")
    p.add_argument("--list", action="store_true", help="what each job has measured, and the estimates")
    a = p.parse_args(argv)
    if set(a.only.split(",")) - set(JOBS):
        p.error(f"--only: unknown job(s) {sorted(set(a.only.split(',')) - set(JOBS))}; the jobs: {', '.join(JOBS)}")
    a.work, start, a.deadline = os.path.abspath(a.work), time.time(), time.time() + a.minutes * 60
    for job in [Job(name, a) for name in JOBS if name in a.only.split(",")]:
        if a.list:  # the steps with results; for the experiments, the estimate of all their steps
            steps, n = job.data["steps"], len(SPECS.get(job.name, ("", []))[1])
            total = n and (DATA_S + sum(e for e, _ in estimates(job.name).values())) / 60
            print(f"{job.name}: {', '.join(steps) or 'no results'}" + (
                f" ({sum('error' not in v for v in steps.values())} of {n} steps; all of them ~{total:.1f} min)" if n else ""))
            continue
        job.data["command"] = "python tools/gpu_jobs.py " + portable(" ".join(argv), job)
        (speed if job.name == "speed" else experiment)(job)
        job.save()
        print(f"[{job.name}] done or out of time after {time.time() - start:.0f} s: {job.folder}")


if __name__ == "__main__":
    install_error_hook("tools/gpu_jobs.py", ConfigError)  # a bad setting or device: one line, no traceback
    main()
