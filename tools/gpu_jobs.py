"""
GPU work for a slot that is short or may be cut off (a spot instance, a shared cluster's time limit): a queue of
self-contained jobs, each step of which saves its result the moment it is done.

    python tools/gpu_jobs.py --list                   # what each job has measured, and its estimate
    python tools/gpu_jobs.py --minutes 8              # the next steps that fit in 8 minutes
    python tools/gpu_jobs.py --minutes 8 --only gstack,inheritune
    python tools/gpu_jobs.py --dry-run --device=cpu --results /tmp/r --work /tmp/w   # tiny shapes, on a CPU

Jobs, in order: speed (numerics on the device; bench.py against nanoGPT's model.py in .nanogpt/), then the papers'
comparisons at --scale gpu (config/<experiment>_gpu.py): gstack, inheritune, bimix, operators (the other growth
operators; it borrows the gstack job's two arms). A step starts only when its estimated cost fits in the time left.
Each job's folder, docs/results/gpu/<job>/, gets results.json, results.md and for the experiments their report and
runs/<arm>/ (each finished arm's small files): a job cut off keeps every step it finished, and a later call, here or
on a fresh machine with that folder, runs only the missing steps. Checkpoints go to --work (default out/gpu_jobs).
"""

import argparse
import collections
import copy
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from configurator import ConfigError, install_error_hook, model_args  # noqa: E402
from experiments import common  # noqa: E402
from experiments.common import fmt, md_table  # noqa: E402

RESULTS = os.path.join(REPO, "docs", "results", "gpu")
WORK = os.path.join(REPO, "out", "gpu_jobs")
NANOGPT = os.path.join(REPO, ".nanogpt")


class Job:
    """One job's folder and clock: runs the steps that fit, saves each result at once, renders results.md."""

    def __init__(self, name, folder, deadline, dry=False, device="cuda", dataset="", work=WORK):
        self.name, self.folder, self.deadline, self.dry, self.device = name, folder, deadline, dry, device
        self.dataset, self.work, self.path = dataset, os.path.abspath(work), os.path.join(folder, "results.json")
        self.data = {"job": name, "steps": {}}
        if os.path.isfile(self.path):
            with open(self.path) as f:
                self.data = json.load(f)
        self.compile_s = 45.0  # one torch.compile of a 124M model, until this job measures its own
        self.rate = ASSUMED_RATE  # training FLOP/s for the estimates, until an arm has measured it

    def ok(self, name):
        return "error" not in self.data["steps"].get(name, {"error": "not run"})

    def step(self, name, est_s, fn):
        """fn() -> dict, saved as the step's result; not run when the step has a result already (returned) or
        when its estimate does not fit in the time left (None). A step that failed runs again."""
        left = self.deadline - time.time()
        if self.ok(name):
            return self.data["steps"][name]
        if est_s > left:
            print(f"[{self.name}] {name}: needs ~{est_s:.0f} s, {left:.0f} s left: not run")
            return None
        print(f"[{self.name}] {name} (~{est_s:.0f} s estimated, {left:.0f} s left)", flush=True)
        t0 = time.time()
        try:
            out = fn()
        except Exception as e:  # one broken step should not lose the others; the error is its result
            traceback.print_exc()
            out = {"error": f"{type(e).__name__}: {e}"}
        out.update(wall_s=round(time.time() - t0, 1),
                   ran={"device": common.host_device(), "date": time.strftime("%Y-%m-%d")})
        self.data["steps"][name] = out
        self.save()
        return out

    def save(self):
        os.makedirs(self.folder, exist_ok=True)
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.data, f, indent=2, default=str)
        os.replace(self.path + ".tmp", self.path)  # a job killed while writing keeps the previous file
        title, render = JOBS.get(self.name, (self.name, lambda job: ""))
        errors = [f"- {k}: {v['error'][:500]}" for k, v in self.data["steps"].items() if "error" in v]
        with open(os.path.join(self.folder, "results.md"), "w") as f:
            f.write("\n".join([f"# GPU job `{self.name}`: {title}", "", f"- command: `{self.data.get('command')}`",
                               render(self)] + ["", "## Errors", ""] * bool(errors) + errors) + "\n")


# -------------------------------------------------------------------------------------------------------------
# the speed job: the model's numerics on the device, then bench.py's timings, variants side by side

def cuda_checks(device):
    """Our model's logits on the CPU and on the device, a growth that must keep them, and compiled + bf16 against
    eager bf16: the largest differences, and those over their limit."""
    import torch
    import grow
    from model import GPT, GPTConfig
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 in full (speed() turns TF32 on for the timings)
    out = {}
    for arch in ("gpt2", "llama"):
        torch.manual_seed(0)
        m = GPT(GPTConfig(arch=arch, n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=512)).eval()
        idx = torch.randint(0, 512, (2, 64))
        md, x = copy.deepcopy(m).to(device), idx.to(device)
        out[f"{arch}: cpu vs device fp32"] = (md(x)[0].cpu() - m(idx)[0]).abs().max().item()
        for op in ("zero", "random"):  # at ramp 0 / with zero writers the grown model is the small one
            big = grow.grow_depth(md, op, factor=2).to(device).eval()
            out[f"{arch}: depth {op} growth gap"] = grow.logit_gap(md, big, x)
        if torch.device(device).type == "cuda":
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                diff = torch.compile(md)(x)[0].float() - md(x)[0].float()
            out[f"{arch}: compiled vs eager bf16"] = diff.abs().max().item()
    limits = {"cpu vs device": 1e-4, "growth gap": 1e-5, "compiled vs eager": 0.1}
    failed = [k for k, v in out.items() if v > next(lim for key, lim in limits.items() if key in k)]
    return {"max_abs_diff": out, "limits": limits, "ok": not failed, "failed": failed, "device": common.host_device(),
            "torch": torch.__version__, "cuda": torch.version.cuda}


def compare(job, base, variants):
    """Time {name: settings changes} side by side with bench.time_steps: our model, or nanoGPT's for a name that
    starts with "nanoGPT". A variant whose first step fails (a kernel this device lacks) is reported and left out."""
    import bench
    from model import device_peak_flops
    steps, errors = {}, {}
    for name, change in variants.items():
        s = {**base, **change}
        try:
            model = bench.build_nanogpt(s, NANOGPT) if name.startswith("nanoGPT") else bench.build_ours(s)
            step = bench.make_step(model, s, fused=change.get("fused"))
            t0 = time.perf_counter()
            step()  # compiles
            step.first_s, step.compiled = time.perf_counter() - t0, s["compile"]
            step.flops = (model if hasattr(model, "flops_per_token") else meta_model(s)).flops_per_token()
            steps[name] = step
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {str(e)[:300]}"
    res = bench.time_steps(steps, base)
    peak = base["peak_flops"] or (device_peak_flops() if base["device_type"] == "cuda" else None)
    for name, r in res.items():
        r.update(first_step_s=steps[name].first_s, mfu=steps[name].flops * r["tokens_per_s"] / peak if peak else None)
    # a cold compile; later ones may hit the cache, but the estimates stay on the safe side
    job.compile_s = max([job.compile_s] + [st.first_s for st in steps.values() if st.compiled])
    return {"settings": {k: base[k] for k in ("n_layer", "n_embd", "block_size", "batch_size", "dtype", "compile",
                                             "vocab_size")}, "variants": variants, "results": res, "errors": errors}


def speed(job):
    """Numerics on the device, then bench.py's timings at GPT-2 124M's shapes (tiny ones in a dry run)."""
    import torch
    import bench
    tiny = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4", "--vocab_size=512",
            "--warmup=1", "--steps=2", "--rounds=2"]
    base = bench.settings([f"--device={job.device}"] + tiny * job.dry)
    job.step("cuda_checks", 60, lambda: cuda_checks(job.device))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    nano = os.path.isfile(os.path.join(NANOGPT, "model.py"))  # without it, the comparisons with nanoGPT are left out
    g = 2 if job.dry else 4
    steps = {"vs_nanogpt": {"nanogrow": {}, "nanoGPT": {}},
             "growth": {"fresh": {}, f"grown x{g} (direct)": {"n_layer": base["n_layer"] // g, "grow_at_tokens": 1,
                                                              "grow_factor": g, "grow_op": "direct"}},
             "switches": {"all on": {}, "no compile": {"compile": False}, "float32 (TF32)": {"dtype": "float32"},
                          "for-each AdamW": {"fused": False}, "tanh GELU (GPT-2's own)": {"gelu_approximate": "tanh"}},
             **{f"microbatch_{b}": {f"{m} B={b}": {"batch_size": b} for m in ("nanogrow", "nanoGPT")}
                for b in ([2, 8] if job.dry else [16, 24, 32])}}
    for name, variants in steps.items():
        variants = {k: v for k, v in variants.items() if nano or not k.startswith("nanoGPT")}
        if len(variants) > 1 or name != "vs_nanogpt":  # estimate: a cold compile per compiled variant
            job.step(name, sum(v.get("compile", base["compile"]) for v in variants.values()) * job.compile_s + 20,
                     lambda v=variants: compare(job, base, v))


SPEED_TITLES = {"vs_nanogpt": "nanogrow against nanoGPT's model, same shapes, same process",
                "switches": "What each switch is worth (one switch changed at a time)",
                "growth": "Throughput after an in-run growth against a fresh model of the grown size"}


def render_speed(job):
    """The numerics, then a table per timing step (ratio: tokens/s over the first row's). Results of steps this
    runner does not take stay in results.json, not shown."""
    lines, head = [], ["variant", "batch", "ms/iter", "tokens/s", "ratio", "MFU", "peak GiB", "first step s"]
    for name, r in job.data["steps"].items():
        if name == "cuda_checks" and "error" not in r:
            lines += [f"- device: {r['device']}; torch {r['torch']}, CUDA {r['cuda']}", "", "## Numerics on the "
                      "device", "", md_table(["check", "max abs difference"], [(k, fmt(v, ".2e")) for k, v in r[
                          "max_abs_diff"].items()]), "", f"Limits {r['limits']}: **{r['failed'] or 'all within'}**"]
        elif "results" in r and (name in SPEED_TITLES or name.startswith("microbatch_")):
            s, first = r["settings"], next(iter(r["results"].values()), {}).get("tokens_per_s")
            rows = [(k, r["variants"][k].get("batch_size", s["batch_size"]), f"{x['ms']:.1f}",
                     f"{x['tokens_per_s']:,.0f}", f"{x['tokens_per_s'] / first:.3f}", fmt(x.get("mfu"), ".1%"),
                     fmt(x.get("mem_gib"), ".1f"), f"{x['first_step_s']:.1f}") for k, x in r["results"].items()]
            lines += ["", f"## {SPEED_TITLES.get(name, 'Micro-batch ' + name[11:])}: {s['n_layer']} layers, "
                      f"{s['n_embd']} wide, context {s['block_size']}, {s['dtype']}, compile={s['compile']}", "",
                      md_table(head, rows + [(k, "-", "failed: " + e) + ("",) * 5 for k, e in r["errors"].items()])]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------------
# the experiment jobs: a step per arm (Inheritune's inherited arm shares the reference's step: it needs its
# checkpoint) runs `python experiments/<script>.py --scale gpu --out <work>/<job> --arms <the arms done and its>`
# in this process: finished arms are reused, interrupted ones resumed. Each finished arm's small files go to
# <job folder>/runs/<arm>/, and a later call copies them back, where the script finds the arm finished.
# An arm's estimate: start-up + compiles + training FLOPs / rate + evaluations and checkpoints; the rate is
# ASSUMED_RATE until an arm of this call has trained, then the rate that arm measured.

ASSUMED_RATE = 1e14     # training FLOP/s until one is measured: 10% MFU of an H100, low on purpose for narrow models
START_S = 15.0          # one train.py start: interpreter, CUDA context, dataset, model
EVAL_SPEED = 0.5        # evaluations run the eager model: their forward FLOPs at half the training rate
CKPT_BYTES_PER_S = 3e8  # a checkpoint (fp32 weights + AdamW's two moments: 12 bytes a parameter), digest and fsync
ANALYSIS_S = 10.0       # per step: the runs read back, the script's tables and plot
DATA_S = 60.0           # data/prepare.py --tokenizer=byte --name=pybytes, worst case
TINY = ["--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4", "--warmup_iters=2", "--eval_iters=1"]
DRY = {"gstack": TINY + ["--n_layer=1", "--max_iters=12", "--grow_at_tokens=512", "--eval_interval=4",
                         "--log_interval=4", "--grow_ramp_steps=4", "--grow_learn_steps=2"],
       "inheritune": TINY + ["--n_layer=2", "--max_iters=8", "--eval_interval=4", "--log_interval=4"],
       "bimix": TINY + ["--n_layer=1", "--max_iters=20", "--eval_interval=2", "--log_interval=2"]}

# steps: [(step, [arms])]; borrow: {arm: the job whose finished arm is reused}
Spec = collections.namedtuple("Spec", "script steps borrow", defaults=({},))
SPECS = {"gstack": Spec("gstack", [("scratch", ["scratch"]), ("gstack", ["gstack"])]),
         "inheritune": Spec("inheritune", [("reference+inherit", ["reference", "inherit"]),
                                           ("scratch_T", ["scratch_T"]), ("scratch_2T", ["scratch_2T"])]),
         "bimix": Spec("bimix", [(a, [a]) for a in ("natural", "uniform", "ce", "fitted")]),
         "operators": Spec("gstack", [(a, [a]) for a in ("scratch", "gstack", "depth_zero", "depth_random",
                                                          "depth_learn", "width_direct", "width_zero", "width_random",
                                                          "width_learn")], {"scratch": "gstack", "gstack": "gstack"})}


def meta_model(s):
    """The GPT of settings s on the meta device: its shapes and FLOPs, without memory."""
    import torch
    from model import GPT, GPTConfig
    with torch.device("meta"):
        return GPT(GPTConfig(**dict(model_args(s), vocab_size=s["vocab_size"] or 50304)))


def arm_estimate(spec, arm, overrides, device, rate=ASSUMED_RATE, compile_s=45.0):
    """Estimated wall seconds of one arm from the script's own settings for it, with the terms of the sum, the
    compiles, the tokens of each model (phases: before and after a growth) and the arm's last iteration."""
    config = [f"config/{spec.script}_gpu.py"]
    s, mod = common.resolve(config + overrides), importlib.import_module(f"experiments.{spec.script}")
    a = (common.resolve(config + overrides + mod.arm_args(arm, s)) if spec.script == "gstack" else
         common.resolve(config + overrides + mod.arm_args(arm, s, "reference")) if spec.script == "inheritune" else s)
    last, d = common.final_iter(a), a["grow_at_tokens"]
    phases = [d, last * common.tokens_per_iter(a) - d] if d else [last * common.tokens_per_iter(a)]
    small = meta_model(a)
    big = meta_model(dict(a, n_layer=a["n_layer"] * a["grow_factor"]) if a["grow_dim"] == "depth" else dict(
        a, **{k: s[k] for k in ("n_embd", "n_head", "n_kv_head", "intermediate_size")})) if d else small
    compiled = device.startswith("cuda") if a["compile"] is None else a["compile"]
    compiles = (len(phases) + bool(d and a["grow_op"] == "random")) * compiled  # G_random's ramp ends: a third
    evals = last // a["eval_interval"] + 1 + (last % a["eval_interval"] != 0)
    terms = {"start": START_S, "compile": compiles * compile_s,
             "train": (small.flops_per_token() * phases[0] + big.flops_per_token() * sum(phases[1:])) / rate,
             # 3 domains evaluated, a forward pass each: a third of a training step's FLOPs; and a checkpoint each time
             "evals": evals * a["eval_iters"] * a["batch_size"] * a["block_size"] * big.flops_per_token()
             / (rate * EVAL_SPEED) + (evals + bool(d)) * 12 * big.num_params(non_embedding=False) / CKPT_BYTES_PER_S}
    return {"seconds": round(sum(terms.values()), 1), **{k: round(v, 1) for k, v in terms.items()},
            "compiles": compiles, "phases": phases, "last": last}


def estimate_job(name, overrides=()):
    """{step: estimated seconds} of an experiment job on a GPU at the assumed rate, borrowed arms left out."""
    spec = SPECS[name]
    return {step: ANALYSIS_S + sum(arm_estimate(spec, a, list(overrides), "cuda")["seconds"] for a in arms
                                   if a not in spec.borrow) for step, arms in spec.steps}


def measured_rate(run_dir):
    """Training FLOP/s of a finished run from its log, the intervals that compile (the first ones) left out."""
    from runs import read_metrics
    logs = [m for m in read_metrics(run_dir) if "tokens_per_s" in m or m.get("event") == "grow"]
    pairs = [(a, b) for a, b in zip(logs, logs[1:]) if "tokens_per_s" in a and b.get("tokens_per_s")
             and b["tokens"] > a["tokens"]]
    secs = sum((b["tokens"] - a["tokens"]) / b["tokens_per_s"] for a, b in pairs)
    return sum(b["flops"] - a["flops"] for a, b in pairs) / secs if secs else None


def portable(text, job):
    """Text as the job folder keeps it: common.portable's, and a work folder outside the repository as <work>."""
    text = common.portable(text)
    return text.replace(job.work, "<work>") if os.path.relpath(job.work, REPO).startswith("..") else text


def copy_arm(job, src, dest, restore=False):
    """A finished arm's small files from its run folder to the job folder, this machine's paths taken out, or back
    (restore), with this machine's paths and dest as out_dir: the script finds the arm finished, same settings."""
    os.makedirs(dest, exist_ok=True)
    for name in ("metrics.jsonl", "config.json", "train.log", "arm.json"):
        with open(os.path.join(src, name)) as f:
            text = f.read()
        if name == "arm.json":
            text = (re.sub(r'"--out_dir=[^"]*"', json.dumps(f"--out_dir={dest}"), text.replace(
                "{work}", job.work).replace("{repo}", REPO)) if restore else
                    text.replace(job.work, "{work}").replace(REPO, "{repo}"))
        with open(os.path.join(dest, name), "w") as f:
            f.write(text if restore or name == "arm.json" else portable(text, job))


def experiment_job(job, spec):
    """Run the job's steps that fit (see the section's comment)."""
    if all(job.ok(name) for name, _ in spec.steps):
        print(f"[{job.name}] every step has its result (in {job.folder})")
        return
    root = os.path.join(job.work, "data") if job.dry else os.path.join(REPO, "data")  # a dry run: a smaller corpus
    cmd = [sys.executable, "data/prepare.py", "--tokenizer=byte", "--name=pybytes", f"--out_root={root}"] + [
        "--max_bytes=3e5", "--split_bytes=8192", "--piece_bytes=2048", "--val_fraction=0.1"] * job.dry  # val in each
    if not (job.dataset or os.path.isfile(os.path.join(root, "pybytes", "meta.json"))):
        if job.deadline - time.time() < DATA_S or subprocess.run(cmd, cwd=REPO).returncode:
            print(f"[{job.name}] no data: too little time left for {shlex.join(cmd[1:4])}, or it failed (above)")
            return
    dataset = job.dataset or (os.path.join(root, "pybytes") if job.dry else "pybytes")  # train.py finds data/<name>
    overrides = ([f"--dataset={dataset}"] if dataset != "pybytes" else []) + (
        DRY[spec.script] + [f"--device={job.device}"] if job.dry else [])
    out = os.path.join(job.work, job.name)
    for arm in [a for _, arms in spec.steps for a in arms]:  # kept by earlier calls, here or in the borrowed job
        saved = os.path.join(os.path.dirname(job.folder), spec.borrow.get(arm, job.name), "runs", arm)
        if os.path.isfile(os.path.join(saved, "arm.json")) and not os.path.isfile(os.path.join(out, arm, "arm.json")):
            copy_arm(job, saved, os.path.join(out, arm), restore=True)
            print(f"[{job.name}] {arm}: finished in an earlier call, restored from {portable(saved, job)}")
    for name, arms in spec.steps:
        est = {a: arm_estimate(spec, a, overrides, job.device, job.rate, job.compile_s) for a in arms}
        todo = [a for a in arms if not common.is_done(os.path.join(out, a), est[a]["last"])]
        est_s = ANALYSIS_S + sum(est[a]["seconds"] for a in todo)
        res = job.step(name, est_s, lambda: run_step(job, spec, out, arms, overrides, est_s, todo))
        if res is None:
            break
        rates = [r["train_flops_per_s"] for r in res.get("arms", {}).values() if r.get("train_flops_per_s")]
        if todo and rates:
            job.rate = min(rates)


def run_step(job, spec, out, arms, overrides, est_s, todo):
    """The script's main() on the step's arms and every arm done before (found finished); the arms' small files and
    the script's report (results.md and .json as experiment.md and .json, fit.json, the plot) go to the job folder."""
    done = [a for name, step_arms in spec.steps if job.ok(name) for a in step_arms]
    argv = ["--scale", "gpu", "--out", out, "--arms", ",".join(done + arms)] + overrides
    print(f"[{job.name}] python experiments/{spec.script}.py {portable(shlex.join(argv), job)}", flush=True)
    try:
        data = importlib.import_module(f"experiments.{spec.script}").main(argv) or {}
    except SystemExit as e:  # the script's own one-line errors (a train.py run that failed, a bad setting)
        raise RuntimeError(str(e)) from None
    res = {"arms": {}, "estimate_s": round(est_s, 1), "trained": bool(todo), "rate_used": job.rate}
    if "error" in (data.get("fit") or {}):  # BiMix's law not fitted: a result, not a failure to run again
        res["fit_error"] = data["fit"]["error"]
    for a in arms:
        ev = common.final_eval(os.path.join(out, a))
        if ev is None and "fit_error" not in res:
            raise RuntimeError(f"arm {a}: no final evaluation in {portable(os.path.join(out, a), job)}")
        if ev is not None:
            res["arms"][a] = {"val_loss_mean": ev["val_loss_mean"],
                              "train_flops_per_s": measured_rate(os.path.join(out, a))}
            copy_arm(job, os.path.join(out, a), os.path.join(job.folder, "runs", a))
        if a in spec.borrow and not todo:
            res["borrowed_from"] = spec.borrow[a]
    for name in os.listdir(out):  # the script's report
        dest = os.path.join(job.folder, name.replace("results.", "experiment."))
        if name.endswith(".png"):
            shutil.copyfile(os.path.join(out, name), dest)
        elif name in ("results.md", "results.json", "fit.json"):
            with open(os.path.join(out, name)) as f, open(dest, "w") as g:
                g.write(portable(f.read(), job))
    return res


def render_experiment(job):
    spec, rows = SPECS[job.name], []
    for name, arms in spec.steps:
        r = job.data["steps"].get(name, {})
        status = ("not run yet" if not r else "error" if "error" in r else f"borrowed from job {r['borrowed_from']}"
                  if "borrowed_from" in r else "fit failed: " + r["fit_error"][:80] if "fit_error" in r else "done")
        losses = ", ".join(fmt(v["val_loss_mean"]) for v in r.get("arms", {}).values()) or "-"
        rows.append((name, ", ".join(arms), status, losses,
                     f"{r['estimate_s']:.0f} / {r['wall_s']:.0f}" if "estimate_s" in r else "-"))
    return "\n".join([f"- config/{spec.script}_gpu.py; the experiment's own report: experiment.md, experiment.json", "",
                      md_table(["step", "arms", "status", "final val loss", "estimated / wall s"], rows), "",
                      f"Estimates: {ASSUMED_RATE / 1e12:.0f} TFLOP/s of training until an arm has measured its own, "
                      f"{job.compile_s:.0f} s a torch.compile, {START_S:.0f} s a train.py start."])


# -------------------------------------------------------------------------------------------------------------
# the queue

JOBS = {"speed": ("numerics on the device, and training-step speed against nanoGPT", render_speed),
        "gstack": ("Gstack against scratch", render_experiment),
        "inheritune": ("Inheritune: reference, inherited L/2 at T, scratch L/2 at T and 2T", render_experiment),
        "bimix": ("BiMix: natural, uniform, CE and the fitted mixture", render_experiment),
        "operators": ("every growth operator, depthwise and widthwise, at the gstack job's size", render_experiment)}


def listing(results):
    """A line per job: the steps it has results for; for the experiments, the estimate of all their steps."""
    lines = []
    for name in JOBS:
        steps = Job(name, os.path.join(results, name), 0).data["steps"]
        line = f"{name}: {', '.join(steps) or 'no results'}"
        if name in SPECS:
            line += (f" ({sum('error' not in v for v in steps.values())} of {len(SPECS[name].steps)} steps; all of "
                     f"them ~{(DATA_S + sum(estimate_job(name).values())) / 60:.1f} min at the assumed rate)")
        lines.append(line)
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=8.0, help="wall time for this call (default 8)")
    p.add_argument("--only", default="", help="comma-separated job names (default: all, in order)")
    p.add_argument("--results", default=RESULTS, help="where each job's folder goes (default docs/results/gpu)")
    p.add_argument("--work", default=WORK, help="the experiments' run folders, not kept (default out/gpu_jobs)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dataset", default="", help="a prepared dataset (default: pybytes, built here)")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes, to check the runner itself on a CPU")
    p.add_argument("--list", action="store_true", help="what each job has measured, and the estimates")
    a = p.parse_args(argv)
    if a.list:
        print("\n".join(listing(a.results)))
        return
    only = [j for j in a.only.split(",") if j]
    if set(only) - set(JOBS):
        raise SystemExit(f"--only: unknown job(s) {sorted(set(only) - set(JOBS))}; the jobs are {', '.join(JOBS)}")
    start, deadline = time.time(), time.time() + a.minutes * 60
    for name in [j for j in JOBS if not only or j in only]:
        job = Job(name, os.path.join(a.results, name), deadline, a.dry_run, a.device,
                  os.path.abspath(a.dataset) if os.path.isdir(a.dataset) else a.dataset, a.work)
        job.data["command"] = "python tools/gpu_jobs.py " + portable(shlex.join(argv), job)
        if name == "speed":
            speed(job)
        else:
            experiment_job(job, SPECS[name])
        job.save()
        print(f"[{name}] done or out of time after {time.time() - start:.0f} s: {job.folder}")


if __name__ == "__main__":
    install_error_hook("tools/gpu_jobs.py", ConfigError)  # a bad setting or device: one line, no traceback
    main()
