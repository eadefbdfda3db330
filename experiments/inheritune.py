"""
Inheritune experiment (Sanyal et al. 2024; docs/papers.md sec. 2): does a small model that starts from the
first n blocks of a trained reference (plus its token embeddings and LM head), trained T steps, match the
reference, and match a same-size model trained from scratch for 2T steps?

    python experiments/inheritune.py --scale tiny --dataset data/<name>    # seconds on a CPU
    python experiments/inheritune.py --scale mini                          # one GPU, pycorpus
    python experiments/inheritune.py --scale mini --arms reference,inherit,scratch_T,scratch_2T

The config (config/inheritune_<scale>.py) is the reference: L = n_layer layers trained T = its last iteration.
n = L // 2. Arms (arms that need the reference run it first):

  reference          L layers from scratch, T steps
  inherit            blocks 0..n-1 + wte / lm_head of the reference (inherit.py's default parts), T steps
  scratch_T          n layers from scratch, T steps
  scratch_2T         n layers from scratch, 2T steps (a config's explicit lr_decay_iters is doubled too)
  search             the paper's algorithm (inherit.search): n = L/2, L/2 + 2, ... each inherited and trained T
                     steps, until one matches the reference's val loss (rounds in <out>/search/n<k>)
  ablation_<preset>  inherit with --inherit_parts=<preset>: attn+norm, mlp+norm, attn+mlp (sub-block ablation);
                     ablation_full is the inherit run itself (whole blocks)

Outputs in --out: one folder per arm, results.json, results.md (val loss per arm and domain, the search rounds,
and the paper's claims checked on these runs), loss_curves.png when matplotlib is installed. Finished arms are
reused, interrupted ones resumed.
"""

import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import common  # noqa: E402
import inherit  # noqa: E402

PRESETS = [p for p in inherit.PRESETS if p != "all"]  # full, attn+norm, mlp+norm, attn+mlp
ARMS = ["reference", "inherit", "scratch_T", "scratch_2T", "search"] + [f"ablation_{p}" for p in PRESETS]
ALIASES = {"ablation_full": "inherit"}
DEPENDS = {a: ["reference"] for a in ARMS if a not in ("reference", "scratch_T", "scratch_2T")}


def budget_args(steps, s, factor=1):
    args = [f"--max_iters={steps * factor}", "--max_tokens=0"]
    if s["lr_decay_iters"] and factor != 1:
        args.append(f"--lr_decay_iters={s['lr_decay_iters'] * factor}")
    return args


def arm_args(arm, s, ref_dir):
    """train.py --key=value settings of one arm, given the resolved reference settings s."""
    arm = ALIASES.get(arm, arm)
    L, T = s["n_layer"], common.final_iter(s)
    n = L // 2
    inherit_args = ["--init_from=inherit", f"--inherit_from={ref_dir}", f"--inherit_n_layer={n}", f"--n_layer={n}"]
    if arm == "reference":
        return budget_args(T, s)
    if arm == "inherit":
        return inherit_args + budget_args(T, s)
    if arm == "scratch_T":
        return [f"--n_layer={n}"] + budget_args(T, s)
    if arm == "scratch_2T":
        return [f"--n_layer={n}"] + budget_args(T, s, factor=2)
    if arm.startswith("ablation_"):
        return inherit_args + [f"--inherit_parts={arm[len('ablation_'):]}"] + budget_args(T, s)
    raise ValueError(arm)


def run_search(args, ref_dir, T, env):
    """inherit.search with the experiment's launcher; finished rounds are reused (resume=True)."""
    out_dir = os.path.join(args.out, "search")
    if args.dry_run:
        print(f"[search] would run inherit.search({ref_dir!r}, steps={T}, out_dir={out_dir!r}) (rounds of "
              f"{T} steps from n = L/2, + 2 each)")
        return None

    def runner(cmd, run_dir):  # cmd = [python, <repo>/train.py, ...]: started with the experiment's launcher
        full = list(args.launcher) + cmd[1:]
        name = f"search/{os.path.basename(run_dir)}"
        print(f"[{name}] {shlex.join(full)}")
        common.stream(name, full, run_dir, env)

    return inherit.search(ref_dir, steps=T, out_dir=out_dir, resume=True, runner=runner)


def compare(a, b):
    """'better by X' / 'worse by X' / 'equal' for val losses a vs b (nats)."""
    d = b - a
    return f"better by {d:.4f}" if d > 0 else f"worse by {-d:.4f}" if d < 0 else "equal"


def claims(rows, s, search):
    L, T = s["n_layer"], common.final_iter(s)
    n = L // 2
    out = []
    loss = {a: r["val_loss_mean"] for a, r in rows.items()}
    if "inherit" in loss and "scratch_2T" in loss:
        yes = loss["inherit"] <= loss["scratch_2T"]
        out.append(f"inherited {n} layers at T={T} matched scratch {n} layers at 2T={2 * T}: {'yes' if yes else 'no'} "
                   f"(val loss {loss['inherit']:.4f} vs {loss['scratch_2T']:.4f}; the paper, at its searched n: "
                   f"Medium 16L 2.81 vs 2.83, Large 18L 2.80 vs 2.84, XLarge 24L 2.64 vs 2.62).")
    if "inherit" in loss and "scratch_T" in loss:
        out.append(f"inherited {n} layers vs scratch {n} layers, both at T={T}: "
                   f"{compare(loss['inherit'], loss['scratch_T'])} nats ({loss['inherit']:.4f} vs "
                   f"{loss['scratch_T']:.4f}).")
    if "inherit" in loss and "reference" in loss:
        yes = inherit.matches_reference(loss["inherit"], loss["reference"])
        out.append(f"inherited {n} layers matched the {L}-layer reference at T={T}: {'yes' if yes else 'no'} "
                   f"({loss['inherit']:.4f} vs {loss['reference']:.4f}).")
    if search is not None:
        res = search.get("result") or {}
        out.append(f"search: {res.get('reason', 'unfinished')} (rounds n = "
                   f"{', '.join(str(r['n_layer']) for r in search['rounds'])}).")
    abl = {a: l for a, l in loss.items() if a.startswith("ablation_")}
    if abl:
        best = min(abl, key=abl.get)
        out.append("sub-block ablation, val loss at T: " + ", ".join(f"{a[9:]} {l:.4f}" for a, l in abl.items())
                   + f"; lowest: {best[9:]} (the paper: attn+mlp 2.80 < full 2.81 < attn+norm 2.84 < mlp+norm 2.85).")
    return out


def main(argv=None):
    args = common.parse(argv, "inheritune", ARMS, __doc__)
    s = args.settings
    if s["n_layer"] < 2:
        raise SystemExit(f"experiments/inheritune.py: the reference needs >= 2 layers (n_layer={s['n_layer']})")
    if s["init_from"] != "scratch" or s["grow_at_tokens"]:
        raise SystemExit("experiments/inheritune.py: the config must train the reference from scratch without growth")
    env = common.child_env(args.scale)
    T = common.final_iter(s)
    ref_dir = os.path.join(args.out, "reference")
    base = [args.config] + args.overrides
    todo = common.with_dependencies(args.arm_list, ARMS, DEPENDS)
    search = None
    done_dirs = set()
    for arm in todo:
        if arm == "search":
            search = run_search(args, ref_dir, T, env)
            continue
        run_dir = os.path.join(args.out, ALIASES.get(arm, arm))
        if run_dir in done_dirs:
            continue
        done_dirs.add(run_dir)
        common.run_arm(arm, run_dir, base + arm_args(arm, s, ref_dir), args.launcher, env, args.dry_run)
    if args.dry_run:
        return None

    # the requested arms and the ones they needed (the reference), in the experiment's order
    rows = {a: common.summary(os.path.join(args.out, ALIASES.get(a, a))) for a in todo if a != "search"}
    L, n = s["n_layer"], s["n_layer"] // 2
    desc = {"reference": (L, T, "scratch"), "inherit": (n, T, f"inherit first {n} of {L}"),
            "scratch_T": (n, T, "scratch"), "scratch_2T": (n, 2 * T, "scratch")}
    for a in rows:
        if a.startswith("ablation_"):
            desc[a] = (n, T, f"inherit first {n} of {L}, parts {a[9:]}")
    domains = list(next(iter(rows.values()))["val_loss"]) if rows else []
    table = []
    for a, r in rows.items():
        layers, steps, init = desc[a]
        r.update({"layers": layers, "steps": steps, "init": init})
        table.append([a, layers, f"{r['iter']:,}", init] + [common.fmt(r["val_loss"].get(d)) for d in domains]
                     + [common.fmt(r["val_loss_mean"]), f"{r['tokens']:,}", f"{r['flops']:.3g}"])
    sections = []
    if rows:
        sections.append(common.md_table(["arm", "layers", "steps", "init"] + [f"val {d}" for d in domains]
                                        + ["val loss (mean)", "tokens", "FLOPs"], table,
                                        ["---", "---:", "---:", "---"] + ["---:"] * (len(domains) + 3)))
    sentences = claims(rows, s, search)
    if sentences:
        sections.append("\n".join(f"- {x}" for x in sentences))
    if search is not None:
        sections.append("## Inheritune search (inherit.search)\n\n" + inherit.search_markdown(search).split("\n", 2)[2])
    plot_runs = {a: r["run_dir"] for a, r in rows.items()}
    if search is not None:
        plot_runs.update({f"search_n{r['n_layer']}": r["run_dir"] for r in search["rounds"]})
    png, note = common.plot(args.out, plot_runs)
    sections.append(f"![loss curves]({os.path.basename(png)})" if png else note)
    head = common.header(args, "Inheritune: inherited small model vs reference and scratch")
    data = {"arms": rows, "search": search, "claims": sentences, "n_layer_reference": L, "n_layer_small": n,
            "T": T, "plot": png, "plot_note": note}
    paths = common.write_results(args.out, head, data, sections)
    print("\n".join(sentences))
    print(f"wrote {paths[0]} and {paths[1]}" + (f" and {png}" if png else f" ({note})"))
    return data


if __name__ == "__main__":
    main()
