"""
Helpers shared by the experiment scripts (experiments/gstack.py, inheritune.py, bimix.py). Small functions, no
framework: the common command line, train.py's settings (defaults + a config file + --key=value, resolved the way
train.py resolves them), running one arm as a train.py subprocess (skipped when it already finished, resumed when
it was interrupted), reading a run's final evaluation, and writing results.json / results.md / plots.

An arm is one train.py run in <out>/<arm>/. It counts as finished when the last evaluation line of its
metrics.jsonl is at the run's last iteration (train.py always evaluates there). <out>/<arm>/arm.json records the
train.py arguments the arm was started with: a later call with different arguments refuses to reuse or resume that
folder instead of mixing two settings in one table.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from configurator import ConfigError, apply_overrides, defaults_from_script  # noqa: E402

SCALES = ("tiny", "mini")
SET_BY_SCRIPT = ("out_dir",)  # train.py settings the scripts set per arm; refused as user overrides


# -------------------------------------------------------------------------------------------------------------
# train.py settings

def train_defaults(path=os.path.join(REPO, "train.py")):
    """train.py's settings and defaults, read from its source without running it (as bench.py reads them)."""
    return defaults_from_script(path)


def resolve(argv):
    """train.py's settings for argv (config files and --key=value, in order; relative paths from the repo root)."""
    argv = [a if a.startswith("--") else os.path.join(REPO, a) for a in argv]
    return apply_overrides(train_defaults(), argv)


def tokens_per_iter(s):
    """Tokens per optimizer step, as train.py computes it (with total_batch_tokens it is exactly that number)."""
    if s["total_batch_tokens"]:
        return s["total_batch_tokens"]
    return s["batch_size"] * s["block_size"] * s["gradient_accumulation_steps"]


def final_iter(s):
    """The iteration train.py stops at: max_iters, or ceil(max_tokens / tokens per step) with a token budget."""
    if s["max_tokens"]:
        return math.ceil(s["max_tokens"] / tokens_per_iter(s))
    return s["max_iters"]


# -------------------------------------------------------------------------------------------------------------
# Command line

def _parser(experiment, arms, doc):
    p = argparse.ArgumentParser(prog=f"python experiments/{experiment}.py", description=doc, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Any further --key=value is a train.py setting forwarded to every run "
                                       "(after the config file, before the arm's own settings).")
    p.add_argument("--scale", choices=SCALES, default="tiny",
                   help=f"config/{experiment}_<scale>.py: tiny = seconds on a CPU, mini = minutes per arm on one GPU")
    p.add_argument("--out", default=None, help=f"output folder (default: out/{experiment}_<scale> in the repo)")
    p.add_argument("--dataset", default=None, help="dataset name under data/ or a path to one (default: the config's)")
    p.add_argument("--arms", default="all", help=f"comma-separated subset of: {', '.join(arms)} (default: all)")
    p.add_argument("--launcher", default=None,
                   help='command that starts train.py, e.g. "torchrun --standalone --nproc_per_node=8" '
                        '(default: this Python)')
    p.add_argument("--dry_run", action="store_true", help="print each arm's train.py command, run nothing")
    return p


def parse(argv, experiment, arms, doc):
    """Parse an experiment script's command line (argv None: sys.argv[1:]); returns args with .overrides (train.py
    --key=value, validated), .arm_list, .out (absolute), .config (relative to the repo) and .launcher (a list)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(experiment, arms, doc)
    args, extra = parser.parse_known_args(argv)
    for a in extra:
        key, sep, _ = a[2:].partition("=") if a.startswith("--") else ("", "", "")
        if not sep or not key:
            parser.error(f"unrecognised argument {a!r}: train.py settings are passed as --key=value")
        if key in SET_BY_SCRIPT:
            parser.error(f"{a!r}: the experiment sets {key} for each arm (use --out for the output folder)")
    args.overrides = list(extra)
    if args.dataset:  # a folder given relative to the caller's directory: make it absolute (train.py runs elsewhere)
        ds = os.path.abspath(args.dataset) if os.path.isdir(args.dataset) else args.dataset
        args.overrides.insert(0, f"--dataset={ds}")
    args.config = os.path.join("config", f"{experiment}_{args.scale}.py")
    try:
        args.settings = resolve([args.config] + args.overrides)
    except ConfigError as e:
        parser.error(str(e))
    names = [a.strip() for a in args.arms.split(",") if a.strip()] if args.arms != "all" else list(arms)
    unknown = [a for a in names if a not in arms]
    if unknown or not names:
        parser.error(f"--arms: unknown arm(s) {unknown}; choose from {', '.join(arms)}")
    args.arm_list = names
    args.out = os.path.abspath(args.out or os.path.join(REPO, "out", f"{experiment}_{args.scale}"))
    args.launcher = shlex.split(args.launcher) if args.launcher else [sys.executable]
    args.command = f"python experiments/{experiment}.py " + shlex.join(argv)
    return args


def with_dependencies(names, arms, depends):
    """The requested arms plus the arms they need (depends: {arm: [arms]}), in the experiment's order."""
    need = set(names)
    for a in names:
        need.update(depends.get(a, ()))
    return [a for a in arms if a in need]


def child_env(scale):
    """Environment of the train.py processes: tiny models gain nothing from intra-op threads and lose a lot to
    oversubscription on a busy CPU, so the tiny scale defaults OMP_NUM_THREADS to 1 (a value set by the user
    wins)."""
    env = dict(os.environ)
    if scale == "tiny":
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


# -------------------------------------------------------------------------------------------------------------
# Runs

def metrics(run_dir):
    """A run's metrics.jsonl records, oldest first ([] before the run has written any)."""
    from runs import read_metrics  # imports torch: only once runs are read, so --help stays instant
    path = os.path.join(run_dir, "metrics.jsonl")
    return read_metrics(path, log=lambda *a: None) if os.path.isfile(path) else []


def evals(run_dir):
    """Evaluation lines of a run's metrics.jsonl, in order."""
    return [m for m in metrics(run_dir) if m.get("val_loss_mean") is not None]


def grow_events(run_dir):
    return [m for m in metrics(run_dir) if m.get("event") == "grow"]


def final_eval(run_dir):
    """The last evaluation line of a run (its final validation loss), or None."""
    ev = evals(run_dir)
    return ev[-1] if ev else None


def is_done(run_dir, last_iter):
    ev = final_eval(run_dir)
    return ev is not None and ev.get("iter", -1) >= last_iter


def run_config(run_dir):
    """The run's config.json (every setting as the run used it, mixture resolved), or {}."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def checkpoints(run_dir):
    return sorted(f for f in os.listdir(run_dir) if re.fullmatch(r"ckpt_\d+\.pt", f)) if os.path.isdir(run_dir) else []


def run_arm(name, run_dir, argv, launcher, env=None, dry_run=False, log=print):
    """Run train.py with argv (config file and --key=value, paths relative to the repo root) into run_dir, from the
    repo root, output teed to run_dir/train.log. Skipped when run_dir already holds the finished run of the same
    arguments; resumed (--init_from=resume) when it holds an interrupted one. Returns "done", "ran" or "dry"."""
    argv = list(argv) + [f"--out_dir={run_dir}"]
    last = final_iter(resolve(argv))
    record_path = os.path.join(run_dir, "arm.json")
    record = None
    if os.path.isfile(record_path):
        with open(record_path) as f:
            record = json.load(f)
    if record is not None and record["argv"] != argv:
        raise SystemExit(f"arm {name}: {run_dir} holds a run started with other settings:\n  then: "
                         f"{shlex.join(record['argv'])}\n  now:  {shlex.join(argv)}\ndelete that folder to rerun "
                         f"the arm, or pass another --out")
    if record is None and os.path.isdir(run_dir) and os.listdir(run_dir):
        raise SystemExit(f"arm {name}: {run_dir} is not empty and was not written by this script; delete it or pass "
                         f"another --out")
    if record is not None:  # a run grown or inherited from another arm that has been trained again since
        from runs import stale_source  # imports torch: only when there is a run to check
        why = stale_source(run_dir)
        if why:
            raise SystemExit(f"arm {name}: {run_dir} is out of date: {why}. Delete it to rerun the arm")
    if is_done(run_dir, last):
        log(f"[{name}] finished earlier (evaluated at iter {last}): reusing {run_dir}")
        return "done"
    resume = bool(checkpoints(run_dir))
    cmd = list(launcher) + ["train.py"] + argv + (["--init_from=resume"] if resume else [])
    log(f"[{name}] {'resuming' if resume else 'running'}: {shlex.join(cmd)}")
    if dry_run:
        return "dry"
    os.makedirs(run_dir, exist_ok=True)
    with open(record_path, "w") as f:
        json.dump({"arm": name, "argv": argv, "last_iter": last}, f, indent=2)
    stream(name, cmd, run_dir, env, log)
    if not is_done(run_dir, last):
        raise SystemExit(f"arm {name}: train.py ended without an evaluation at iter {last} (stopped by a signal?); "
                         f"see {run_dir}/train.log. Rerun the same command to resume it from its last checkpoint")
    return "ran"


def stream(name, cmd, run_dir, env=None, log=print):
    """Run cmd from the repo root, its output appended to run_dir/train.log and echoed with an [name] prefix;
    SystemExit with the last lines when it fails."""
    os.makedirs(run_dir, exist_ok=True)
    tail = []
    with open(os.path.join(run_dir, "train.log"), "a") as logf:
        logf.write("$ " + shlex.join(cmd) + "\n")
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        for line in proc.stdout:
            logf.write(line)
            tail = (tail + [line])[-25:]
            log(f"  [{name}] {line.rstrip()}")
        rc = proc.wait()
    if rc != 0:
        raise SystemExit(f"{name}: train.py exited with {rc}; last lines of {run_dir}/train.log:\n{''.join(tail)}")


def ran_on(run_dir):
    """What train.py reported it ran on ('1 process(es), cpu, float32, compile=False'), from the arm's train.log."""
    path = os.path.join(run_dir, "train.log")
    if not os.path.isfile(path):
        return None
    found = None
    with open(path) as f:
        for line in f:
            m = re.search(r"(\d+ process\(es\), [^,]+, [^,]+, compile=\w+)", line)
            if m:
                found = m.group(1)
    return found


def summary(run_dir):
    """A finished run in a few numbers: final evaluation (iter, tokens, flops, val loss per domain and mean),
    grow events, the mixture, and what it ran on."""
    ev = final_eval(run_dir)
    cfg = run_config(run_dir)
    return {"run_dir": run_dir, "iter": ev["iter"], "tokens": ev["tokens"], "flops": ev["flops"],
            "val_loss": ev["val_loss"], "val_loss_mean": ev["val_loss_mean"],
            "mixture": ev.get("mixture") or cfg.get("mixture"), "grow_events": grow_events(run_dir),
            "n_layer": cfg.get("n_layer"), "n_embd": cfg.get("n_embd"), "ran_on": ran_on(run_dir)}


# -------------------------------------------------------------------------------------------------------------
# Results

def host_device():
    try:
        import torch
        if torch.cuda.is_available():
            n = torch.cuda.device_count()
            return f"{n} x {torch.cuda.get_device_name(0)}"
    except Exception:  # a broken CUDA setup should not stop the report
        pass
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores), no CUDA device"


def header(args, title):
    """The run's provenance: command, device, date, settings source."""
    return {"experiment": title, "command": args.command, "device": host_device(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "scale": args.scale,
            "config": args.config, "overrides": args.overrides, "launcher": shlex.join(args.launcher),
            "dataset": args.settings["dataset"], "out": args.out}


def fmt(x, spec=".4f"):
    return "-" if x is None else format(x, spec)


def pct(x):
    return "-" if x is None else f"{x:+.1%}"


def md_table(headers, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plot(out, runs, filename="loss_curves.png", target=None):
    """Val loss vs tokens and vs FLOPs of {name: run_dir} with eval.py's plot_curves; returns (path or None, note)."""
    import eval as ev
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None, ("no plot: matplotlib is not installed (pip install matplotlib, then rerun: finished arms are "
                      "reused)")
    series = []
    for name, d in runs.items():
        try:
            e, events = ev.read_evals(d, log=lambda *a: None)
        except ev.EvalError:
            continue
        series.append((name, e, events))
    if not series:
        return None, "no finished runs to plot"
    path = os.path.join(out, filename)
    try:
        ev.plot_curves(series, path, target)
    except ev.EvalError as e:
        return None, f"no plot: {e}"
    return path, f"plot: {filename}"


def write_results(out, head, data, sections):
    """results.json (header + data) and results.md (header lines + markdown sections) in out."""
    os.makedirs(out, exist_ok=True)
    blob = dict(head, **data)
    with open(os.path.join(out, "results.json.tmp"), "w") as f:
        json.dump(blob, f, indent=2, default=str)
    os.replace(os.path.join(out, "results.json.tmp"), os.path.join(out, "results.json"))
    lines = [f"# {head['experiment']}", "",
             f"- command: `{head['command']}`",
             f"- device: {head['device']}; train.py launched with `{head['launcher']}`",
             f"- date: {head['date']}",
             f"- settings: `{head['config']}`" + (f" + `{' '.join(head['overrides'])}`" if head["overrides"] else ""),
             f"- dataset: {head['dataset']}"]
    ran_on = sorted({r.get("ran_on") for r in (data.get("arms") or {}).values() if r.get("ran_on")})
    if ran_on:
        lines.append("- train.py reported: " + "; ".join(f"`{x}`" for x in ran_on))
    lines.append("")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n" + "\n\n".join(s.rstrip() for s in sections if s) + "\n")
    return os.path.join(out, "results.json"), os.path.join(out, "results.md")
