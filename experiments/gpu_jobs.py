"""
GPU work in pieces that fit a short lease: a queue of self-contained jobs, each at most about 8 minutes of wall
time on one H100 or H200 (data, compilation and evaluation included), each writing its results into its own
folder (results.json, results.md, plots) that is committed under docs/results/gpu/<job>/.

    python experiments/gpu_jobs.py --list                 # which jobs have results, which do not
    python experiments/gpu_jobs.py --minutes 8            # run the next jobs (or the rest of one) that fit
    python experiments/gpu_jobs.py --minutes 8 --only gstack,inheritune
    python experiments/gpu_jobs.py --dry-run --device=cpu --results /tmp/x --work /tmp/w   # tiny shapes, a CPU

Jobs: 1 speed (CUDA numerics, throughput against nanoGPT), then the three papers' headline comparisons at the gpu
scale (config/<experiment>_gpu.py, on the byte-level corpus of the cpu scale, models and budgets ~8-16x larger):
2 gstack (scratch vs Gstack), 3 inheritune (reference, inherited L/2 at T, scratch L/2 at T and 2T), 4 bimix
(natural, uniform, CE, the fitted optimum) and 5 operators (every other growth operator, depthwise and widthwise,
at job 2's size; it borrows job 2's two arms and spans several calls).

A job is a list of steps. Each step's result is saved as soon as it is done, so a job cut off by its time limit
keeps what it measured and the next call runs only the steps still missing. A step starts only when its estimated
cost fits in the time left; estimates use the compile time and the training rate this job measured once it has,
conservative assumptions until then (jobs 2-5: see the comment above ASSUMED_RATE).

The device has no network and sees only the repository: the GPT-2 ranks file (data/gpt2.tiktoken) and nanoGPT's
model.py (.nanogpt/, for the speed comparison; never committed) are git-ignored and travel as carried paths.
Data is built on the device from its own Python sources (data/prepare.py's offline corpus; jobs 2-5 its byte-level
form, pybytes, in data/pybytes). Jobs 2-5 train in --work (default out/gpu_jobs, git-ignored): checkpoints stay on
the device; what a job keeps (tables, plots, each finished arm's small files) goes to its folder.
"""

import argparse
import copy
import datetime
import functools
import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from configurator import model_args  # noqa: E402
from experiments import common  # noqa: E402
from experiments.common import host_device, md_table  # noqa: E402

RESULTS = os.path.join(REPO, "docs", "results", "gpu")
NANOGPT = os.path.join(REPO, ".nanogpt")


class Job:
    """One job's folder and clock: runs steps that fit, saves each result at once, renders results.md."""

    def __init__(self, name, title, folder, deadline, dry, device, dataset, render):
        self.name, self.title, self.folder, self.deadline = name, title, folder, deadline
        self.dry, self.device, self.dataset, self.render = dry, device, dataset, render
        self.path = os.path.join(folder, "results.json")
        self.data = {"job": name, "steps": {}}
        if os.path.isfile(self.path):
            with open(self.path) as f:
                self.data = json.load(f)
        self.compile_s = 45.0  # one torch.compile of a 124M model, until this job measures its own
        self.rate, self.rate_measured = ASSUMED_RATE, False  # training FLOP/s for the estimates (experiment jobs)
        self.work = os.path.join(REPO, "out", "gpu_jobs")  # the experiment jobs' run folders
        self.model = None  # what each result measured, recorded with it (the speed job: SPEED_MODEL)

    def data_dir(self):
        """The dataset for training steps: the one given, or the offline corpus built here on first use."""
        if not self.dataset:
            root = tempfile.mkdtemp()
            code, tail = run([sys.executable, "data/prepare.py", "--name=gpujobs", f"--out_root={root}",
                              "--max_bytes=4e6"], timeout=300)
            if code:
                raise RuntimeError(f"data/prepare.py failed:\n{tail}")
            self.dataset = os.path.join(root, "gpujobs")
        return self.dataset

    def left(self):
        return self.deadline - time.time()

    def step(self, name, est_s, fn):
        """Run fn() -> dict unless this step has a result already or its estimate does not fit the time left.
        A step that failed is run again."""
        if name in self.data["steps"] and "error" not in self.data["steps"][name]:
            return self.data["steps"][name]  # measured by an earlier call
        if est_s > self.left():
            print(f"[{self.name}] {name}: needs ~{est_s:.0f} s, {self.left():.0f} s left: not run")
            return None
        print(f"[{self.name}] {name} (~{est_s:.0f} s estimated, {self.left():.0f} s left)", flush=True)
        t0 = time.time()
        try:
            out = fn()
        except Exception as e:  # one broken step should not lose the others; the error is the result
            import traceback
            traceback.print_exc()
            out = {"error": f"{type(e).__name__}: {e}"}
        out["wall_s"] = round(time.time() - t0, 1)
        if self.model:
            out["model"] = self.model
        out["ran"] = {"device": host_device(), "date": datetime.date.today().isoformat()}
        self.data["steps"][name] = out
        self.save()
        return out

    def save(self):
        os.makedirs(self.folder, exist_ok=True)
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.data, f, indent=2, default=str)
        os.replace(self.path + ".tmp", self.path)
        with open(os.path.join(self.folder, "results.md"), "w") as f:
            f.write(f"# GPU job `{self.name}`: {self.title}\n\n" + self.render(self) + "\n")


def run(cmd, timeout, cwd=REPO):
    """A subprocess with its output echoed; returns (exit code, last 4000 characters of output)."""
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out = p.stdout + p.stderr
    print(out[-2000:])
    return p.returncode, out[-4000:]


# -------------------------------------------------------------------------------------------------------------
# job 1: speed and correctness on CUDA

def cuda_checks(device):
    """The model's numerics on the device: CPU vs device logits, Hugging Face's model on our export, growth that
    must keep the function, and compiled + bf16 vs eager bf16. Returns the largest differences found."""
    import torch
    import grow
    from model import GPT, GPTConfig, to_hf
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 comparisons in full fp32
    out = {}
    for arch in ("gpt2", "llama"):
        torch.manual_seed(0)
        m = GPT(GPTConfig(arch=arch, n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=512)).eval()
        idx = torch.randint(0, 512, (2, 64))
        ref = m(idx)[0]
        md = copy.deepcopy(m).to(device)
        got = md(idx.to(device))[0]
        out[f"{arch}: cpu vs device fp32"] = (got.cpu() - ref).abs().max().item()
        for op in ("zero", "random"):  # at ramp 0 / zero writers the grown model is the small one
            big = grow.grow_depth(md, op, factor=2).to(device).eval()
            out[f"{arch}: depth {op} growth gap"] = grow.logit_gap(md, big, idx.to(device))
        try:
            import transformers
            with tempfile.TemporaryDirectory() as d:
                to_hf(m, d)
                hf = transformers.AutoModelForCausalLM.from_pretrained(d).to(device).eval()
                with torch.no_grad():
                    out[f"{arch}: transformers vs ours on device"] = (hf(idx.to(device)).logits - got).abs().max().item()
        except ImportError:
            out[f"{arch}: transformers vs ours on device"] = None
        if torch.device(device).type == "cuda":
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                eager = md(idx.to(device))[0].float()
                comp = torch.compile(md)(idx.to(device))[0].float()
            out[f"{arch}: compiled vs eager bf16 (max |logit|={eager.abs().max().item():.1f})"] = \
                (comp - eager).abs().max().item()
    torch.backends.cuda.matmul.allow_tf32 = tf32
    limits = {"cpu vs device": 1e-4, "growth gap": 1e-5, "transformers": 1e-4, "compiled vs eager": 0.1}
    verdict = {k: (v is None or v <= next(lim for key, lim in limits.items() if key in k)) for k, v in out.items()}
    return {"max_abs_diff": out, "limits": limits, "ok": all(verdict.values()), "failed": [k for k, v in verdict.items()
                                                                                           if not v]}


def train_pair(job, shapes, iters):
    """train.py twice on the same data and seed, compile + bf16 and eager bf16: the loss must fall, and the two
    runs must agree within bf16 noise."""
    from runs import read_metrics
    runs = {}
    for name, comp in (("compiled", True), ("eager", False)):
        out_dir = os.path.join(tempfile.mkdtemp(), name)
        code, tail = run([sys.executable, "train.py", f"--dataset={job.data_dir()}", f"--out_dir={out_dir}",
                          f"--device={job.device}", f"--compile={comp and not job.dry}", f"--max_iters={iters}",
                          f"--eval_interval={iters // 2}", f"--log_interval={max(1, iters // 10)}"] + shapes
                         + ([] if job.dry else ["--dtype=bfloat16"]), timeout=600)
        if code:
            return {"error": f"train.py ({name}) exited {code}", "output": tail}
        evals = [r for r in read_metrics(out_dir, log=lambda *a: None) if "val_loss_mean" in r]
        logs = [r for r in read_metrics(out_dir, log=lambda *a: None) if "train_loss" in r]
        runs[name] = {"val": [(r["iter"], r["val_loss_mean"]) for r in evals],
                      "tokens_per_s": logs[-1].get("tokens_per_s") if logs else None}
    first, last = runs["compiled"]["val"][0][1], runs["compiled"]["val"][-1][1]
    gap = abs(runs["compiled"]["val"][-1][1] - runs["eager"]["val"][-1][1])
    return {"runs": runs, "args": shapes, "iters": iters, "loss_fell": last < first - 1.0, "final_gap": gap,
            "tolerance": 0.05, "ok": last < first - 1.0 and gap <= 0.05}


def speed(job):
    import torch
    import bench
    from model import device_peak_flops
    dry = job.dry
    job.model = SPEED_MODEL
    shapes = (["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4", "--vocab_size=512",
               "--warmup=1", "--steps=2", "--rounds=2"] if dry else [])
    base = bench.settings([f"--device={job.device}"] + shapes)
    if base["device_type"] == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tiny_train = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
                  "--eval_iters=2", "--warmup_iters=2", "--learning_rate=3e-3"]
    mid_train = ["--n_layer=6", "--n_head=6", "--n_embd=384", "--block_size=256", "--batch_size=32",
                 "--eval_iters=20", "--warmup_iters=10", "--learning_rate=1e-3"]

    job.step("env", 1, lambda: {"torch": torch.__version__, "cuda": torch.version.cuda, "device": host_device(),
                                "bf16_peak_flops": base["peak_flops"] or device_peak_flops()})
    job.step("cuda_checks", 60, lambda: cuda_checks(job.device))

    def compare(variants, builders=None, isolate=False):
        """Time {name: settings changes} side by side (bench.time_steps), our model unless `builders` names
        another. A variant whose first step fails (a kernel this device lacks) is reported and left out.
        isolate=True: one variant at a time, each compiled afresh. Needed for the SDPA kernel: dynamo does not
        guard on it, so a second model of the same class would reuse the first one's compiled graph."""
        if isolate:
            out = [compare({name: change}, builders) for name, change in variants.items() if not
                   torch._dynamo.reset()]
            return {**out[0], "variants": variants, "isolated": True,
                    "results": {k: v for o in out for k, v in o["results"].items()},
                    "errors": {k: v for o in out for k, v in o["errors"].items()}}
        steps, errors = {}, {}
        for name, change in variants.items():
            s = {**base, **change}
            torch.manual_seed(s["seed"])
            try:
                model = (builders or {}).get(name, bench.build_ours)(s)
                flops = (model.flops_per_token(s["block_size"]) if hasattr(model, "flops_per_token")
                         else bench.build_ours({**s, "grow_at_tokens": 0}).flops_per_token(s["block_size"]))
                step = bench.make_step(model, s, fused=change.get("fused"))
                t0 = time.perf_counter()
                step()  # compiles
                bench.sync(base["device_type"])
                step.first_s, step.flops, step.s = time.perf_counter() - t0, flops, s
                steps[name] = step
            except Exception as e:
                errors[name] = f"{type(e).__name__}: {str(e)[:300]}"
        res = bench.time_steps(steps, base)
        for name, r in res.items():
            r["first_step_s"] = steps[name].first_s
            r["mfu"] = bench.mfu(steps[name].flops, r["tokens_per_s"], steps[name].s)
        compiled = [r["first_step_s"] for n, r in res.items() if steps[n].s["compile"]]
        if compiled:  # a cold compile; later ones may hit the cache, but estimates stay on the safe side
            job.compile_s = max([job.compile_s] + compiled)
        del steps
        if base["device_type"] == "cuda":
            torch.cuda.empty_cache()
        return {"settings": {k: base[k] for k in ("n_layer", "n_embd", "block_size", "batch_size", "dtype",
                                                  "compile", "vocab_size")},
                "variants": variants, "results": res, "errors": errors}

    if os.path.isfile(os.path.join(NANOGPT, "model.py")):
        nano = {"nanoGPT": lambda s: bench.build_nanogpt(s, NANOGPT)}
        job.step("vs_nanogpt", 2 * job.compile_s + 20, lambda: compare({"nanogrow": {}, "nanoGPT": {}}, nano))
    else:
        nano = None
        print(f"[speed] no nanoGPT model.py in {NANOGPT}: the comparison steps are left out")
    job.step("train_smoke", job.compile_s + 40, lambda: train_pair(job, tiny_train if dry else mid_train,
                                                                   10 if dry else 50))
    g = 2 if dry else 4
    job.step("growth", job.compile_s + 30, lambda: compare(
        {f"grown x{g} (direct)": {"n_layer": base["n_layer"] // g, "grow_at_tokens": 1, "grow_factor": g,
                                  "grow_op": "direct"}, "fresh": {}}))
    job.step("switches", 3 * job.compile_s + 30, lambda: compare(
        {"all on": {}, "no compile": {"compile": False}, "float32 (TF32)": {"dtype": "float32"},
         "for-each AdamW": {"fused": False}, "tanh GELU (GPT-2's own)": {"gelu_approximate": "tanh"}}))
    kernels = ["flash", "math"] if dry else ["flash", "cudnn", "efficient"]
    job.step("attention", (len(kernels) + 1) * job.compile_s, lambda: compare(
        {"attention=auto": {}, **{f"attention={k}": {"attention": k} for k in kernels}}, isolate=True))
    for b in ([2, 8] if dry else [16, 32, 24]):
        variants = {f"nanogrow B={b}": {"batch_size": b}}
        if nano:
            variants[f"nanoGPT B={b}"] = {"batch_size": b}
        job.step(f"microbatch_{b}", len(variants) * job.compile_s + 20,
                 lambda v=variants: compare(v, {k: nano["nanoGPT"] for k in v if k.startswith("nanoGPT")}))
    if not dry:  # the suite runs these itself; here they meet the device's own transformers
        job.step("unit_tests", 90, lambda: dict(zip(("exit_code", "output"), run(
            [sys.executable, "-m", "pytest", "-q", "-x", "tests/test_model.py", "tests/test_grow.py"], 300))))


def render_speed(job):
    st = job.data["steps"]
    lines = [f"- command: `{job.data.get('command', '')}`"]
    if "env" in st:
        e = st["env"]
        lines.append(f"- device: {e['device']}; torch {e['torch']}, CUDA {e['cuda']}; date {e['ran']['date']}")
    lines.append("- each heading names in brackets the model its table measured")
    lines += speed_sections({k: v for k, v in st.items() if "@" not in k}, "##")
    earlier = sorted({k.split("@")[1] for k in st if "@" in k})
    for commit in earlier:  # steps measured again with a newer model, kept for the record (see SPEED_SECTIONS)
        lines += ["", f"## Superseded: the model of commit {commit} (these steps run again with the current model)"]
        lines += speed_sections({k.split("@")[0]: v for k, v in st.items() if k.endswith("@" + commit)}, "###")
    errors = {k: v["error"] for k, v in st.items() if "error" in v}
    if errors:
        lines += ["", "## Errors", ""] + [f"- {k}: {v}" for k, v in errors.items()]
    return "\n".join(lines)


def speed_sections(st, h):
    """results.md's sections for the speed job's steps `st` ({step: result}), headings at level `h`."""
    lines = []
    if "cuda_checks" in st and "max_abs_diff" in st["cuda_checks"]:
        c = st["cuda_checks"]
        lines += ["", f"{h} Numerics on the device{model_of(c)}", "",
                  md_table(["check", "max abs difference"],
                           [(k, "-" if v is None else f"{v:.2e}") for k, v in c["max_abs_diff"].items()]),
                  "", f"Limits: {c['limits']}. All within: **{'yes' if c['ok'] else 'no: ' + ', '.join(c['failed'])}**."]
    if "unit_tests" in st and "exit_code" in st["unit_tests"]:
        u = st["unit_tests"]
        last = [l for l in u.get("output", "").splitlines() if l.strip()][-1:] or ["?"]
        lines += ["", f"Model and growth tests on the device's packages{model_of(u)}: exit {u.get('exit_code')}, "
                      f"`{last[0]}`"]
    if "train_smoke" in st and "runs" in st["train_smoke"]:
        t = st["train_smoke"]
        rows = [(name, " -> ".join(f"{l:.3f} (iter {i})" for i, l in r["val"]), f"{r['tokens_per_s'] or 0:,.0f}")
                for name, r in t["runs"].items()]
        lines += ["", f"{h} train.py: compile + bf16 against eager bf16 ({t['iters']} iterations, same seed)"
                      f"{model_of(t)}", "",
                  f"Settings: `{' '.join(t['args'])}`", "",
                  md_table(["run", "val loss (mean over domains)", "tokens/s (last log)"], rows), "",
                  f"Final gap {t['final_gap']:.4f} (tolerance {t['tolerance']}); loss fell: {t['loss_fell']}. "
                  f"**{'pass' if t['ok'] else 'FAIL'}**"]
    for key, title in SPEED_SECTIONS:
        if key in st and "results" in st[key]:
            lines += ["", f"{h} {title}{model_of(st[key])}", "", speed_table(st[key])] + \
                (["", st[key]["note"]] if "note" in st[key] else [])
    mb = {k: v for k, v in st.items() if k.startswith("microbatch_") and "results" in v}
    if mb:
        rows = [r for v in mb.values() for r in speed_rows(v)]
        lines += ["", f"{h} Micro-batch sizes{model_of(next(iter(mb.values())))}", "", md_table(SPEED_HEAD, rows)]
    return lines


# What the speed job's results measure, recorded with each. When a model change makes results stale, say so here,
# and rename the keys of the steps to measure again in results.json to "<key>@<commit they measured>": the runner
# then finds those steps missing, and the old results move to a "Superseded" section of results.md.
SPEED_MODEL = "d919085: one q/k/v matmul, exact GELU"

# The timing steps' sections in results.md.
SPEED_SECTIONS = (("vs_nanogpt", "nanogrow against nanoGPT's model, same shapes, same process"),
                  ("vs_nanogpt_short", "The same, first lease (3 rounds of 10 steps)"),
                  ("switches", "What each switch is worth (one switch changed at a time)"),
                  ("attention", "The SDPA kernel (each compiled afresh, timed one after another)"),
                  ("growth", "Throughput after an in-run growth against a fresh model of the grown size"),
                  ("growth_short", "The same, first lease (3 rounds of 10 steps, fresh model first)"))


def model_of(step):
    """A section title's note on which model a step measured, where it records one."""
    return f" [model {step['model']}]" if "model" in step else ""


SPEED_HEAD = ["variant", "batch", "ms/iter", "tokens/s", "ratio", "MFU", "peak GiB", "first step s"]


def speed_rows(v):
    res = v["results"]
    first = next(iter(res.values()))["tokens_per_s"]
    rows = []
    for name, r in res.items():
        b = v["variants"][name].get("batch_size", v["settings"]["batch_size"])
        rows.append((name, b, f"{r['ms']:.1f}", f"{r['tokens_per_s']:,.0f}", f"{r['tokens_per_s'] / first:.3f}",
                     "-" if r.get("mfu") is None else f"{r['mfu']:.1%}", f"{r.get('mem_gib', 0):.1f}",
                     f"{r['first_step_s']:.1f}"))
    rows += [(name, "-", "failed: " + err, "", "", "", "", "") for name, err in v.get("errors", {}).items()]
    return rows


def speed_table(v):
    s = v["settings"]
    r = next(iter(v["results"].values()), {})
    return (f"{s['n_layer']} layers, {s['n_embd']} wide, context {s['block_size']}, vocabulary {s['vocab_size']}; "
            f"{len(r.get('rounds_ms', []))} timed rounds each; ratio: tokens/s over the first row's.\n\n" + md_table(SPEED_HEAD, speed_rows(v)))


# -------------------------------------------------------------------------------------------------------------
# jobs 2-5: the experiments at the gpu scale (config/<experiment>_gpu.py), one step per arm
#
# A step trains its arms as `python experiments/<name>.py --scale gpu --out <work>/<job> --arms <the step's>` would
# (the script's own parse and run_seed, in this process: train.py subprocesses; finished arms are reused,
# interrupted ones resumed), and keeps them in the job folder at once. At the end of the job's turn in a call, cut
# off by time or not, the script's main() runs on every arm done (all found finished: tables and plot only) and
# its report is copied into the job folder (experiment.md / experiment.json / *.png). In this process and once a
# call rather than per step: an interpreter start, a torch import and a plot fewer per step, most of a step's
# cost in the CPU dry run the tests make.
#
# Across leases: a new lease is a fresh machine, so checkpoints do not survive, only the job folder does. Each
# finished arm's small files (metrics.jsonl, config.json, arm.json, train.log) go to <job folder>/runs/<arm>/;
# a later call copies them back into the work folder, where the experiment finds the arm finished and reuses it.
# That is enough for every arm whose later steps need only its metrics (the scratch baseline, BiMix's proxies), not
# for one whose weights a later arm starts from: Inheritune's reference and the inherited arm are one step.
#
# Estimates: estimated seconds of an arm = start-up + compiles x compile time + training FLOPs / rate + evaluations
# (eager forward passes at half the rate, and a checkpoint after each) + the analysis. The rate is ASSUMED_RATE
# until an arm of this call has trained; then the rate that arm measured (train.py's logged tokens/s x FLOPs per
# token, compile steps left out). The config headers (config/<experiment>_gpu.py) give the same sums by hand.

ASSUMED_RATE = 1e14    # training FLOP/s before anything is measured: 10% MFU of an H100 (989 TFLOP/s bf16 peak). Low
#                        on purpose: the speed job measured 40% for GPT-2 124M on an H200 but ~13% for a 6-layer,
#                        384-wide model in train.py; models this narrow reach less, and an H100 has less bandwidth.
START_S = 15.0         # one train.py start: interpreter, CUDA context, dataset, model
EVAL_SPEED = 0.5       # evaluations run the eager model: their forward FLOPs at half the training rate
CKPT_BYTES_PER_S = 3e8  # a checkpoint (fp32 weights + AdamW's two moments: 12 bytes a parameter), digest and fsync
LEARN_SPEED = 0.2      # G_learn fits its maps eagerly in float32: its FLOPs at a fifth of the rate
ANALYSIS_S = 10.0      # per step: runs read back, and the experiment's tables and plot when the job ends its turn
DATA_S = 60.0          # data/prepare.py --tokenizer=byte --name=pybytes on the device, worst case
TRAIN_MARGIN = 1.15    # on the training time once the rate is a measured one
DRY = {  # tiny shapes for --dry-run: seconds per arm on a CPU (the experiments' tiny configs, smaller still)
    "gstack": ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4", "--max_iters=12",
               "--grow_at_tokens=512", "--warmup_iters=2", "--eval_interval=4", "--eval_iters=1", "--log_interval=4",
               "--grow_ramp_steps=4", "--grow_learn_steps=2"],
    "inheritune": ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4", "--max_iters=8",
                   "--warmup_iters=2", "--eval_interval=4", "--eval_iters=1", "--log_interval=4"],
    "bimix": ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4", "--max_iters=20",
              "--warmup_iters=2", "--eval_interval=2", "--eval_iters=1", "--log_interval=2"],
}


class Spec:
    """One experiment job: the script, its steps [(step name, [arms])] and where it may borrow finished arms."""

    def __init__(self, script, steps, needs=None, borrow=None, sizing=""):
        self.script, self.steps, self.needs, self.borrow, self.sizing = script, steps, needs or {}, borrow or {}, sizing

    def arms(self):
        return [a for _, arms in self.steps for a in arms]


# The jobs at the assumed rate (each config's header has the terms; tests/test_gpu_jobs.py checks the sums):
#   2 gstack      data 60 + scratch 179 (84 s of training) + Gstack 210 (69 s, two compiles) = ~7.5 min
#   3 inheritune  data 60 + reference and inherit 195 (35 + 17 s) + scratch_T 92 (17 s) + scratch_2T 113 (35 s)
#                 = ~7.7 min
#   4 bimix       data 60 + 4 arms x 98 (15 s of training each; 45 s compiling) = ~7.5 min
#   5 operators   7 arms of 210-255 s (69 s of training, two or three compiles) = ~26.5 min: ~4 calls of 8 minutes
#                 (job 2's scratch and Gstack borrowed, not trained again)
SPECS = {
    "gstack": Spec("gstack", [("scratch", ["scratch"]), ("gstack", ["gstack"])],
                   sizing="config/gstack_gpu.py: Llama 8 layers x 512 (base 2 layers, g = 4), context 256, bytes; "
                          "B = 50.3M tokens per arm, d = 25% of B."),
    "inheritune": Spec("inheritune", [("reference+inherit", ["reference", "inherit"]), ("scratch_T", ["scratch_T"]),
                                      ("scratch_2T", ["scratch_2T"])],
                       sizing="config/inheritune_gpu.py: GPT-2 reference 8 layers x 512, L/2 = 4, context 256, "
                              "bytes; T = 640 steps of 32K tokens (21M tokens), 2T = 42M. The reference and the "
                              "arm that inherits from it are one step: the inheritance needs the reference's "
                              "checkpoint, which does not outlive a lease."),
    "bimix": Spec("bimix", [("natural", ["natural"]), ("uniform", ["uniform"]), ("ce", ["ce"]), ("fitted", ["fitted"])],
                  needs={"fitted": ["natural", "uniform", "ce"]},
                  sizing="config/bimix_gpu.py: GPT-2 proxy 6 layers x 384, context 256, bytes; s = 640 steps of "
                         "32K tokens (21M tokens) per arm, an evaluation every 32 steps for the law's fit."),
    "operators": Spec("gstack", [("scratch", ["scratch"]), ("gstack", ["gstack"])]
                      + [(a, [a]) for a in ("depth_zero", "depth_random", "depth_learn", "width_direct", "width_zero",
                                            "width_random", "width_learn")],
                      borrow={"scratch": "gstack", "gstack": "gstack"},
                      sizing="config/gstack_gpu.py, as job 2 (scratch and Gstack are borrowed from its folder); "
                             "widthwise: 8 layers at 256 wide grown to 512 after d. One arm is ~3.5 min at the "
                             "assumed rate: the job takes several calls, each keeping the arms it finished."),
}


def experiment(script):
    """experiments/<script>.py as a module (imported when a job needs it: it imports torch)."""
    return importlib.import_module(f"experiments.{script}")


def experiment_settings(spec, overrides):
    return common.resolve([os.path.join("config", f"{spec.script}_gpu.py")] + overrides)


def meta_model(s):
    """The GPT of settings s on the meta device: shapes and FLOPs, no memory (built once per model)."""
    return _meta_model(tuple(sorted(model_args(s).items())))


@functools.lru_cache(maxsize=None)
def _meta_model(args):
    import torch
    from model import GPT, GPTConfig
    args = dict(args)
    with torch.device("meta"):
        return GPT(GPTConfig(**dict(args, vocab_size=args.get("vocab_size") or 50304)))


def arm_plan(spec, arm, s, overrides, device):
    """What one arm trains, from the experiment's own arm settings: phases [(model settings, tokens)], compiles,
    evaluations and checkpoints."""
    base = [os.path.join("config", f"{spec.script}_gpu.py")] + overrides
    gstack, inheritune = experiment("gstack"), experiment("inheritune")
    if spec.script == "gstack":
        a = common.resolve(base + gstack.arm_args(arm, s))
    elif spec.script == "inheritune":
        a = common.resolve(base + inheritune.arm_args(arm, s, "reference"))
    else:
        a = s
    last = common.final_iter(a)
    total = last * common.tokens_per_iter(a)
    phases = [(a, total)]
    if a["grow_at_tokens"]:
        d = a["grow_at_tokens"]
        big = (dict(a, n_layer=a["n_layer"] * a["grow_factor"]) if a["grow_dim"] == "depth" else
               dict(a, n_embd=s["n_embd"], n_head=s["n_head"], n_kv_head=s["n_kv_head"],
                    intermediate_size=s["intermediate_size"]))
        phases = [(a, d), (big, total - d)]
    compiled = a["compile"] if a["compile"] is not None else str(a["device"] if a["device"] != "auto" else
                                                                 device).startswith("cuda")
    ramp = a["grow_at_tokens"] and a["grow_op"] == "random"  # the ramp ends with a plain model: a third compile
    evals = last // a["eval_interval"] + 1 + (last % a["eval_interval"] != 0)
    learn = (a["grow_learn_steps"] * a["batch_size"] * a["block_size"] * meta_model(phases[-1][0]).flops_per_token()
             if a["grow_at_tokens"] and a["grow_op"] == "learn" else 0)
    return {"arm": arm, "last": last, "phases": phases, "compiles": (len(phases) + bool(ramp)) * bool(compiled),
            "evals": evals, "checkpoints": evals + (len(phases) > 1), "learn_flops": learn}


def plan_seconds(plan, rate, compile_s, domains=3, measured=False):
    """Estimated wall seconds of one arm (see the section's comment); a dict of the terms."""
    flops = sum(meta_model(m).flops_per_token() * n for m, n in plan["phases"])
    last = meta_model(plan["phases"][-1][0])
    s = plan["phases"][-1][0]
    eval_tokens = plan["evals"] * s["eval_iters"] * s["batch_size"] * s["block_size"] * domains
    terms = {"start": START_S, "compile": plan["compiles"] * compile_s,
             "train": flops / rate * (TRAIN_MARGIN if measured else 1.0),
             "evals": eval_tokens * last.flops_per_token() / 3 / (rate * EVAL_SPEED)
             + plan["checkpoints"] * 12 * last.num_params(non_embedding=False) / CKPT_BYTES_PER_S,
             "learn": plan["learn_flops"] / (rate * LEARN_SPEED)}
    return {"flops": flops, "seconds": round(sum(terms.values()), 1), **{k: round(v, 1) for k, v in terms.items()}}


def measured_rate(run_dir):
    """Training FLOP/s of a finished run from its metrics: the train log lines' tokens/s x the FLOPs per token of
    their interval; the first interval of the run and of a grown model (torch.compile's) left out. None if unknown."""
    ms = common.metrics(run_dir)
    flops = secs = 0.0
    prev, skip = None, True
    for m in ms:
        if m.get("event") == "grow":
            prev, skip = m, True
            continue
        if "tokens_per_s" not in m:
            continue
        if prev is not None and not skip and m["tokens"] > prev["tokens"] and m["tokens_per_s"]:
            flops += m["flops"] - prev["flops"]
            secs += (m["tokens"] - prev["tokens"]) / m["tokens_per_s"]
        prev, skip = m, False
    return flops / secs if secs else None


def dataset_for(job):
    """The byte-level dataset of the experiment jobs: --dataset, or pybytes, built here (data/pybytes) when absent.
    None when there is no time left to build it."""
    if job.dataset:
        return job.dataset
    if os.path.isfile(os.path.join(REPO, "data", "pybytes", "meta.json")):
        return "pybytes"
    if job.dry:  # a small one of the same recipe, out of the repository
        root = os.path.join(job.work, "data")
        if os.path.isfile(os.path.join(root, "pybytes", "meta.json")):
            return os.path.join(root, "pybytes")
        cmd = ["--max_bytes=3e5", f"--out_root={root}"]
    else:
        if job.left() < DATA_S:
            print(f"[{job.name}] data: needs ~{DATA_S:.0f} s, {job.left():.0f} s left: not built")
            return None
        root, cmd = os.path.join(REPO, "data"), []
    t0 = time.time()
    code, tail = run([sys.executable, "data/prepare.py", "--tokenizer=byte", "--name=pybytes"] + cmd, timeout=600)
    if code:  # said in the job's results.md; the other jobs still run
        job.data["data"] = {"error": f"data/prepare.py exited {code}: {tail[-500:]}", "device": host_device()}
        return None
    job.data["data"] = {"built_s": round(time.time() - t0, 1), "device": host_device()}
    path = os.path.join(root, "pybytes")
    return "pybytes" if root == os.path.join(REPO, "data") else path


def portable(text, job):
    """A file's text as the job folder keeps it: common.portable's, and a work folder outside the repository as
    <work>, so no path of this machine is left."""
    text = common.portable(text)
    work = os.path.abspath(job.work)
    return text.replace(work, "<work>") if os.path.relpath(work, REPO).startswith("..") else text


SMALL_FILES = ("metrics.jsonl", "config.json", "train.log")


def save_arm(job, run_dir, arm):
    """Keep a finished arm's small files in <job folder>/runs/<arm>/ (arm.json with placeholders for the paths a
    later call must put back)."""
    dest = os.path.join(job.folder, "runs", arm)
    os.makedirs(dest, exist_ok=True)
    for name in SMALL_FILES:
        if os.path.isfile(os.path.join(run_dir, name)):
            with open(os.path.join(run_dir, name)) as f, open(os.path.join(dest, name), "w") as g:
                g.write(portable(f.read(), job))
    with open(os.path.join(run_dir, "arm.json")) as f:
        rec = json.load(f)
    work = os.path.abspath(job.work)
    rec["argv"] = [a.replace(work, "{work}").replace(REPO, "{repo}") for a in rec["argv"]]
    with open(os.path.join(dest, "arm.json"), "w") as f:
        json.dump(rec, f, indent=2)


def restore_arm(job, saved, run_dir):
    """Copy an arm's saved small files into an empty run_dir; its arm.json gets this machine's paths back and
    run_dir as its out_dir, so the experiment finds the arm finished with the same settings and reuses it."""
    if not os.path.isfile(os.path.join(saved, "arm.json")) or (os.path.isdir(run_dir) and os.listdir(run_dir)):
        return False
    os.makedirs(run_dir, exist_ok=True)
    for name in SMALL_FILES:
        if os.path.isfile(os.path.join(saved, name)):
            shutil.copyfile(os.path.join(saved, name), os.path.join(run_dir, name))
    with open(os.path.join(saved, "arm.json")) as f:
        rec = json.load(f)
    work = os.path.abspath(job.work)
    rec["argv"] = [f"--out_dir={run_dir}" if a.startswith("--out_dir=") else
                   a.replace("{work}", work).replace("{repo}", REPO) for a in rec["argv"]]
    with open(os.path.join(run_dir, "arm.json"), "w") as f:
        json.dump(rec, f, indent=2)
    return True


def arm_row(run_dir):
    ev = common.final_eval(run_dir) or {}
    rec = {}
    if os.path.isfile(os.path.join(run_dir, "arm.json")):
        with open(os.path.join(run_dir, "arm.json")) as f:
            rec = json.load(f)
    rate = measured_rate(run_dir)
    return {"iter": ev.get("iter"), "tokens": ev.get("tokens"), "flops": ev.get("flops"),
            "val_loss_mean": ev.get("val_loss_mean"), "train_wall_s": round(rec.get("wall_s", 0.0), 1),
            "train_flops_per_s": rate}


def experiment_job(job, spec):
    """Run the job's steps that fit, then the experiment's report on every arm done (see the section's comment)."""
    mod = experiment(spec.script)
    out = os.path.join(os.path.abspath(job.work), job.name)
    if all(name in job.data["steps"] and "error" not in job.data["steps"][name] for name, _ in spec.steps) and \
            (job.data.get("report") or {}).get("arms") == done_arms(job, spec):
        print(f"[{job.name}] every step has its result (in {job.folder})")
        return  # and no data to build
    dataset = dataset_for(job)
    if dataset is None:
        return
    overrides = ([f"--dataset={dataset}"] if dataset != "pybytes" else []) + (
        DRY[spec.script] + [f"--device={job.device}"] if job.dry else [])
    s = experiment_settings(spec, overrides)
    run_dir = {a: os.path.join(out, a) for a in spec.arms()}  # no aliases among the jobs' arms
    for arm in spec.arms():  # what earlier calls finished (this job's folder, or the one it borrows from)
        src = os.path.join(os.path.dirname(job.folder), spec.borrow[arm]) if arm in spec.borrow else job.folder
        if restore_arm(job, os.path.join(src, "runs", arm), run_dir[arm]):
            print(f"[{job.name}] {arm}: finished in an earlier call, restored from {portable(src, job)}")
    meta = common.dataset_meta(s["dataset"])
    domains = len(meta["domains"]) if meta else 3
    ran = False  # a step ran in this call: the report is made again
    for name, arms in spec.steps:
        ok = {n for n, r in job.data["steps"].items() if "error" not in r}
        if [n for n in spec.needs.get(name, []) if n not in ok]:
            print(f"[{job.name}] {name}: waits for {spec.needs[name]}")
            break
        plans = [arm_plan(spec, a, s, overrides, job.device) for a in arms]
        costs = [plan_seconds(p, job.rate, job.compile_s, domains, job.rate_measured) for p in plans]
        todo = [c for p, c in zip(plans, costs) if not common.is_done(run_dir[p["arm"]], p["last"])]
        est = ANALYSIS_S + sum(c["seconds"] for c in todo)
        res = job.step(name, est, lambda: run_step(job, mod, spec, out, arms, overrides, run_dir,
                                                   {a: c for a, c in zip(arms, costs)}, est, bool(todo)))
        if res is None:
            break
        ran = ran or name not in ok
        if "error" not in res and todo:
            rates = [r["train_flops_per_s"] for r in res["arms"].values() if r.get("train_flops_per_s")]
            if rates:
                job.rate, job.rate_measured = min(rates), True
    if ran or (job.data.get("report") or {}).get("arms") != done_arms(job, spec):
        report(job, mod, spec, out, overrides)


def done_arms(job, spec):
    """The arms of the steps measured without error, in the job's order."""
    return [a for name, arms in spec.steps for a in arms
            if name in job.data["steps"] and "error" not in job.data["steps"][name]]


def parse_experiment(mod, script, argv):
    """The experiment's own command line (experiments/common.py's parse), as its main() builds it."""
    return common.parse(argv, script, mod.ARMS, mod.__doc__, options=getattr(mod, "options", None))


def run_step(job, mod, spec, out, arms, overrides, run_dir, costs, est, trains):
    """Train (or find finished) one step's arms with the experiment's own run_seed, as its main() does, without
    its tables (report() makes them once a call); keep each finished arm's small files in the job folder."""
    argv = ["--scale", "gpu", "--out", out, "--arms", ",".join(arms)] + overrides
    print(f"[{job.name}] python experiments/{spec.script}.py {portable(shlex.join(argv), job)}", flush=True)
    try:
        args = parse_experiment(mod, spec.script, argv)
        if spec.script == "gstack":
            mod.check_settings(args.settings)
        got = mod.run_seed(args, args.settings, 0, args.seed_list[0], common.child_env(args.scale))
    except SystemExit as e:  # the experiment's own one-line errors (a train.py run that failed, a bad setting)
        hint = (" (an arm restored from the job folder's runs/ was made with other settings: delete "
                "runs/<arm> there to train it again)" if "started with other settings" in str(e) else "")
        raise RuntimeError(str(e) + hint) from None
    res = {"arms": {a: arm_row(run_dir[a]) for a in arms if common.final_eval(run_dir[a])},
           "estimate_s": round(est, 1), "estimate": costs, "trained": trains, "rate_used": job.rate,
           "rate_measured": job.rate_measured}
    if spec.script == "bimix" and "fitted" in arms and "error" in (got[1] or {}):
        res["fit_error"] = got[1]["error"]  # a law that cannot be fitted is a result, not a failure to rerun
    for a in arms:
        if a in spec.borrow and not trains:
            res["borrowed_from"] = spec.borrow[a]
        if a in res["arms"]:
            save_arm(job, run_dir[a], a)
    missing = [a for a in arms if a not in res["arms"] and not res.get("fit_error")]
    if missing:
        raise RuntimeError(f"arms without a final evaluation: {missing}")
    return res


def report(job, mod, spec, out, overrides):
    """The experiment's main() on every arm done: all are found finished, so it only writes its tables and plot,
    which go to the job folder (experiment.md / experiment.json / fit.json / *.png, no machine paths)."""
    arms = done_arms(job, spec)
    if not arms:
        return
    argv = ["--scale", "gpu", "--out", out, "--arms", ",".join(arms)] + overrides
    print(f"[{job.name}] report: python experiments/{spec.script}.py {portable(shlex.join(argv), job)}", flush=True)
    try:
        data = mod.main(argv)
    except SystemExit as e:
        job.data["report"] = {"error": str(e)}
        return
    for name in os.listdir(out):
        src = os.path.join(out, name)
        if name in ("results.md", "results.json", "fit.json") or name.endswith(".png"):
            dest = os.path.join(job.folder, {"results.md": "experiment.md", "results.json": "experiment.json"}
                                .get(name, name))
            if name.endswith(".png"):
                shutil.copyfile(src, dest)
            else:
                with open(src) as f, open(dest, "w") as g:
                    g.write(portable(f.read(), job))
    job.data["report"] = {"arms": arms, "claims": (data or {}).get("claims")}


def render_experiment(job):
    spec = SPECS[job.name]
    st = job.data["steps"]
    lines = [f"- command: `{job.data.get('command', '')}`", f"- sizing: {spec.sizing}"]
    ran = sorted({(v["ran"]["device"], v["ran"]["date"]) for v in st.values() if "ran" in v})
    if ran:
        lines.append("- ran on: " + "; ".join(f"{d} ({t})" for d, t in ran))
    if "data" in job.data:
        d = job.data["data"]
        lines.append(f"- data: {d['error']}" if "error" in d else f"- data: pybytes built on the device in "
                                                                   f"{d['built_s']} s")
    rows = []
    for name, arms in spec.steps:
        r = st.get(name)
        if r is None:
            rows.append((name, ", ".join(arms), "not run yet", "-", "-", "-"))
            continue
        status = ("error: " + r["error"][:120] if "error" in r else f"borrowed from job {r['borrowed_from']}"
                  if r.get("borrowed_from") else "fit failed: " + r["fit_error"][:80] if r.get("fit_error") else
                  "done")
        loss = ", ".join(common.fmt(v.get("val_loss_mean")) for v in r.get("arms", {}).values()) or "-"
        rate = [v.get("train_flops_per_s") for v in r.get("arms", {}).values() if v.get("train_flops_per_s")]
        rows.append((name, ", ".join(arms), status, loss, f"{r.get('estimate_s', 0):.0f} / {r.get('wall_s', 0):.0f}",
                     f"{min(rate) / 1e12:.3g}" if rate and r.get("trained") else "-"))
    lines += ["", "## Steps", "", md_table(["step", "arms", "status", "final val loss", "estimated / wall s",
                                           "measured training TFLOP/s"], rows),
              "", f"Estimates assume {ASSUMED_RATE / 1e12:.0f} TFLOP/s of training until an arm has measured its own "
                  f"rate, {job.compile_s:.0f} s per torch.compile and {START_S:.0f} s per train.py start "
                  f"(experiments/gpu_jobs.py)."]
    md = os.path.join(job.folder, "experiment.md")
    if os.path.isfile(md):
        with open(md) as f:  # the experiment's own report, one heading level down
            body = f.read()
        lines += ["", "## The experiment's report (experiment.md, experiment.json)", ""] + [
            "#" + l if l.startswith("#") else l for l in body.splitlines()]
    errors = {k: v["error"] for k, v in st.items() if "error" in v}
    if "error" in (job.data.get("report") or {}):
        errors["report"] = job.data["report"]["error"]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {k}: {v}" for k, v in errors.items()]
    return "\n".join(lines)


def estimate_job(name, device="cuda", overrides=(), rate=ASSUMED_RATE, compile_s=45.0, borrowed=True):
    """{step: estimated seconds} of an experiment job at the assumed rate, data preparation left out; borrowed=True
    counts a borrowed arm (the operators job's scratch and Gstack, from the gstack job) as found finished."""
    spec = SPECS[name]
    s = experiment_settings(spec, list(overrides))
    return {step: ANALYSIS_S + sum(plan_seconds(arm_plan(spec, a, s, list(overrides), device), rate, compile_s)
                                   ["seconds"] for a in arms if not (borrowed and a in spec.borrow))
            for step, arms in spec.steps}


# -------------------------------------------------------------------------------------------------------------
# the queue

JOBS = [("speed", "CUDA numerics and training-step speed against nanoGPT", speed, render_speed, 8),
        ("gstack", "Gstack against scratch at the gpu scale (config/gstack_gpu.py)",
         lambda job: experiment_job(job, SPECS["gstack"]), render_experiment, 8),
        ("inheritune", "Inheritune: reference, inherited L/2 at T, scratch L/2 at T and 2T (config/inheritune_gpu.py)",
         lambda job: experiment_job(job, SPECS["inheritune"]), render_experiment, 8),
        ("bimix", "BiMix: natural, uniform, CE and the fitted mixture (config/bimix_gpu.py)",
         lambda job: experiment_job(job, SPECS["bimix"]), render_experiment, 8),
        ("operators", "Every growth operator, depthwise and widthwise, at the gstack job's size",
         lambda job: experiment_job(job, SPECS["operators"]), render_experiment, 8)]
PLANNED = []  # jobs named but not built yet


def status(results):
    out = {}
    for name, *_ in JOBS:
        path = os.path.join(results, name, "results.json")
        out[name] = json.load(open(path))["steps"] if os.path.isfile(path) else {}
    return out


def listing(results):
    """One line per job: its measured steps; for the experiment jobs also how many of their steps and the estimate
    (assumed rate, data prep included, every arm trained here)."""
    lines = []
    for name, steps in status(results).items():
        line = f"{name}: {', '.join(steps) or 'no results'}"
        if name in SPECS:
            est = estimate_job(name)
            ok = [k for k, v in steps.items() if "error" not in v]
            line += (f" ({len(ok)} of {len(SPECS[name].steps)} steps; all of them ~"
                     f"{(DATA_S + sum(est.values())) / 60:.1f} min at the assumed rate)")
        lines.append(line)
    if PLANNED:
        lines.append(f"planned, not built yet: {', '.join(PLANNED)}")
    return lines


def shown_command(argv, a):
    """The command line as results record it: the folders given as placeholders, not this machine's paths."""
    out = []
    for x in argv:
        for path, name in ((a.results, "<results>"), (a.work, "<work>"), (a.dataset, "<dataset>")):
            if path and x.endswith(path) and os.path.isabs(path):
                x = x[:-len(path)] + name
        out.append(x)
    return " ".join(x if "<" in x else shlex.quote(x) for x in out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=8.0, help="wall time for this call (default 8)")
    p.add_argument("--only", default="", help="comma-separated job names (default: all, in order)")
    p.add_argument("--results", default=RESULTS, help="where each job's folder goes (default docs/results/gpu)")
    p.add_argument("--work", default=os.path.join(REPO, "out", "gpu_jobs"),
                   help="the experiment jobs' run folders: checkpoints, not kept (default out/gpu_jobs)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dataset", default="", help="a prepared dataset (default: built on the device)")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes, for a CPU check of the runner itself")
    p.add_argument("--list", action="store_true")
    a = p.parse_args(argv)
    if a.list:
        print("\n".join(listing(a.results)))
        return
    start, deadline = time.time(), time.time() + a.minutes * 60
    only = set(filter(None, a.only.split(",")))
    if only - {j[0] for j in JOBS}:
        raise SystemExit(f"--only: unknown job(s) {sorted(only - {j[0] for j in JOBS})}; jobs: {[j[0] for j in JOBS]}")
    for name, title, fn, render, minutes in JOBS:
        if only and name not in only:
            continue
        if deadline - time.time() < 60:
            print(f"{name}: less than a minute left; stopping")
            break
        job = Job(name, title, os.path.join(a.results, name), min(deadline, time.time() + minutes * 60),
                  a.dry_run, a.device, os.path.abspath(a.dataset) if os.path.isdir(a.dataset) else a.dataset, render)
        job.work = os.path.abspath(a.work)
        job.data["command"] = "python experiments/gpu_jobs.py " + shown_command(
            argv if argv is not None else sys.argv[1:], a)
        fn(job)
        job.save()
        print(f"[{name}] done or out of time after {time.time() - start:.0f} s: {job.folder}")


if __name__ == "__main__":
    main()
