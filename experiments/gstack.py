"""
Gstack experiment (Du et al. 2024, "Stacking Your Transformers"; docs/papers.md sec. 1): does a model grown from a
trained small one reach the loss of a model trained from scratch with fewer FLOPs, and which operator works?
Every arm is one train.py run; a grown arm's tokens and FLOPs include its small phase.

    python experiments/gstack.py --scale tiny --dataset data/<name>            # seconds on a CPU (pipeline check)
    python experiments/gstack.py --scale cpu --arms scratch,gstack --seeds 2   # the headline, 13-16 min a seed
    python experiments/gstack.py --scale cpu --ablation timing --seeds 2       # one of the paper's ablations

config/gstack_<scale>.py is the Gstack arm: the small model (n_layer = L / g), d = grow_at_tokens, g = grow_factor,
the budget. Arms: scratch (L layers throughout), gstack (G_direct depthwise), depth_<op> (zero, random, learn) and
width_<op> (direct, zero, random, learn: L layers at half width grown to n_embd after d tokens). Outputs in --out:
one folder per arm, results.json, results.md (final losses, FLOPs, the speedup at scratch's final loss),
loss_vs_flops.png. Finished arms are reused, interrupted ones resumed.

--ablation NAME runs one of the paper's questions (ABLATIONS) as arms beside the others in --out, and writes its
results to --out/NAME/: timing (d = one step, d/2, d, 2d), factor (g = 2, 4, 8 to the same L layers), stacking
(one hop, gradual doublings, MIDAS middle stacking), width (the widthwise operators) and budget (scratch and Gstack
at 1x, 2x and 4x the budget, d fixed: does the speedup last?).
"""

import copy
import math
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configurator import model_args  # noqa: E402
from experiments import common  # noqa: E402
import grow  # noqa: E402

OPS = ("direct", "zero", "random", "learn")
OPERATOR_ARMS = ["scratch", "gstack"] + [f"depth_{op}" for op in OPS] + [f"width_{op}" for op in OPS]
# the paper's ablations, each a question and its arms; scratch and gstack are the same runs in every one
ABLATIONS = {
    "timing": ("growth timing d: the small model trains d tokens (one step ~ d = 0: stacking an untrained model)",
               ["scratch", "d0", "d_half", "gstack", "d_double"]),
    "factor": ("growth factor g: the same L layers grown from L/2, L/4 and L/8 (a 1-layer base at L = 8)",
               ["scratch", "g2", "gstack", "g8"]),
    "stacking": ("how to stack: one hop (L/g -> L), gradual doublings (L/4 -> L/2 -> L, reaching L at d) and MIDAS "
                 "(middle stacking, Saunshi et al. 2024: the middle block of L/g layers copied at each of its "
                 "stages, stage k trained in proportion to k)", ["scratch", "gstack", "gradual", "midas"]),
    "width": ("widthwise against depthwise: L layers at half width grown to full width after d tokens",
              ["scratch", "gstack"] + [f"width_{op}" for op in OPS]),
    "budget": ("does the speedup last: scratch and Gstack trained 1x, 2x and 4x the budget (d fixed)",
               ["scratch", "gstack", "scratch_2x", "gstack_2x", "scratch_4x", "gstack_4x"]),
}
ARMS = OPERATOR_ARMS + [a for _, arms in ABLATIONS.values() for a in arms if a not in OPERATOR_ARMS]
ALIASES = {"depth_direct": "gstack"}  # one run, two names


def dim_op(arm):
    """('depth' | 'width', op) of an arm; ('-', '-') for scratch (at any budget)."""
    parts = ALIASES.get(arm, arm).split("_")
    if parts[0] in ("depth", "width") and parts[-1] in OPS:
        return parts[0], parts[-1]
    return ("-", "-") if parts[0] == "scratch" else ("depth", "direct")


def intermediate(s):
    """The MLP hidden size the model will have (GPTConfig's default when intermediate_size is None)."""
    from model import GPTConfig
    return GPTConfig(**dict(model_args(s), vocab_size=64, n_layer=1)).intermediate_size


def check_settings(s):
    """The settings the arms are derived from; SystemExit with the reason when they do not fit."""
    budget = common.final_iter(s) * common.tokens_per_iter(s)
    problems = [p for bad, p in (
        (s["grow_at_tokens"] <= 0, "grow_at_tokens must be > 0 (the config describes the in-run Gstack arm)"),
        (s["grow_dim"] != "depth" or s["grow_layer_map"] is not None, "the config must grow depthwise by "
         "grow_factor (grow_dim='depth', no grow_layer_map); the script derives the widthwise arms itself"),
        (s["grow_at_tokens"] >= budget, f"grow_at_tokens={s['grow_at_tokens']} is not inside the budget "
                                        f"({budget} tokens)"),
        (s["n_embd"] % 2, f"n_embd={s['n_embd']} must be even (the widthwise small model has half of it)"),
        (s["n_head"] % 2, f"n_head={s['n_head']} must be even (the widthwise small model has half of it)"),
        ((s["n_kv_head"] or 2) % 2, f"n_kv_head={s['n_kv_head']} must be even"),
        (intermediate(s) % 2, f"intermediate_size={intermediate(s)} must be even")) if bad]
    if problems:
        raise SystemExit("experiments/gstack.py: " + "; ".join(problems))


def arm_args(arm, s):
    """train.py --key=value settings of one arm, given the resolved settings s (config + user overrides)."""
    small, g, d = s["n_layer"], s["grow_factor"], s["grow_at_tokens"]
    L, budget = small * g, common.final_iter(s) * common.tokens_per_iter(s)
    if arm.endswith(("_2x", "_4x")):  # the same arm trained k times the steps; d and the LR's warmup stay
        k = int(arm[-2])
        key = "max_tokens" if s["max_tokens"] else "max_iters"
        return arm_args(arm[:-3], s) + [f"--{key}={s[key] * k}"]
    depth = lambda n, at, *more: [f"--n_layer={n}", "--grow_at_tokens=" + str(at).replace(" ", ""),
                                  "--grow_dim=depth", "--grow_op=direct", *more]
    if arm in ("d0", "d_half", "d_double"):  # growth timing: one step (the least train.py can grow after), d/2, 2d
        at = {"d0": common.tokens_per_iter(s), "d_half": d // 2, "d_double": 2 * d}[arm]
        return depth(small, at, f"--grow_factor={g}")
    if arm in ("g2", "g8"):  # growth factor: L layers from a base of L/2 or L/8 layers
        return depth(L // int(arm[1]), d, f"--grow_factor={arm[1]}")
    if arm == "gradual":  # log2(g) doublings, the last at d: L/4 -> L/2 at d/2, L/2 -> L at d (for g = 4)
        hops = int(math.log2(g))
        return depth(small, [d >> (hops - 1 - k) for k in range(hops)], "--grow_factor=2")
    if arm == "midas":  # blocks of b = L/g layers; stage k of g trains in proportion to k (MIDAS' PROP-1 schedule)
        at = [budget * k * (k + 1) // (g * (g + 1)) for k in range(1, g)]
        maps = grow.midas_layer_maps(small, small, g - 1)
        return depth(small, at, "--grow_layer_map=" + str(maps).replace(" ", ""))
    dim, op = dim_op(arm)
    if dim == "-":
        return [f"--n_layer={L}", "--grow_at_tokens=0"]
    if dim == "depth":
        return [f"--n_layer={small}", f"--grow_at_tokens={d}", "--grow_dim=depth", f"--grow_op={op}",
                f"--grow_factor={g}"]
    kv = [f"--n_kv_head={s['n_kv_head'] // 2}"] if s["n_kv_head"] is not None else []
    return [f"--n_layer={L}", f"--n_embd={s['n_embd'] // 2}", f"--n_head={s['n_head'] // 2}", *kv,
            f"--intermediate_size={intermediate(s) // 2}", f"--grow_at_tokens={d}", "--grow_dim=width",
            f"--grow_op={op}", f"--grow_n_embd={s['n_embd']}"]


def shape(row):
    """'small -> .. -> big' layers and width of an arm from its grow events (or its config when it did not grow)."""
    ev_ = row["grow_events"]
    if ev_:
        configs = [ev_[0]["before"]] + [e["after"] for e in ev_]
        return tuple(" -> ".join(str(c[k]) for c in configs) for k in ("n_layer", "n_embd"))
    return str(row["n_layer"]), str(row["n_embd"])


def paper_curve(evals, events):
    """[(paper tokens, val loss)] of a run (eval.paper_curve: grow.paper_tokens, a small-model token = 1/g)."""
    import eval as ev
    return ev.paper_curve(ev.curve(evals, "tokens"), events)


def speedups(rows, comparison):
    """Per arm, the speedup over scratch at scratch's final val loss in exact FLOPs and in the paper's tokens (as
    eval.compare_runs computes them), and scratch's loss at the arm's final FLOPs minus the arm's (> 0: the arm is
    ahead at equal compute). Adds the keys to each row."""
    import eval as ev
    from runs import read_evals
    base_flops = ev.curve(read_evals(rows["scratch"]["run_dir"], log=lambda *a: None)[0], "flops")
    for row in rows.values():
        c = comparison["runs"][os.path.basename(row["run_dir"])]
        pc = paper_curve(*read_evals(row["run_dir"], log=lambda *a: None))
        ev_ = row["grow_events"]
        row.update({"flops_to_target": c.get("flops_to_target"), "tokens_to_target": c.get("tokens_to_target"),
                    "speedup": c.get("speedup"), "token_speedup": c.get("token_speedup"),
                    "g": float(grow.growth_factor(ev_[0]["before"], ev_[0]["after"])) if ev_ else 1.0,
                    "paper_tokens": pc[-1][0] if pc else None,
                    "paper_tokens_to_target": ev.tokens_to_reach(pc, comparison["target"]),
                    "paper_speedup": c.get("speedup_paper")})
        at = ev.loss_at(base_flops, float(row["flops"]))
        row["gain_at_equal_flops"] = None if at is None else at - row["val_loss_mean"]


def claims(rows, comparison):
    """One sentence per grown arm, from the numbers the runs logged."""
    if "scratch" not in rows:
        return ["No scratch run among the arms: no speedup can be measured (add scratch to --arms)."]
    target, out = comparison["target"], []
    base = comparison["runs"][os.path.basename(rows["scratch"]["run_dir"])]
    seen = {rows["scratch"]["run_dir"]}
    for arm, row in rows.items():
        if row["run_dir"] in seen:  # scratch itself, or an alias of an arm already described
            continue
        seen.add(row["run_dir"])
        r = comparison["runs"][os.path.basename(row["run_dir"])]
        who = "Gstack" if ALIASES.get(arm, arm) == "gstack" else arm
        if r["speedup"] is not None and base["flops_to_target"]:
            saved, paper = 1.0 - r["flops_to_target"] / base["flops_to_target"], row.get("paper_speedup")
            out.append(f"{who} reached scratch's final val loss {target:.4f} with {abs(saved):.1%} "
                       f"{'fewer' if saved >= 0 else 'more'} FLOPs than scratch ({r['flops_to_target']:.3g} vs "
                       f"{base['flops_to_target']:.3g}; speedup sp = {r['speedup']:+.1%} in exact FLOPs"
                       + (f", {paper:+.1%} in the paper's tokens" if paper is not None else "") + ").")
        else:
            out.append(f"{who} did not reach scratch's final val loss {target:.4f} within its budget (its final val "
                       f"loss {row['val_loss_mean']:.4f} after {row['flops']:.3g} FLOPs; scratch used "
                       f"{rows['scratch']['flops']:.3g}), so there is no speedup at that loss.")
    return out


def timing_note(s):
    """d against the paper's Eq. 2 guideline (grow.growth_timing) for this target size and budget."""
    import torch
    from model import GPT, GPTConfig
    meta = common.dataset_meta(s["dataset"])  # the vocabulary as train.py sizes it: the tokenizer's, padded to 64
    vocab = s["vocab_size"] or (64 * math.ceil(meta["vocab_size"] / 64) if meta else 50304)
    with torch.device("meta"):
        N = GPT(GPTConfig(**dict(model_args(s), vocab_size=vocab, n_layer=s["n_layer"] * s["grow_factor"]))
                ).num_params(non_embedding=False)
    budget, d = common.final_iter(s) * common.tokens_per_iter(s), s["grow_at_tokens"]
    eq2 = grow.growth_timing(N, grow.training_flops(N, budget))
    return (f"Growth timing: d = {d:,} tokens = {d / budget:.0%} of the {budget:,}-token budget, g = "
            f"{s['grow_factor']}. The paper's Eq. 2 guideline (grow.growth_timing) for this target (N = {N / 1e6:.2f}M "
            f"params, C = 6ND = {grow.training_flops(N, budget):.3g} FLOPs) gives d = {eq2:.3g} tokens, "
            f"{eq2 / budget:,.0f}x the whole budget: it does not extrapolate to this size (the config says how d "
            f"was chosen).")


def run_seed(args, s, k, seed):
    """Train (or reuse) one seed's arms (an alias is not run beside its arm); returns that seed's folder."""
    out, base = common.seed_run(args, k, seed)
    for arm in [a for a in ARMS if a in args.arm_list and ALIASES.get(a) not in args.arm_list]:
        common.run_arm(arm if k == 0 else f"{arm} seed {seed}", os.path.join(out, ALIASES.get(arm, arm)),
                       base + arm_args(arm, s), args.launcher, args.env, args.dry_run)
    return out


def analyse(out, arm_list, folders=None):
    """One seed's rows, comparison, claims and main table; folders: {arm: folder} where an arm's run is elsewhere."""
    import eval as ev
    rows = {arm: common.summary(os.path.join(out, (folders or {}).get(arm, ALIASES.get(arm, arm)))) for arm in arm_list}
    dirs = list(dict.fromkeys(([rows["scratch"]["run_dir"]] if "scratch" in rows else [])
                              + [r["run_dir"] for r in rows.values()]))
    comparison = ev.compare_runs(dirs, log=lambda *a: None) if "scratch" in rows else None
    if comparison:
        speedups(rows, comparison)
    table = []
    for arm, row in rows.items():
        row["dim"], row["op"] = dim_op(arm)
        grow_at = ", ".join(f"{e['tokens']:,}" for e in row["grow_events"]) or "-"
        table.append([arm, row["dim"], row["op"], *shape(row), grow_at,
                      common.fmt(row["val_loss_mean"]), common.fmt(row["val_bpb_mean"], ".3f"),
                      common.fmt(row["tokens"], ",.0f"), f"{row['flops']:.3g}",
                      common.fmt(row.get("flops_to_target"), ".3g"), common.fmt(row.get("speedup"), "+.1%"),
                      common.fmt(row.get("paper_tokens_to_target"), ".3g"),
                      common.fmt(row.get("paper_speedup"), "+.1%"), common.fmt(row.get("gain_at_equal_flops"), "+.4f")])
    return rows, comparison, claims(rows, comparison), table


HEADERS = ["arm", "dim", "op", "layers", "width", "grew at tokens", "final val loss", "val bpb", "tokens", "FLOPs",
           "FLOPs to target", "speedup, exact FLOPs", "paper tokens to target",
           "speedup, paper tokens (small token = 1/g)", "loss gain at equal FLOPs"]
SPEEDUP_NOTE = ("Speedup at equal loss, sp = cost_scratch / cost_arm - 1 to reach scratch's final val loss, "
                "interpolated between evaluations ('-' = never reached), in two conventions: **exact FLOPs** "
                "(train.py's count, GPT.flops_per_token: 6N + attention, LM head included, the small model's "
                "phase at its own cost; eval.compare_runs) and **paper tokens** (the paper's convention, "
                "grow.paper_tokens: a token trained on the small model counts 1/g of a large-model token, g = ratio "
                "of non-embedding parameters; scratch's tokens count 1). 'val bpb' = bits per byte of text, the mean "
                "over domains of eval.bits_per_byte. 'loss gain at equal FLOPs' = scratch's val loss at the arm's "
                "final FLOPs (interpolated) minus the arm's final val loss: > 0 = the arm is ahead at equal compute, "
                "a comparison that exists even when the arm never reaches scratch's final loss.")


def aggregate(per_seed, arms):
    """Mean [min, max] over seeds of each arm's final loss, bpb and speedups (within each seed): md, data, lines."""
    table, data = [], {}
    for arm in arms:
        rows = [rs[arm] for rs in per_seed]
        vals = {key: [r.get(key) for r in rows] for key in ("val_loss_mean", "val_bpb_mean", "speedup",
                                                             "paper_speedup", "gain_at_equal_flops", "flops",
                                                             "tokens")}
        data[arm] = dict({key: common.spread(v) for key, v in vals.items()}, values=vals)
        table.append([arm, *shape(rows[0]), common.fmt_spread(vals["val_loss_mean"]),
                      common.fmt_spread(vals["val_bpb_mean"], ".3f"), f"{rows[0]['flops']:.3g}",
                      common.fmt_spread(vals["speedup"], percent=True),
                      common.fmt_spread(vals["paper_speedup"], percent=True),
                      f"{sum(v is not None for v in vals['speedup'])} of {len(rows)}",
                      common.fmt_spread(vals["gain_at_equal_flops"], "+.4f")])
    md = common.md_table(["arm", "layers", "width", "final val loss", "val bpb", "FLOPs", "speedup, exact FLOPs",
                          "speedup, paper tokens (small token = 1/g)", "seeds reaching scratch's loss",
                          "loss gain at equal FLOPs"], table)
    lines = []
    if "gstack" in data and "scratch" in data:
        v = data["gstack"]["values"]
        lines.append(f"Gstack reached scratch's final val loss in {sum(x is not None for x in v['speedup'])} of "
                     f"{len(v['speedup'])} seeds; speedup in exact FLOPs "
                     f"{common.fmt_spread(v['speedup'], percent=True)}, in paper tokens "
                     f"{common.fmt_spread(v['paper_speedup'], percent=True)} (mean [min, max] over seeds); loss gain "
                     f"at equal FLOPs (scratch's val loss at Gstack's final FLOPs minus Gstack's final val loss) "
                     f"{common.fmt_spread(v['gain_at_equal_flops'], '+.4f')} nats.")
    return md, data, lines


def budget_results(args, seed_dirs):
    """--ablation budget: Gstack against the scratch run of the same budget, at 1x, 2x and 4x."""
    table, data, s = [], {}, args.settings
    for k in (1, 2, 4):
        sfx = f"_{k}x" if k > 1 else ""
        per_seed = [analyse(d, ["scratch", "gstack"], {"scratch": "scratch" + sfx, "gstack": "gstack" + sfx})[0]
                    for d in seed_dirs]
        _, agg, _ = aggregate(per_seed, ["scratch", "gstack"])
        data[f"{k}x"] = {"per_seed": per_seed, "aggregate": agg}
        v, w = agg["gstack"]["values"], agg["scratch"]["values"]
        table.append([f"{k}x", f"{k * common.final_iter(s) * common.tokens_per_iter(s):,}",
                      common.fmt_spread(w["val_loss_mean"]), common.fmt_spread(v["val_loss_mean"]),
                      common.fmt_spread(v["speedup"], percent=True),
                      common.fmt_spread(v["paper_speedup"], percent=True),
                      f"{sum(x is not None for x in v['speedup'])} of {len(seed_dirs)}",
                      common.fmt_spread(v["gain_at_equal_flops"], "+.4f")])
    md = [common.md_table(["budget", "tokens", "scratch final val loss", "Gstack final val loss",
                           "speedup, exact FLOPs", "speedup, paper tokens", "seeds reaching scratch's loss",
                           "loss gain at equal FLOPs"], table),
          common.seeds_note(args.seed_list), SPEEDUP_NOTE + " Each budget's Gstack is compared with the scratch run "
          f"of the same budget and seed; d = {s['grow_at_tokens']:,} tokens at every budget."]
    return md, data, [f"budget {r[0]}: Gstack speedup {r[4]} (exact FLOPs), loss gain at equal FLOPs {r[7]}"
                      for r in table]


def main(argv=None):
    args = common.parse(argv, "gstack", ARMS, __doc__, options=lambda p: p.add_argument(
        "--ablation", choices=list(ABLATIONS), help="one of the paper's questions: its arms, its results in "
        "--out/NAME/ (" + "; ".join(f"{k}: {q}" for k, (q, _) in ABLATIONS.items()) + ")"))
    if args.ablation and args.arms != "all":
        raise SystemExit("experiments/gstack.py: --ablation chooses the arms; leave out --arms")
    args.arm_list = ABLATIONS[args.ablation][1] if args.ablation else (
        args.arm_list if args.arms != "all" else list(OPERATOR_ARMS))
    s = args.settings
    check_settings(s)
    seed_dirs = common.each_seed(args, lambda k, seed: run_seed(args, s, k, seed))
    if args.dry_run:
        return None
    res = copy.copy(args)  # an ablation's results go to its own folder; its arms stay beside the others
    if args.ablation:
        res.out = os.path.join(args.out, args.ablation)
        walls = {seed: sum(common.wall_minutes(os.path.join(d, a)) for a in args.arm_list)
                 for seed, d in zip(args.seed_list, seed_dirs)}
        head = [f"Question: {ABLATIONS[args.ablation][0]}.", "Minutes of train.py per seed, these arms: " + ", ".join(
            f"{seed}: {m:.1f}" for seed, m in walls.items()) + ".", "Arms: " + "; ".join(
            f"{a}: `{shlex.join(arm_args(a, s))}`" for a in args.arm_list) + " (after the config's settings)."]
    if args.ablation == "budget":
        md, data, lines = budget_results(args, seed_dirs)
        series = {a: [os.path.join(d, a) for d in seed_dirs] for a in args.arm_list}
        return common.finish(res, "Gstack ablation: budget", head + md, data, lines, "loss_vs_flops.png", series,
                             [("training FLOPs (exact, small phase included)", "flops")], None,
                             f"{len(seed_dirs)} seed(s) (first solid, others dashed)")

    results = [analyse(d, args.arm_list) for d in seed_dirs]  # per seed: (rows, comparison, claims, table)
    rows, comparison, sentences, _ = results[0]
    many = len(seed_dirs) > 1
    notes = ["FLOPs and tokens of a grown arm include its small phase before growth (train.py counts the whole run; "
             "C = C_small + C_large as in the paper), and a G_learn arm's FLOPs include the steps that fitted its "
             "growth maps (not in the paper-token count).", timing_note(s)]
    md, agg, summary_lines = [], None, sentences
    if many:
        agg_md, agg, summary_lines = aggregate([r[0] for r in results], list(rows))
        md += [f"## Mean over {len(seed_dirs)} seeds\n\n" + agg_md, common.seeds_note(args.seed_list),
               SPEEDUP_NOTE + " Each seed's speedup is against the same seed's scratch run.",
               "\n".join(f"- {x}" for x in summary_lines)]
    for k, (rs, comp, sents, table) in enumerate(results):
        if many:
            md.append(f"## Seed {args.seed_list[k]} (arms in {os.path.relpath(seed_dirs[k], args.out)}/)")
        target_line = (f"Target: scratch's final val loss {comp['target']:.4f} (mean over domains)."
                       if comp else "No scratch arm: no target loss.")
        domains = list(next(iter(rs.values()))["val_loss"])
        per_domain = [[arm] + [common.fmt(r["val_loss"].get(d)) for d in domains] + [common.fmt(r["val_loss_mean"])]
                      for arm, r in rs.items()]
        md += [common.md_table(HEADERS, table), target_line + ("" if many else " " + SPEEDUP_NOTE),
               "\n".join(f"- {x}" for x in sents),
               "Per-domain final val loss:\n\n" + common.md_table(["arm"] + domains + ["mean"], per_domain)]

    # loss against exact FLOPs and against paper tokens, every seed, one colour per distinct run
    series = {}
    for arm, row in rows.items():
        if row["run_dir"] not in [r["run_dir"] for a, r in rows.items() if a in series]:
            series[arm] = [r[0][arm]["run_dir"] for r in results]
    panels = [("training FLOPs (exact, small phase included)", "flops"),
              ("paper tokens (small-model token = 1/g)",
               lambda evals, events: [x for x, _ in paper_curve(evals, events)])]
    md.append("\n".join(f"- {x}" for x in notes))
    data = {"arms": rows, "comparison": comparison, "claims": sentences, "notes": notes,
            "per_seed": {str(seed): {"arms": r[0], "comparison": r[1], "claims": r[2]}
                         for seed, r in zip(args.seed_list, results)}, "aggregate": agg}
    title = f"Gstack ablation: {args.ablation}" if args.ablation else "Gstack: growth operators vs scratch"
    return common.finish(res, title, (head if args.ablation else []) + md, data, summary_lines, "loss_vs_flops.png",
                         series, panels, next((r[1]["target"] for r in results if r[1]), None),
                         f"{len(seed_dirs)} seed(s) (first solid, others dashed); dotted line: scratch's final val "
                         f"loss, seed {args.seed_list[0]}")


if __name__ == "__main__":
    common.exit_on_sigterm()
    main()
