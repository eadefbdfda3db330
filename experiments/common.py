"""
What the experiment scripts (gstack.py, inheritune.py, bimix.py) share: one command line, train.py's settings
resolved as train.py resolves them, one arm run as a train.py subprocess, and results.json / results.md / plots.

An arm is one train.py run in <out>/<arm>/ (<out>/seed<seed>/<arm>/ for the second seed on), finished when it has
evaluated at its last iteration. A finished arm is reused, an interrupted one resumed; <out>/<arm>/arm.json records
its arguments, and a later call with other arguments refuses the folder instead of mixing two settings in one table.
Tables give the mean over seeds and the [min, max]; comparisons are taken within a seed first.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import signal
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from configurator import ConfigError, apply_overrides, defaults_from_script  # noqa: E402

SCALES = ("tiny", "cpu", "gpu")


def train_defaults():
    """train.py's settings and defaults, read from its source without running it."""
    return defaults_from_script(os.path.join(REPO, "train.py"))


def resolve(argv):
    """train.py's settings for argv (config files and --key=value, in order; relative paths from the repo root)."""
    with _PARSING:
        return apply_overrides(train_defaults(), [a if a.startswith("--") else os.path.join(REPO, a) for a in argv])


_PARSING = threading.Lock()  # --jobs: CPython's ast.parse is not thread-safe (3.11: "recursion depth mismatch")


def tokens_per_iter(s):
    """Tokens per optimizer step, as train.py computes it."""
    return s["total_batch_tokens"] or s["batch_size"] * s["block_size"] * s["gradient_accumulation_steps"]


def final_iter(s):
    """The iteration train.py stops at: max_iters, or ceil(max_tokens / tokens per step) with a token budget."""
    return math.ceil(s["max_tokens"] / tokens_per_iter(s)) if s["max_tokens"] else s["max_iters"]


def exit_on_sigterm():
    """SIGTERM (kill, a scheduler) ends an experiment script as Ctrl-C does: its train.py runs are stopped first
    (each writes a checkpoint), and the next call of the same command resumes them."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def parse(argv, experiment, arms, doc, options=None):
    """An experiment script's command line (argv None: sys.argv[1:]): args with .overrides (train.py --key=value,
    validated), .settings, .arm_list, .seed_list, .out (absolute), .config and .launcher (a list)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog=f"python experiments/{experiment}.py", description=doc, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Any further --key=value is a train.py setting forwarded to every run "
                                       "(after the config file, before the arm's own settings).")
    p.add_argument("--scale", choices=SCALES, default="tiny",
                   help=f"config/{experiment}_<scale>.py: tiny = seconds on a CPU (a pipeline check), cpu = the "
                        f"paper's headline comparison in minutes per seed on a 2-core CPU, gpu = the same larger, "
                        f"in minutes on one GPU")
    p.add_argument("--seeds", type=int, default=1, help="run every arm with N seeds (train.py's seed, seed + 1, ...); "
                   "tables give the mean and the [min, max] over seeds (default: 1)")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained at once (default: 1). On a CPU, small models "
                   "train faster as parallel one-thread runs than as one run on every core: each job gets an equal "
                   "share of the cores (OMP_NUM_THREADS, unless set)")
    p.add_argument("--out", default=None, help=f"output folder (default: out/{experiment}_<scale> in the repo)")
    p.add_argument("--dataset", default=None, help="dataset name under data/ or a path to one (default: the config's)")
    p.add_argument("--arms", default="all", help=f"comma-separated subset of: {', '.join(arms)} (default: all)")
    p.add_argument("--launcher", default=None, help='command that starts train.py, e.g. "torchrun --standalone '
                   '--nproc_per_node=8" (default: this Python)')
    p.add_argument("--dry_run", action="store_true", help="print each arm's train.py command, run nothing")
    if options:  # the experiment's own options
        options(p)
    args, extra = p.parse_known_args(argv)
    for a in extra:
        key, sep, _ = a[2:].partition("=") if a.startswith("--") else ("", "", "")
        if not sep or not key:
            p.error(f"unrecognised argument {a!r}: train.py settings are passed as --key=value")
        if key == "out_dir":
            p.error(f"{a!r}: the experiment sets out_dir for each arm (use --out for the output folder)")
    if args.seeds < 1 or args.jobs < 1:
        p.error(f"--seeds {args.seeds} --jobs {args.jobs}: each must be at least 1")
    args.overrides = list(extra)
    if args.dataset:  # a folder given relative to the caller's directory: make it absolute (train.py runs elsewhere)
        args.overrides.insert(0, f"--dataset={os.path.abspath(args.dataset) if os.path.isdir(args.dataset) else args.dataset}")
    args.config = os.path.join("config", f"{experiment}_{args.scale}.py")
    try:
        args.settings = resolve([args.config] + args.overrides)
    except ConfigError as e:
        p.error(str(e))
    names = args.arm_list = [a.strip() for a in args.arms.split(",") if a.strip()] if args.arms != "all" else list(arms)
    unknown = [a for a in names if a not in arms]
    if unknown or not names:
        p.error(f"--arms: unknown arm(s) {unknown}; choose from {', '.join(arms)}")
    args.seed_list = [int(args.settings["seed"]) + k for k in range(args.seeds)]
    args.out = os.path.abspath(args.out or os.path.join(REPO, "out", f"{experiment}_{args.scale}"))
    args.launcher_text = args.launcher or "python"  # results record "python", never one machine's path to it
    args.launcher = shlex.split(args.launcher) if args.launcher else [sys.executable]
    args.command = f"python experiments/{experiment}.py " + shlex.join(argv)
    args.env = dict(os.environ)  # train.py's; tiny models gain nothing from intra-op threads and lose much to
    if args.scale == "tiny":     # oversubscription: the tiny scale defaults OMP_NUM_THREADS to 1 (the user's wins)
        args.env.setdefault("OMP_NUM_THREADS", "1")
    if args.jobs > 1:
        args.env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.jobs)))
    return args


def each_seed(args, run_seed):
    """[run_seed(k, seed) for each seed], args.jobs seeds at a time (threads: each one waits on its train.py)."""
    if args.jobs == 1:
        return [run_seed(k, seed) for k, seed in enumerate(args.seed_list)]
    from concurrent.futures import ThreadPoolExecutor
    from runs import stop_children
    pool = ThreadPoolExecutor(args.jobs)
    try:
        return list(pool.map(run_seed, range(len(args.seed_list)), args.seed_list))
    except BaseException:  # stopped, or one seed failed: stop the others' train.py too, then wait for the threads
        stop_children()
        raise
    finally:
        pool.shutdown()


def with_dependencies(names, arms, depends):
    """The requested arms plus the arms they need (depends: {arm: [arms]}), in the experiment's order."""
    need = set(names) | {d for a in names for d in depends.get(a, ())}
    return [a for a in arms if a in need]


def seed_run(args, k, seed):
    """(folder, train.py argv) of the k-th seed: out and no --seed for the first (a one-seed run's), else seed<seed>."""
    return seed_folder(args.out, k, seed), [args.config] + args.overrides + ([f"--seed={seed}"] if k else [])


def seed_folder(out, k, seed):
    """Where the k-th seed's arms are under an experiment's folder out."""
    return out if k == 0 else os.path.join(out, f"seed{seed}")


# -------------------------------------------------------------------------------------------------------------
# Runs

def run_arm(name, run_dir, argv, launcher, env=None, dry_run=False, log=print, same_as=None):
    """Run train.py with argv (paths from the repo root) into run_dir, teed to train.log: "done", "ran" or "dry".
    same_as: an arm's folder that may hold this very run (the same settings, finished): then it is copied."""
    from runs import checkpoint_paths, is_done, run_logged, stale_source  # torch: not imported for --help
    argv = list(argv) + [f"--out_dir={run_dir}"]
    last = final_iter(resolve(argv))
    record_path, record = os.path.join(run_dir, "arm.json"), None
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
    why = record and stale_source(run_dir)  # grown or inherited from an arm that has been trained again since
    if why:
        raise SystemExit(f"arm {name}: {run_dir} is out of date: {why}. Delete it to rerun the arm")
    if is_done(run_dir, last):
        log(f"[{name}] finished earlier (evaluated at iter {last}): reusing {run_dir}")
        return "done"
    if record is None and not dry_run and same_run(same_as, argv, last):
        copy_run(same_as, run_dir, dict(arm=name, argv=argv, last_iter=last, wall_s=0.0, same_as=same_as))
        log(f"[{name}] {same_as} is this run (the same settings, finished): copied, not trained again")
        return "done"
    cmd = list(launcher) + ["train.py"] + argv + (["--init_from=resume"] if checkpoint_paths(run_dir) else [])
    log(f"[{name}] {'resuming' if checkpoint_paths(run_dir) else 'running'}: {shlex.join(cmd)}")
    if dry_run:
        return "dry"
    os.makedirs(run_dir, exist_ok=True)
    record = {"arm": name, "argv": argv, "last_iter": last, "wall_s": (record or {}).get("wall_s", 0.0)}
    with open(record_path, "w") as f:
        json.dump(record, f, indent=2)
    t0 = time.time()
    try:
        run_logged(cmd, run_dir, name, env=env)
    finally:  # a part stopped by Ctrl-C or SIGTERM counts too: the next call resumes the run and adds its own
        record["wall_s"] += time.time() - t0
        with open(record_path, "w") as f:
            json.dump(record, f, indent=2)
    if not is_done(run_dir, last):
        raise SystemExit(f"arm {name}: train.py ended without an evaluation at iter {last} (stopped by a signal?); "
                         f"see {run_dir}/train.log. Rerun the same command to resume it from its last checkpoint")
    return "ran"


def same_run(src, argv, last):
    """Whether the arm in folder src finished the run that argv describes: every resolved setting but out_dir equal."""
    from runs import is_done
    if not src or not os.path.isfile(os.path.join(src, "arm.json")) or not is_done(src, last):
        return False
    with open(os.path.join(src, "arm.json")) as f:
        theirs = resolve(json.load(f)["argv"])
    return {**theirs, "out_dir": None} == {**resolve(argv), "out_dir": None}


def copy_run(src, dst, record):
    """A finished run folder copied to dst, with dst's arm.json (record) and out_dir in its config.json."""
    import shutil
    shutil.copytree(src, dst, dirs_exist_ok=True)
    with open(os.path.join(dst, "arm.json"), "w") as f:
        json.dump(record, f, indent=2)
    with open(os.path.join(dst, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(dict(cfg, out_dir=dst), f, indent=2)


def wall_minutes(run_dir):
    """Minutes its train.py ran, from an arm's arm.json (a copied arm: 0; resumed: every part)."""
    path = os.path.join(run_dir, "arm.json")
    if not os.path.isfile(path):
        return 0.0
    with open(path) as f:
        return json.load(f).get("wall_s", 0.0) / 60


def dataset_meta(name):
    """meta.json of a dataset given by name or path (as train.py resolves it); None when it is not found here."""
    from data.loader import dataset_dir, load_meta
    d = dataset_dir(str(name))
    return load_meta(d) if name and os.path.isfile(os.path.join(d, "meta.json")) else None


def summary(run_dir):
    """A finished run in a few numbers: final evaluation (iter, tokens, flops, val loss per domain and mean, and bits
    per byte when the dataset records its byte counts), grow events, mixture, and what it ran on."""
    import eval as ev
    from runs import read_evals
    evals, events = read_evals(run_dir, log=lambda *a: None)
    last, cfg = evals[-1], {}  # cfg: config.json, every setting as the run used it (mixture resolved)
    if os.path.isfile(os.path.join(run_dir, "config.json")):
        with open(os.path.join(run_dir, "config.json")) as f:
            cfg = json.load(f)
    meta = dataset_meta(cfg.get("dataset")) or {"domains": {}}
    bpb = {d: ev.bits_per_byte(loss, meta["domains"].get(d, {}).get("val_tokens"),
                               meta["domains"].get(d, {}).get("val_bytes")) for d, loss in last["val_loss"].items()}
    bpb = {} if None in bpb.values() else bpb
    found = []  # what train.py reported it ran on ('1 process(es), cpu, float32, compile=False')
    if os.path.isfile(os.path.join(run_dir, "train.log")):
        with open(os.path.join(run_dir, "train.log")) as f:
            found = re.findall(r"(\d+ process\(es\), [^,]+, [^,]+, compile=\w+)", f.read())
    return {"run_dir": run_dir, "iter": last["iter"], "tokens": last["tokens"], "flops": last["flops"],
            "val_loss": last["val_loss"], "val_loss_mean": last["val_loss_mean"], "val_bpb": bpb,
            "val_bpb_mean": sum(bpb.values()) / len(bpb) if bpb else None,
            "mixture": last.get("mixture") or cfg.get("mixture"),
            "grow_events": [e for e in events if e.get("event") == "grow"], "n_layer": cfg.get("n_layer"),
            "n_embd": cfg.get("n_embd"), "seed": cfg.get("seed"), "ran_on": found[-1] if found else None}


# -------------------------------------------------------------------------------------------------------------
# Results

def host_device():
    try:
        import torch
        if torch.cuda.is_available():
            return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    except Exception:  # a broken CUDA setup should not stop the report
        pass
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores), no CUDA device"


def portable(text):
    """Text as results keep it, the same wherever they were made: the interpreter as `python`, and paths inside
    the repository relative to it (the repository itself as `.`)."""
    text = text.replace(sys.executable, "python")
    # only REPO as a whole path: not inside a longer one ("<elsewhere>/<repo>") nor the start of one ("<repo>2")
    repo = r"(?<![\w./-])" + re.escape(REPO)
    text = re.sub(repo + r"/(?=[\w.-])", "", text)     # <repo>/out/x -> out/x
    return re.sub(repo + r"/?(?![\w.-])", ".", text)   # <repo> and <repo>/ -> .


def fmt(x, spec=".4f"):
    return "-" if x is None else format(x, spec)


def spread(values):
    """(mean, min, max) of the values that are not None, or None when there are none."""
    vals = [float(v) for v in values if v is not None]
    return (sum(vals) / len(vals), min(vals), max(vals)) if vals else None


def fmt_spread(values, spec=".4f", percent=False):
    """One number over seeds: 'mean' for one value, 'mean [min, max]' for several; '-' when none is known. Seeds
    where the value is None (e.g. a target never reached) are left out and counted: 'mean [min, max] (2 of 3)'."""
    spec = "+.1%" if percent else spec
    sp = spread(values)
    if sp is None:
        return "-"
    known = sum(v is not None for v in values)
    text = f"{sp[0]:{spec}} [{sp[1]:{spec}}, {sp[2]:{spec}}]" if known > 1 else format(sp[0], spec)
    return text + (f" ({known} of {len(values)})" if known < len(values) else "")


def seeds_note(seeds):
    if len(seeds) == 1:
        return f"One seed ({seeds[0]}): no spread (run with --seeds N for N seeds)."
    return (f"{len(seeds)} seeds ({', '.join(map(str, seeds))}; train.py's seed: model init and data order). Each "
            f"cell: mean over seeds [min, max]; comparisons are taken within a seed, then averaged.")


def md_table(headers, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def finish(args, title, sections, data, summary, plot_name, series, panels, target=None, plot_title=None, draw=None):
    """The end of an experiment script: the plot of the runs over seeds, series {arm: [run_dir per seed]}
    (eval.plot_curves; target: a loss to draw; or draw(png path) instead), results.json and results.md
    (write_results), the summary lines and where the results are, printed. Returns data, with the plot's path
    (None when not drawn) and a note."""
    import eval as ev
    from runs import read_evals
    runs = {}
    for arm, dirs in series.items():
        for d in dirs:
            try:
                runs.setdefault(arm, []).append(read_evals(d, log=lambda *a: None))
            except (FileNotFoundError, ValueError):
                pass
    png = os.path.join(args.out, plot_name) if runs or draw else None
    note = f"plot: {plot_name}" if png else "no finished runs to plot"
    try:
        if png:
            (draw or (lambda path: ev.plot_curves(path, runs, panels, target, plot_title)))(png)
    except ev.EvalError:
        png, note = None, ("no plot: matplotlib is not installed (pip install matplotlib, then rerun: finished arms "
                           "are reused)")
    data.update(plot=png, plot_note=note)
    head = {"experiment": title, "command": args.command, "device": host_device(),  # the run's provenance
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "scale": args.scale,
            "config": args.config, "overrides": args.overrides, "launcher": args.launcher_text,
            "dataset": args.settings["dataset"], "out": portable(args.out), "seeds": args.seed_list}
    paths = write_results(args.out, head, data,
                          sections + [f"![{plot_name[:-4].replace('_', ' ')}]({plot_name})" if png else note])
    print("\n".join(summary))
    print(f"wrote {paths[0]} and {paths[1]}" + (f" and {png}" if png else f" ({note})"))
    return data


def write_results(out, head, data, sections):
    """results.json (header + data, no machine paths) and results.md (header lines + markdown sections) in out."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json.tmp"), "w", encoding="utf-8") as f:
        f.write(portable(json.dumps(dict(head, **data), indent=2, default=str, ensure_ascii=False)))
    os.replace(os.path.join(out, "results.json.tmp"), os.path.join(out, "results.json"))
    lines = [f"# {head['experiment']}", "", f"- command: `{head['command']}`",
             f"- device: {head['device']}; train.py launched with `{head['launcher']}`", f"- date: {head['date']}",
             f"- settings: `{head['config']}`" + (f" + `{' '.join(head['overrides'])}`" if head["overrides"] else ""),
             f"- dataset: {head['dataset']}"]
    seeds, walls = head.get("seeds") or [], {}
    if len(seeds) > 1:
        lines.append(f"- seeds: {', '.join(map(str, seeds))} (first in the arms' own folders, the others "
                     f"in seed<seed>/)")
    for root, _, files in os.walk(out):  # minutes per seed from the arms' arm.json (a reused arm: its time then)
        parts = os.path.relpath(root, out).split(os.sep)
        m = re.match(r"seed(\d+)$", parts[0])
        rest = parts[1:] if m else parts  # <arm> or search/n<k>, in the seed's folder (not another T's arms)
        if "arm.json" in files and (len(rest) == 1 or (len(rest) == 2 and rest[0] == "search")):
            seed = int(m.group(1)) if m else (seeds[0] if seeds else None)
            if seed in seeds:
                walls[seed] = walls.get(seed, 0.0) + wall_minutes(root)
    if walls:
        lines.append("- wall time of the train.py runs, per seed: " + ", ".join(f"{seed}: {walls[seed]:.1f} min"
                                                                              for seed in seeds if seed in walls))
    ran_on = sorted({r.get("ran_on") for r in (data.get("arms") or {}).values() if r.get("ran_on")})
    if ran_on:
        lines.append("- train.py reported: " + "; ".join(f"`{x}`" for x in ran_on))
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n\n" + "\n\n".join(s.rstrip() for s in sections if s) + "\n")
    return os.path.join(out, "results.json"), os.path.join(out, "results.md")
