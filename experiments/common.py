"""
Helpers shared by the experiment scripts (experiments/gstack.py, inheritune.py, bimix.py). Small functions, no
framework: the common command line, train.py's settings (defaults + a config file + --key=value, resolved the way
train.py resolves them), running one arm as a train.py subprocess (skipped when it already finished, resumed when
it was interrupted), reading a run's final evaluation, and writing results.json / results.md / plots.

An arm is one train.py run in <out>/<arm>/. It counts as finished when the last evaluation line of its
metrics.jsonl is at the run's last iteration (train.py always evaluates there). <out>/<arm>/arm.json records the
train.py arguments the arm was started with: a later call with different arguments refuses to reuse or resume that
folder instead of mixing two settings in one table.

Seeds (--seeds N): every arm runs N times, with train.py's seed (model init and data order) = the settings' seed,
seed + 1, ... The first seed's arms live in <out>/<arm>/ (so a one-seed run is the first seed of a longer one and
is reused), the others' in <out>/seed<seed>/<arm>/. Tables then give, per number, the mean over seeds and the
range (min-max) in brackets; comparisons (a speedup, a difference of losses) are taken within a seed first.
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
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from configurator import ConfigError, apply_overrides, defaults_from_script  # noqa: E402

SCALES = ("tiny", "cpu", "gpu", "mini")
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
                   help=f"config/{experiment}_<scale>.py: tiny = seconds on a CPU (a pipeline check), cpu = the "
                        f"paper's headline comparison in under 20 minutes per seed on a 2-core CPU (byte-level "
                        f"dataset, see the config), gpu = the same comparison larger, in an 8-minute job on one "
                        f"GPU (experiments/gpu_jobs.py runs it), mini = minutes per arm on one GPU")
    p.add_argument("--seeds", type=int, default=1,
                   help="run every arm with N seeds (train.py's seed, seed + 1, ...: model init and data order); "
                        "tables give the mean and the min-max range over seeds (default: 1)")
    p.add_argument("--out", default=None, help=f"output folder (default: out/{experiment}_<scale> in the repo)")
    p.add_argument("--dataset", default=None, help="dataset name under data/ or a path to one (default: the config's)")
    p.add_argument("--arms", default="all", help=f"comma-separated subset of: {', '.join(arms)} (default: all)")
    p.add_argument("--launcher", default=None,
                   help='command that starts train.py, e.g. "torchrun --standalone --nproc_per_node=8" '
                        '(default: this Python)')
    p.add_argument("--dry_run", action="store_true", help="print each arm's train.py command, run nothing")
    return p


def parse(argv, experiment, arms, doc, options=None):
    """Parse an experiment script's command line (argv None: sys.argv[1:]); returns args with .overrides (train.py
    --key=value, validated), .arm_list, .out (absolute), .config (relative to the repo) and .launcher (a list)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(experiment, arms, doc)
    if options:  # the experiment's own options: options(parser) adds them
        options(parser)
    args, extra = parser.parse_known_args(argv)
    for a in extra:
        key, sep, _ = a[2:].partition("=") if a.startswith("--") else ("", "", "")
        if not sep or not key:
            parser.error(f"unrecognised argument {a!r}: train.py settings are passed as --key=value")
        if key in SET_BY_SCRIPT:
            parser.error(f"{a!r}: the experiment sets {key} for each arm (use --out for the output folder)")
    args.overrides = list(extra)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: must be at least 1")
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
    args.seed_list = [int(args.settings["seed"]) + k for k in range(args.seeds)]
    args.out = os.path.abspath(args.out or os.path.join(REPO, "out", f"{experiment}_{args.scale}"))
    # results record "python" for this interpreter, never one machine's path to it
    args.launcher_text = args.launcher or "python"
    args.launcher = shlex.split(args.launcher) if args.launcher else [sys.executable]
    args.command = f"python experiments/{experiment}.py " + shlex.join(argv)
    return args


def with_dependencies(names, arms, depends):
    """The requested arms plus the arms they need (depends: {arm: [arms]}), in the experiment's order."""
    need = set(names)
    for a in names:
        need.update(depends.get(a, ()))
    return [a for a in arms if a in need]


def seed_dir(out, k, seed):
    """Where the k-th seed's arms live: out itself for the first seed (k = 0), out/seed<seed> for the others."""
    return out if k == 0 else os.path.join(out, f"seed{seed}")


def seed_args(k, seed):
    """train.py settings of the k-th seed: none for the first (the settings' own seed, so its arms are exactly a
    one-seed run's and are reused), --seed=<seed> for the others."""
    return [] if k == 0 else [f"--seed={seed}"]


def child_env(scale):
    """Environment of the train.py processes: tiny models gain nothing from intra-op threads and lose a lot to
    oversubscription on a busy CPU, so the tiny scale defaults OMP_NUM_THREADS to 1 (a value set by the user
    wins). The cpu scale's models are large enough to use every core (about 1.85x on 2 cores), so torch's
    default thread count stays."""
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


def changed_model(run_dir, settings):
    """Why the run's model is not the one these settings build now that a default has changed, or None. So far one:
    gpt2's GELU became exact (commit d919085); runs recorded before that computed GPT-2's tanh GELU."""
    cfg = run_config(run_dir)
    if not cfg or settings.get("arch") != "gpt2" or cfg.get("arch", "gpt2") != "gpt2":
        return None
    had, want = cfg.get("gelu_approximate") or "tanh", settings.get("gelu_approximate")
    if had != want:
        return (f"its model computes gelu_approximate={had!r} and these settings give {want!r} (gpt2's default "
                f"became the exact GELU in commit d919085)")
    return None


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
        why = stale_source(run_dir) or changed_model(run_dir, resolve(argv))
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
    record = {"arm": name, "argv": argv, "last_iter": last, "wall_s": (record or {}).get("wall_s", 0.0)}
    with open(record_path, "w") as f:
        json.dump(record, f, indent=2)
    t0 = time.time()
    stream(name, cmd, run_dir, env, log)
    record["wall_s"] = (record or {}).get("wall_s", 0.0) + time.time() - t0  # kept across resumes
    with open(record_path, "w") as f:
        json.dump(record, f, indent=2)
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


def dataset_meta(name):
    """meta.json of a dataset given by name (a folder under data/) or path; None when it is not found here."""
    from data.loader import load_meta
    for d in (name, os.path.join(REPO, "data", str(name))):
        if name and os.path.isfile(os.path.join(d, "meta.json")):
            return load_meta(d)
    return None


def bpb(val_loss, meta):
    """Bits per byte of text per domain from val losses in nats per token (eval.bits_per_byte, with the dataset's
    val token and byte counts), and their mean over domains as "mean"; {} without the counts."""
    import eval as ev
    if not meta:
        return {}
    out = {}
    for d, loss in val_loss.items():
        counts = meta["domains"].get(d, {})
        b = ev.bits_per_byte(loss, counts.get("val_tokens"), counts.get("val_bytes"))
        if b is None:
            return {}
        out[d] = b
    if out:
        out["mean"] = sum(out.values()) / len(out)
    return out


def summary(run_dir):
    """A finished run in a few numbers: final evaluation (iter, tokens, flops, val loss per domain and mean, and in
    bits per byte when the dataset records its byte counts), grow events, the mixture, and what it ran on."""
    ev = final_eval(run_dir)
    cfg = run_config(run_dir)
    b = bpb(ev["val_loss"], dataset_meta(cfg.get("dataset")))
    return {"run_dir": run_dir, "iter": ev["iter"], "tokens": ev["tokens"], "flops": ev["flops"],
            "val_loss": ev["val_loss"], "val_loss_mean": ev["val_loss_mean"],
            "val_bpb": {d: v for d, v in b.items() if d != "mean"}, "val_bpb_mean": b.get("mean"),
            "mixture": ev.get("mixture") or cfg.get("mixture"), "grow_events": grow_events(run_dir),
            "n_layer": cfg.get("n_layer"), "n_embd": cfg.get("n_embd"), "seed": cfg.get("seed"),
            "ran_on": ran_on(run_dir)}


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
    """The run's provenance: command, device, date, settings source, seeds."""
    return {"experiment": title, "command": args.command, "device": host_device(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "scale": args.scale,
            "config": args.config, "overrides": args.overrides, "launcher": args.launcher_text,
            "dataset": args.settings["dataset"], "out": portable(args.out), "seeds": args.seed_list}


def portable(text):
    """Text (a path, a command line, a file's contents) as results keep it, the same wherever they were made: the
    interpreter as `python`, and paths inside the repository relative to it (the repository itself as `.`)."""
    text = text.replace(sys.executable, "python")
    # only REPO as a whole path: not inside a longer one ("<elsewhere>/<repo>") nor the start of one ("<repo>2")
    repo = r"(?<![\w./-])" + re.escape(REPO)
    text = re.sub(repo + r"/(?=[\w.-])", "", text)     # <repo>/out/x -> out/x
    return re.sub(repo + r"/?(?![\w.-])", ".", text)   # <repo> and <repo>/ -> .


def fmt(x, spec=".4f"):
    return "-" if x is None else format(x, spec)


def pct(x):
    return "-" if x is None else f"{x:+.1%}"


def spread(values):
    """(mean, min, max) of the values that are not None, or None when there are none."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return sum(vals) / len(vals), min(vals), max(vals)


def fmt_spread(values, spec=".4f", percent=False):
    """One number over seeds: 'mean' for one value, 'mean [min, max]' for several; '-' when none is known. Seeds
    where the value is None (e.g. a target never reached) are left out and counted: 'mean [min, max] (2 of 3)'."""
    f = (lambda x: f"{x:+.1%}") if percent else (lambda x: format(x, spec))
    sp = spread(values)
    if sp is None:
        return "-"
    known = sum(v is not None for v in values)
    if len(values) == 1:
        return f(sp[0])
    text = f"{f(sp[0])} [{f(sp[1])}, {f(sp[2])}]" if known > 1 else f(sp[0])
    return text + (f" ({known} of {len(values)})" if known < len(values) else "")


def seeds_note(seeds):
    if len(seeds) == 1:
        return f"One seed ({seeds[0]}): no spread (run with --seeds N for N seeds)."
    return (f"{len(seeds)} seeds ({', '.join(map(str, seeds))}; train.py's seed: model init and data order). Each "
            f"cell: mean over seeds [min, max]; comparisons are taken within a seed, then averaged.")


def md_table(headers, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_seeds(path, series, panels, target=None, title=None):
    """Val loss (mean over domains) of runs over several seeds, one PNG with a panel per x axis.

    series: {arm: [run_dir, ...]} (one run per seed: one colour per arm, seeds drawn alike); panels: [(x label,
    x)] where x is a metrics key ("tokens", "flops") or a function (run_dir, evals, events) -> [x per evaluation].
    target: a loss drawn as a dotted line (a number, or one per seed: the first is drawn); a vertical dotted line
    in an arm's colour marks its growth (first seed, metrics-key panels). Linear axes, the y axis cut at the losses
    of the runs' second half so the comparison is readable. Returns (path or None, note)."""
    import eval as ev
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, ("no plot: matplotlib is not installed (pip install matplotlib, then rerun: finished arms are "
                      "reused)")
    runs = {}
    for arm, dirs in series.items():
        for d in dirs:
            try:
                runs.setdefault(arm, []).append((d, *ev.read_evals(d, log=lambda *a: None)))
            except ev.EvalError:
                continue
    if not runs:
        return None, "no finished runs to plot"
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    losses = [float(e["val_loss_mean"]) for rs in runs.values() for _, evals, _ in rs for e in evals]
    late = [float(e["val_loss_mean"]) for rs in runs.values() for _, evals, _ in rs
            for e in evals[len(evals) // 2:]]
    for ax, (label, x) in zip(axes[0], panels):
        for i, (arm, rs) in enumerate(runs.items()):
            colour = f"C{i}"
            for j, (d, evals, events) in enumerate(rs):
                xs = [e.get(x) for e in evals] if isinstance(x, str) else list(x(d, evals, events))
                pts = [(a, float(e["val_loss_mean"])) for a, e in zip(xs, evals) if a is not None]
                if pts:
                    ax.plot(*zip(*pts), color=colour, lw=1.2, alpha=0.9 if j == 0 else 0.55,
                            ls="-" if j == 0 else "--", label=arm if j == 0 else None)
                for g in events if j == 0 and isinstance(x, str) else ():  # the first seed's growth, if any
                    if g.get("event") == "grow" and g.get(x):
                        ax.axvline(g[x], color=colour, ls=":", lw=0.8, alpha=0.7)
        if target is not None:
            ax.axhline(target[0] if isinstance(target, (list, tuple)) else target, color="gray", ls=":", lw=0.9)
        ax.set_ylim(min(losses) - 0.05, max(late) + 0.5 * (max(late) - min(losses)) + 0.1)
        ax.set_xlabel(label)
        ax.set_ylabel("val loss, mean over domains (nats)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path, f"plot: {os.path.basename(path)}"


def wall_minutes(out, seeds):
    """{seed: minutes} summed over the arms' arm.json records under out (the first seed's arms sit in out itself,
    the others' in out/seed<seed>/); arms reused from an earlier call count the time they took then."""
    total = {}
    for root, _, files in os.walk(out):
        if "arm.json" not in files:
            continue
        with open(os.path.join(root, "arm.json")) as f:
            wall = json.load(f).get("wall_s")
        m = re.match(r"seed(\d+)$", os.path.relpath(root, out).split(os.sep)[0])
        seed = int(m.group(1)) if m else (seeds[0] if seeds else None)
        if wall is not None and seed in seeds:
            total[seed] = total.get(seed, 0.0) + wall / 60
    return {seed: total[seed] for seed in seeds if seed in total}


def write_results(out, head, data, sections):
    """results.json (header + data) and results.md (header lines + markdown sections) in out."""
    os.makedirs(out, exist_ok=True)
    blob = dict(head, **data)
    text = json.dumps(blob, indent=2, default=str, ensure_ascii=False)  # paths as written, so portable finds them
    with open(os.path.join(out, "results.json.tmp"), "w", encoding="utf-8") as f:  # results travel: no machine paths
        f.write(portable(text))
    os.replace(os.path.join(out, "results.json.tmp"), os.path.join(out, "results.json"))
    lines = [f"# {head['experiment']}", "",
             f"- command: `{head['command']}`",
             f"- device: {head['device']}; train.py launched with `{head['launcher']}`",
             f"- date: {head['date']}",
             f"- settings: `{head['config']}`" + (f" + `{' '.join(head['overrides'])}`" if head["overrides"] else ""),
             f"- dataset: {head['dataset']}"]
    if len(head.get("seeds") or []) > 1:
        lines.append(f"- seeds: {', '.join(map(str, head['seeds']))} (first in the arms' own folders, the others "
                     f"in seed<seed>/)")
    walls = wall_minutes(out, head.get("seeds") or [])
    if walls:
        lines.append("- wall time of the train.py runs, per seed: " + ", ".join(f"{seed}: {m:.1f} min"
                                                                              for seed, m in walls.items()))
    ran_on = sorted({r.get("ran_on") for r in (data.get("arms") or {}).values() if r.get("ran_on")})
    if ran_on:
        lines.append("- train.py reported: " + "; ".join(f"`{x}`" for x in ran_on))
    lines.append("")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n" + "\n\n".join(s.rstrip() for s in sections if s) + "\n")
    return os.path.join(out, "results.json"), os.path.join(out, "results.md")
