"""
Inheritune experiment (Sanyal et al. 2024; docs/papers.md sec. 2): does a small model that starts from the first n
blocks of a trained reference (plus its token embeddings and LM head), trained T steps, match the reference, and
match a same-size model trained from scratch for 2T steps?

    python experiments/inheritune.py --scale tiny --dataset data/<name>    # seconds on a CPU (pipeline check)
    python experiments/inheritune.py --scale cpu --seeds 3                 # every arm below
    python experiments/inheritune.py --scale cpu --seeds 3 --gap 0.25,0.5,1   # the gap against T

config/inheritune_<scale>.py is the reference (L = n_layer layers, T steps); n = L // 2. Arms: reference, inherit,
scratch_T, scratch_2T (n layers from scratch), search (inherit.search: n = L/2, L/2 + 2, ... until one matches the
reference) and ablation_<preset> (--inherit_parts=attn+norm, mlp+norm or attn+mlp). Outputs in --out: one folder
per arm, results.json, results.md (losses, the search rounds, each claim and in how many seeds it held, the
attention rank per layer), loss_curves.png. Finished arms are reused, interrupted ones resumed.
"""

import copy
import json
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import common  # noqa: E402
import grow  # noqa: E402
import inherit  # noqa: E402
from runs import run_logged  # noqa: E402

PRESETS = [p for p in inherit.PRESETS if p != "all"]  # full, attn+norm, mlp+norm, attn+mlp
ARMS = ["reference", "inherit", "scratch_T", "scratch_2T", "search"] + [f"ablation_{p}" for p in PRESETS]
ALIASES = {"ablation_full": "inherit"}
DEPENDS = {a: ["reference"] for a in ARMS if a not in ("reference", "scratch_T", "scratch_2T")}
HEADLINE = ["reference", "inherit", "scratch_T", "scratch_2T"]  # the arms --gap runs at every T


def arm_args(arm, s, ref_dir):
    """train.py --key=value settings of one arm, given the resolved reference settings s: T steps (scratch_2T: 2T,
    and an explicit lr_decay_iters doubled too), n = L // 2 layers but for the reference."""
    arm, n, T = ALIASES.get(arm, arm), s["n_layer"] // 2, common.final_iter(s)
    factor = 2 if arm == "scratch_2T" else 1
    budget = [f"--max_iters={T * factor}", "--max_tokens=0"]
    if s["lr_decay_iters"] and factor != 1:
        budget.append(f"--lr_decay_iters={s['lr_decay_iters'] * factor}")
    if arm == "reference":
        return budget
    if arm.startswith("scratch_"):
        return [f"--n_layer={n}"] + budget
    parts = [f"--inherit_parts={arm[len('ablation_'):]}"] if arm.startswith("ablation_") else []
    return ["--init_from=inherit", f"--inherit_from={ref_dir}", f"--inherit_n_layer={n}", f"--n_layer={n}", *parts,
            *budget]


def run_search(args, ref_dir, T, out):
    """inherit.search with the experiment's launcher in <out>/search; finished rounds are reused (resume=True). Each
    round takes the reference's settings (its config.json), its seed included."""
    out_dir = os.path.join(out, "search")
    if args.dry_run:
        print(f"[search] would run inherit.search({ref_dir!r}, steps={T}, out_dir={out_dir!r}) (rounds of "
              f"{T} steps from n = L/2, + 2 each)")
        return None

    def runner(cmd, run_dir):  # cmd = [python, <repo>/train.py, ...]: started with the experiment's launcher
        full = list(args.launcher) + cmd[1:]
        name = f"search/{os.path.basename(run_dir)}"
        print(f"[{name}] {shlex.join(full)}")
        t0 = time.time()
        run_logged(full, run_dir, name, env=args.env)
        with open(os.path.join(run_dir, "arm.json"), "w") as f:  # its wall time, counted with the seed's arms
            json.dump({"arm": name, "argv": cmd[2:], "wall_s": time.time() - t0}, f, indent=2)

    return inherit.search(ref_dir, steps=T, out_dir=out_dir, resume=True, runner=runner)


def claims(rows, s, search):
    L, T, n, out = s["n_layer"], common.final_iter(s), s["n_layer"] // 2, []
    loss = {a: r["val_loss_mean"] for a, r in rows.items()}
    if "inherit" in loss and "scratch_2T" in loss:
        yes = loss["inherit"] <= loss["scratch_2T"]
        out.append(f"inherited {n} layers at T={T} matched scratch {n} layers at 2T={2 * T}: {'yes' if yes else 'no'} "
                   f"(val loss {loss['inherit']:.4f} vs {loss['scratch_2T']:.4f}; the paper, at its searched n: "
                   f"Medium 16L 2.81 vs 2.83, Large 18L 2.80 vs 2.84, XLarge 24L 2.64 vs 2.62).")
    if "inherit" in loss and "scratch_T" in loss:
        d = loss["scratch_T"] - loss["inherit"]
        verdict = f"better by {d:.4f}" if d > 0 else f"worse by {-d:.4f}" if d < 0 else "equal"
        out.append(f"inherited {n} layers vs scratch {n} layers, both at T={T}: {verdict} nats "
                   f"({loss['inherit']:.4f} vs {loss['scratch_T']:.4f}).")
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


def run_seed(args, s, k, seed):
    """Train (or reuse) one seed's arms and search; returns (that seed's folder, the search summary or None)."""
    out, base = common.seed_run(args, k, seed)
    ref_dir, search, todo = os.path.join(out, "reference"), None, common.with_dependencies(args.arm_list, ARMS, DEPENDS)
    for arm in [a for a in todo if ALIASES.get(a) not in todo]:
        if arm == "search":
            search = run_search(args, ref_dir, common.final_iter(s), out)
        else:
            src = args.same_as.get(arm)  # --gap: (another T's folder, its arm) that may hold this very run
            same = src and os.path.join(common.seed_folder(src[0], k, seed), src[1])
            common.run_arm(arm if k == 0 else f"{arm} seed {seed}", os.path.join(out, ALIASES.get(arm, arm)),
                           base + arm_args(arm, s, ref_dir), args.launcher, args.env, args.dry_run, same_as=same)
    return out, search



def analyse(args, s, out, search):
    """One seed's rows (the requested arms and the ones they needed, in the experiment's order), claims, table."""
    todo = common.with_dependencies(args.arm_list, ARMS, DEPENDS)
    rows = {a: common.summary(os.path.join(out, ALIASES.get(a, a))) for a in todo if a != "search"}
    L, T, n = s["n_layer"], common.final_iter(s), s["n_layer"] // 2
    desc = {"reference": (L, T, "scratch"), "inherit": (n, T, f"inherit first {n} of {L}"),
            "scratch_T": (n, T, "scratch"), "scratch_2T": (n, 2 * T, "scratch")}
    domains = list(next(iter(rows.values()))["val_loss"]) if rows else []
    table = []
    for a, r in rows.items():
        layers, steps, init = desc[a] if a in desc else (n, T, f"inherit first {n} of {L}, parts {a[9:]}")
        r.update({"layers": layers, "steps": steps, "init": init})
        table.append([a, layers, f"{r['iter']:,}", init] + [common.fmt(r["val_loss"].get(d)) for d in domains]
                     + [common.fmt(r["val_loss_mean"]), common.fmt(r["val_bpb_mean"], ".3f"), f"{r['tokens']:,}",
                        f"{r['flops']:.3g}"])
    md = common.md_table(["arm", "layers", "steps", "init"] + [f"val {d}" for d in domains]
                         + ["val loss (mean)", "val bpb", "tokens", "FLOPs"], table,
                         ["---", "---:", "---:", "---"] + ["---:"] * (len(domains) + 4)) if rows else None
    for a in [a for a in HEADLINE if a in rows]:
        rows[a]["max_rank"] = attention_ranks(rows[a]["run_dir"], s)
    return rows, claims(rows, s, search), md


def attention_ranks(run_dir, s):
    """MaxRank per layer (inherit.attention_rank, the paper's tau = 0.9: the fewest singular values holding 90% of
    an attention matrix's energy, max over heads) of a run's final model on 100 val sequences of min(100,
    block_size) tokens. The paper: a deep reference's later layers fall toward rank 1 ("lazy")."""
    from data.loader import dataset_dir
    from runs import find_checkpoint
    model = grow.load_model(find_checkpoint(run_dir, log=lambda *a: None)[0])
    tokens = inherit.sample_sequences(dataset_dir(s["dataset"]), 100, min(100, model.config.block_size),
                                      vocab_size=model.config.vocab_size)
    return [round(r, 2) for r in inherit.max_rank(inherit.attention_rank(model, tokens)).tolist()]


def rank_markdown(results, seq_len):
    """The attention-rank table: per arm, MaxRank of each layer (mean over seeds) and the lazy layers."""
    rows = []
    for a in [a for a in HEADLINE if all(a in r and "max_rank" in r[a] for r in results)]:
        per = [r[a]["max_rank"] for r in results]
        mean = [sum(x) / len(x) for x in zip(*per)]
        lazy = [sum(x <= 1.0 for x in ranks) for ranks in per]
        rows.append([a, len(mean), ", ".join(f"{x:.1f}" for x in mean), " / ".join(map(str, lazy))])
    if not rows:
        return None
    return (f"## Attention rank (\"more attentive\")\n\nMaxRank of each layer (layer 0 first; out of T = {seq_len} "
            f"tokens, tau = 0.9, 100 val sequences), mean over {len(results)} seed(s); a lazy layer has MaxRank 1. "
            "The paper: the deep reference's later layers degenerate toward rank 1, the small models keep full-rank "
            "attention.\n\n" + common.md_table(["arm", "layers", "MaxRank per layer", "lazy layers per seed"], rows))


def aggregate(results, seeds, s):
    """Mean [min, max] over seeds per arm, the headline question per seed, and the search's n per seed."""
    rows0 = results[0][0]
    domains = list(next(iter(rows0.values()))["val_loss"]) if rows0 else []
    table, data = [], {}
    for a, r0 in rows0.items():
        per = [res[0][a] for res in results]
        vals = {"val_loss_mean": [r["val_loss_mean"] for r in per], "val_bpb_mean": [r["val_bpb_mean"] for r in per]}
        vals.update({f"val_{d}": [r["val_loss"].get(d) for r in per] for d in domains})
        data[a] = dict({k: common.spread(v) for k, v in vals.items()}, values=vals)
        table.append([a, r0["layers"], f"{r0['iter']:,}", r0["init"]]
                     + [common.fmt_spread(vals[f"val_{d}"]) for d in domains]
                     + [common.fmt_spread(vals["val_loss_mean"]), common.fmt_spread(vals["val_bpb_mean"], ".3f")])
    md = [common.md_table(["arm", "layers", "steps", "init"] + [f"val {d}" for d in domains]
                          + ["val loss (mean)", "val bpb"], table,
                          ["---", "---:", "---:", "---"] + ["---:"] * (len(domains) + 2))]
    lines = []
    L, T, n = s["n_layer"], common.final_iter(s), s["n_layer"] // 2
    for a, b, what in (("inherit", "scratch_2T", f"inherited {n} layers at T={T} <= scratch {n} layers at 2T={2 * T}"),
                       ("inherit", "scratch_T", f"inherited {n} layers <= scratch {n} layers, both at T={T}"),
                       ("inherit", "reference", f"inherited {n} layers <= the {L}-layer reference at T={T}")):
        if a in rows0 and b in rows0:
            diffs = [res[0][b]["val_loss_mean"] - res[0][a]["val_loss_mean"] for res in results]
            yes = sum(x >= 0 for x in diffs)
            data[f"{a}_vs_{b}"] = {"margin": diffs, "yes": yes}
            lines.append(f"{what}: {'yes' if yes == len(diffs) else 'no' if yes == 0 else 'mixed'} in {yes} of "
                         f"{len(diffs)} seeds (margin {b} - {a}: {common.fmt_spread(diffs, '+.4f')} nats).")
    searched = [res[1] for res in results if res[1] is not None]
    if searched:
        found = [(sr.get("result") or {}).get("n_layer") for sr in searched]
        data["search_n"] = found
        lines.append("search: smallest n matching the reference per seed: "
                     + ", ".join(f"seed {sd}: {'none' if f is None else f}" for sd, f in zip(seeds, found)) + ".")
    md.append("\n".join(f"- {x}" for x in lines))
    return md, data, lines


def options(p):
    """inheritune.py's own options, beside experiments/common.py's."""
    p.add_argument("--gap", default=None, metavar="F1,F2,...",
                   help="the gap against T: run reference, inherit, scratch_T and scratch_2T at T = F x the config's "
                        "T for each factor F (F = 1 in --out itself, the others in <out>/T<steps>/) and write "
                        "inherit - scratch_2T and reference - scratch_T per T to <out>/gap/")


def main(argv=None):
    args = common.parse(argv, "inheritune", ARMS, __doc__, options=options)
    s = args.settings
    if s["n_layer"] < 2:
        raise SystemExit(f"experiments/inheritune.py: the reference needs >= 2 layers (n_layer={s['n_layer']})")
    if s["init_from"] != "scratch" or s["grow_at_tokens"]:
        raise SystemExit("experiments/inheritune.py: the config must train the reference from scratch without growth")
    args.same_as = {}  # {arm: (folder, arm)}: a finished run with the same settings, copied instead of trained
    return gap_against_T(args) if args.gap else run(args)


def run(args):
    """Every requested arm for every seed, then the tables, claims, attention ranks and plot (common.finish)."""
    s = args.settings
    T = common.final_iter(s)
    ran = common.each_seed(args, lambda k, seed: run_seed(args, s, k, seed))
    if args.dry_run:
        return None

    results = [analyse(args, s, out, search) + (search,) for out, search in ran]  # (rows, claims, md, search)
    rows, sentences, _, search = results[0]
    L, n = s["n_layer"], s["n_layer"] // 2
    many = len(ran) > 1
    sections, agg, summary_lines = [], None, sentences
    if many:
        agg_md, agg, summary_lines = aggregate([(r[0], r[3]) for r in results], args.seed_list, s)
        sections += [f"## Mean over {len(ran)} seeds\n\n" + agg_md[0], common.seeds_note(args.seed_list), agg_md[1]]
    for k, (rs, sents, table_md, sr) in enumerate(results):
        if many:
            sections.append(f"## Seed {args.seed_list[k]} (arms in {os.path.relpath(ran[k][0], args.out)}/)")
        sections += [table_md, "\n".join(f"- {x}" for x in sents)]  # write_results leaves out empty sections
        if sr is not None:
            sections.append(f"### Inheritune search (inherit.search){'' if not many else f', seed {args.seed_list[k]}'}"
                            "\n\n" + inherit.search_markdown(sr).split("\n", 2)[2])
    sections.insert(3 if many else 2, rank_markdown([r[0] for r in results], min(100, s["block_size"])))
    series = {a: [r[0][a]["run_dir"] for r in results] for a in rows}
    if search is not None:
        for rnd in search["rounds"]:
            if rnd["n_layer"] == n and "inherit" in rows:
                continue  # round n = L/2 is the inherit arm's run again (same settings and seed): drawn once
            series[f"search_n{rnd['n_layer']}"] = [
                x["run_dir"] for r in results if r[3] is not None for x in r[3]["rounds"]
                if x["n_layer"] == rnd["n_layer"]]
    data = {"arms": rows, "search": search, "claims": sentences, "n_layer_reference": L, "n_layer_small": n, "T": T,
            "per_seed": {str(seed): {"arms": r[0], "claims": r[1], "search": r[3]}
                         for seed, r in zip(args.seed_list, results)}, "aggregate": agg}
    return common.finish(args, "Inheritune: inherited small model vs reference and scratch", sections, data,
                         summary_lines, "loss_curves.png", series, [("tokens", "tokens"), ("training FLOPs", "flops")],
                         plot_title=f"{len(ran)} seed(s) (first solid, others dashed)")


def gap_against_T(args):
    """--gap: the headline arms at T = F x the config's T for each factor F, then per T and seed the two gaps:
    inherit - scratch_2T (< 0: inheriting beats training twice as long, the paper's headline) and reference -
    scratch_T (< 0: the reference is the better model at T, the paper's premise). Writes <out>/gap/."""
    T0, table, gaps = common.final_iter(args.settings), [], {}

    def root(T):  # F = 1 is the main run's own folder, so its arms are shared
        return args.out if T == T0 else os.path.join(args.out, f"T{T}")
    for f in sorted({float(x) for x in args.gap.split(",")}):
        sub, T = copy.copy(args), round(f * T0)
        sub.arm_list, sub.gap, sub.out = HEADLINE, None, root(T)
        if T != T0:
            sub.overrides = args.overrides + [f"--max_iters={T}", "--max_tokens=0"]
            sub.settings = common.resolve([args.config] + sub.overrides)
        # scratch at T = 2T' is scratch_2T of T': the same settings, reused when it is finished and equal
        sub.same_as = {"scratch_T": (root(T // 2), "scratch_2T")} if T % 2 == 0 else {}
        res = run(sub)
        if res is None:  # --dry_run
            continue
        loss = [{a: r["val_loss_mean"] for a, r in seed["arms"].items()} for seed in res["per_seed"].values()]
        g = gaps[T] = {"tokens": T * common.tokens_per_iter(sub.settings),
                       "inherit_minus_scratch_2T": [x["inherit"] - x["scratch_2T"] for x in loss],
                       "reference_minus_scratch_T": [x["reference"] - x["scratch_T"] for x in loss],
                       "scratch_gain_T_to_2T": [1 - x["scratch_2T"] / x["scratch_T"] for x in loss]}
        held = sum(x <= 0 for x in g["inherit_minus_scratch_2T"])
        table.append([f"{T:,}", f"{g['tokens']:,}", common.fmt_spread(g["inherit_minus_scratch_2T"], "+.4f"),
                      f"{held} of {len(loss)}", common.fmt_spread(g["reference_minus_scratch_T"], "+.4f"),
                      common.fmt_spread(g["scratch_gain_T_to_2T"], ".1%")])
    if args.dry_run:
        return None
    summary = [f"T={T}: inherit - scratch_2T {common.fmt_spread(g['inherit_minus_scratch_2T'], '+.4f')}, reference "
               f"- scratch_T {common.fmt_spread(g['reference_minus_scratch_T'], '+.4f')} nats" for T, g in gaps.items()]
    md = ("Per T, each seed's difference of final mean val losses (nats), then mean [min, max] over seeds. "
          "inherit - scratch_2T < 0: the inherited L/2 layers trained T steps beat L/2 layers from scratch trained 2T "
          "(the paper's headline); reference - scratch_T < 0: the L-layer reference is the better model at T (the "
          "paper's premise); scratch gain: how much L/2 layers from scratch still gain from T to 2T (the paper: "
          "1.3-4.3%).\n\n" + common.md_table(["T (steps)", "tokens", "inherit - scratch_2T", "inherit <= scratch_2T",
                                               "reference - scratch_T", "scratch gain T -> 2T"], table))
    out = copy.copy(args)
    out.out = os.path.join(args.out, "gap")
    return common.finish(out, "Inheritune: the gap against T", [md, common.seeds_note(args.seed_list)],
                         {"gaps": gaps}, summary, "gap_vs_T.png", {}, None, draw=lambda path: plot_gap(path, gaps))


def plot_gap(path, gaps):
    """The two gaps against T's tokens: mean over seeds, a bar from the lowest to the highest seed."""
    import eval as ev
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ev.EvalError("plotting needs matplotlib") from None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    x = [g["tokens"] for g in gaps.values()]
    for i, (key, label) in enumerate((("inherit_minus_scratch_2T", "inherited at T - scratch at 2T"),
                                      ("reference_minus_scratch_T", "reference - scratch, both at T"))):
        vals = [g[key] for g in gaps.values()]
        mean = [sum(v) / len(v) for v in vals]
        ax.errorbar(x, mean, yerr=[[m - min(v) for m, v in zip(mean, vals)], [max(v) - m for m, v in zip(mean, vals)]],
                    color=f"C{i}", marker="o", capsize=3, label=label)
    ax.axhline(0, color="gray", lw=0.8, ls="--")
    ax.set(xscale="log", xlabel="T (tokens)", ylabel="val loss difference (nats); < 0: first is better")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    common.exit_on_sigterm()
    main()
