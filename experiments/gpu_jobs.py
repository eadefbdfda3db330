"""
GPU work in pieces that fit a short lease: a queue of self-contained jobs, each at most about 8 minutes of wall
time on one H100 or H200 (data, compilation and evaluation included), each writing its results into its own
folder (results.json, results.md, plots) that is committed under docs/results/gpu/<job>/.

    python experiments/gpu_jobs.py --list                 # which jobs have results, which do not
    python experiments/gpu_jobs.py --minutes 8            # run the next jobs (or the rest of one) that fit
    python experiments/gpu_jobs.py --minutes 8 --only speed
    python experiments/gpu_jobs.py --dry-run --device=cpu --results /tmp/x   # tiny shapes: tests the runner

A job is a list of steps. Each step's result is saved as soon as it is done, so a job cut off by its time limit
keeps what it measured and the next call runs only the steps still missing. A step starts only when its estimated
cost fits in the time left; estimates use the compile time this job measured, not guesses.

The device has no network and sees only the repository: the GPT-2 ranks file (data/gpt2.tiktoken) and nanoGPT's
model.py (.nanogpt/, for the speed comparison; never committed) are git-ignored and travel as carried paths.
Data is built on the device from its own Python sources (data/prepare.py's offline corpus).
"""

import argparse
import copy
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

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
    job.step("switches", 2 * job.compile_s + 30, lambda: compare(
        {"all on": {}, "no compile": {"compile": False}, "float32 (TF32)": {"dtype": "float32"},
         "for-each AdamW": {"fused": False}}))
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
    if "cuda_checks" in st and "max_abs_diff" in st["cuda_checks"]:
        c = st["cuda_checks"]
        lines += ["", "## Numerics on the device", "",
                  md_table(["check", "max abs difference"],
                           [(k, "-" if v is None else f"{v:.2e}") for k, v in c["max_abs_diff"].items()]),
                  "", f"Limits: {c['limits']}. All within: **{'yes' if c['ok'] else 'no: ' + ', '.join(c['failed'])}**."]
    if "unit_tests" in st:
        u = st["unit_tests"]
        last = [l for l in u.get("output", "").splitlines() if l.strip()][-1:] or ["?"]
        lines += ["", f"Model and growth tests on the device's packages: exit {u.get('exit_code')}, `{last[0]}`"]
    if "train_smoke" in st and "runs" in st["train_smoke"]:
        t = st["train_smoke"]
        rows = [(name, " -> ".join(f"{l:.3f} (iter {i})" for i, l in r["val"]), f"{r['tokens_per_s'] or 0:,.0f}")
                for name, r in t["runs"].items()]
        lines += ["", f"## train.py: compile + bf16 against eager bf16 ({t['iters']} iterations, same seed)", "",
                  f"Settings: `{' '.join(t['args'])}`", "",
                  md_table(["run", "val loss (mean over domains)", "tokens/s (last log)"], rows), "",
                  f"Final gap {t['final_gap']:.4f} (tolerance {t['tolerance']}); loss fell: {t['loss_fell']}. "
                  f"**{'pass' if t['ok'] else 'FAIL'}**"]
    for key, title in (("vs_nanogpt", "nanogrow against nanoGPT's model, same shapes, same process"),
                       ("vs_nanogpt_short", "The same, first lease (3 rounds of 10 steps)"),
                       ("switches", "What each switch is worth (one switch changed at a time)"),
                       ("attention", "The SDPA kernel (each compiled afresh, timed one after another)"),
                       ("growth", "Throughput after an in-run growth against a fresh model of the grown size"),
                       ("growth_short", "The same, first lease (3 rounds of 10 steps, fresh model first)")):
        if key in st and "results" in st[key]:
            lines += ["", f"## {title}", "", speed_table(st[key])] + ([st[key]["note"]] if "note" in st[key] else [])
    mb = {k: v for k, v in st.items() if k.startswith("microbatch_") and "results" in v}
    if mb:
        rows = [r for v in mb.values() for r in speed_rows(v)]
        lines += ["", "## Micro-batch sizes", "", md_table(SPEED_HEAD, rows)]
    errors = {k: v["error"] for k, v in st.items() if "error" in v}
    if errors:
        lines += ["", "## Errors", ""] + [f"- {k}: {v}" for k, v in errors.items()]
    return "\n".join(lines)


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
# the queue

JOBS = [("speed", "CUDA numerics and training-step speed against nanoGPT", speed, render_speed, 8)]
PLANNED = ["gstack", "inheritune", "bimix", "operators"]  # sized from the speed job's throughput once it has run


def status(results):
    out = {}
    for name, *_ in JOBS:
        path = os.path.join(results, name, "results.json")
        out[name] = json.load(open(path))["steps"] if os.path.isfile(path) else {}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=8.0, help="wall time for this call (default 8)")
    p.add_argument("--only", default="", help="comma-separated job names (default: all, in order)")
    p.add_argument("--results", default=RESULTS, help="where each job's folder goes (default docs/results/gpu)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dataset", default="", help="a prepared dataset (default: built on the device)")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes, for a CPU check of the runner itself")
    p.add_argument("--list", action="store_true")
    a = p.parse_args(argv)
    if a.list:
        for name, steps in status(a.results).items():
            print(f"{name}: {', '.join(steps) or 'no results'}")
        print(f"planned, not built yet: {', '.join(PLANNED)}")
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
                  a.dry_run, a.device, a.dataset, render)
        job.data["command"] = "python experiments/gpu_jobs.py " + shlex.join(argv if argv is not None else sys.argv[1:])
        fn(job)
        job.save()
        print(f"[{name}] done or out of time after {time.time() - start:.0f} s: {job.folder}")


if __name__ == "__main__":
    main()
