"""
Gstack experiment (Du et al. 2024, "Stacking Your Transformers"; docs/papers.md sec. 1): does a model grown
from a trained small one reach the loss of a model trained from scratch with fewer FLOPs, and which growth operator
works? Every arm is one train.py run (in-run growth: the small model trains d tokens, grows, and trains on to the
same token budget B; its tokens and FLOPs include the small phase).

    python experiments/gstack.py --scale tiny --dataset data/<name>        # seconds on a CPU
    python experiments/gstack.py --scale mini                              # one GPU, pycorpus
    python experiments/gstack.py --scale mini --arms scratch,gstack \
        --launcher "torchrun --standalone --nproc_per_node=8"

The config (config/gstack_<scale>.py) describes the Gstack arm: the small model (n_layer = L_big / g), d =
grow_at_tokens, g = grow_factor, the budget. Arms:

  scratch        L_big = n_layer * g layers from scratch for the whole budget (the baseline)
  gstack         the config itself: G_direct depthwise (stack the small model g times), grown after d tokens
  depth_direct   = gstack (the same run; the operator table's name for it)
  depth_zero     depthwise G_zero: new layers with zeroed output projections
  depth_random   depthwise G_random: new random layers blended in over grow_ramp_steps
  depth_learn    depthwise G_learn (LiGO): learned combinations of the old layers
  width_<op>     widthwise: L_big layers at half width (n_embd / 2, n_head / 2: head_dim kept) grown to n_embd
                 after d tokens with operator <op> (direct = Net2Net/bert2BERT splitting, zero, random, learn)

Outputs in --out: one folder per arm, results.json, results.md (final val loss, tokens, FLOPs, and the speedup at
equal loss against scratch, sp = FLOPs_scratch / FLOPs_arm - 1 at scratch's final val loss, via eval.compare_runs),
loss_curves.png when matplotlib is installed. Finished arms are reused, interrupted ones resumed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import common  # noqa: E402

OPS = ("direct", "zero", "random", "learn")
ARMS = ["scratch", "gstack"] + [f"depth_{op}" for op in OPS] + [f"width_{op}" for op in OPS]
ALIASES = {"depth_direct": "gstack"}  # one run, two names
DEPENDS = {}


def intermediate(s):
    """The MLP hidden size the model will have (GPTConfig's default when intermediate_size is None)."""
    from model import GPTConfig
    config = GPTConfig(arch=s["arch"], block_size=s["block_size"], vocab_size=64, n_layer=1, n_head=s["n_head"],
                       n_kv_head=s["n_kv_head"], n_embd=s["n_embd"], intermediate_size=s["intermediate_size"])
    return config.intermediate_size


def check_settings(s):
    """The settings the arms are derived from; SystemExit with the reason when they do not fit."""
    problems = []
    if s["grow_at_tokens"] <= 0:
        problems.append("grow_at_tokens must be > 0 (the config describes the in-run Gstack arm)")
    if s["grow_dim"] != "depth" or s["grow_layer_map"] is not None:
        problems.append("the config must grow depthwise by grow_factor (grow_dim='depth', no grow_layer_map); the "
                        "script derives the widthwise arms itself")
    if s["grow_at_tokens"] >= common.final_iter(s) * common.tokens_per_iter(s):
        problems.append(f"grow_at_tokens={s['grow_at_tokens']} is not inside the budget "
                        f"({common.final_iter(s) * common.tokens_per_iter(s)} tokens)")
    for k in ("n_embd", "n_head"):
        if s[k] % 2:
            problems.append(f"{k}={s[k]} must be even (the widthwise small model has half of it)")
    if s["n_kv_head"] is not None and s["n_kv_head"] % 2:
        problems.append(f"n_kv_head={s['n_kv_head']} must be even")
    if intermediate(s) % 2:
        problems.append(f"intermediate_size={intermediate(s)} must be even")
    if problems:
        raise SystemExit("experiments/gstack.py: " + "; ".join(problems))


def arm_args(arm, s):
    """train.py --key=value settings of one arm, given the resolved settings s (config + user overrides)."""
    arm = ALIASES.get(arm, arm)
    small, g, d = s["n_layer"], s["grow_factor"], s["grow_at_tokens"]
    if arm == "scratch":
        return [f"--n_layer={small * g}", "--grow_at_tokens=0"]
    dim, op = ("depth", "direct") if arm == "gstack" else arm.split("_")
    if dim == "depth":
        return [f"--n_layer={small}", f"--grow_at_tokens={d}", "--grow_dim=depth", f"--grow_op={op}",
                f"--grow_factor={g}"]
    args = [f"--n_layer={small * g}", f"--n_embd={s['n_embd'] // 2}", f"--n_head={s['n_head'] // 2}",
            f"--intermediate_size={intermediate(s) // 2}", f"--grow_at_tokens={d}", "--grow_dim=width",
            f"--grow_op={op}", f"--grow_n_embd={s['n_embd']}"]
    if s["n_kv_head"] is not None:
        args.insert(3, f"--n_kv_head={s['n_kv_head'] // 2}")
    return args


def run_dir_of(out, arm):
    return os.path.join(out, ALIASES.get(arm, arm))


def describe(arm):
    arm = ALIASES.get(arm, arm)
    if arm == "scratch":
        return "-", "-"
    dim, op = ("depth", "direct") if arm == "gstack" else arm.split("_")
    return dim, op


def shape(row):
    """'small -> big' layers and width of an arm from its grow event (or its config when it did not grow)."""
    ev = row["grow_events"]
    if ev:
        b, a = ev[0]["before"], ev[0]["after"]
        return f"{b['n_layer']} -> {a['n_layer']}", f"{b['n_embd']} -> {a['n_embd']}"
    return str(row["n_layer"]), str(row["n_embd"])


def claims(rows, comparison):
    """One sentence per grown arm, from the numbers the runs logged."""
    out = []
    if "scratch" not in rows:
        return ["No scratch run among the arms: no speedup can be measured (add scratch to --arms)."]
    target = comparison["target"]
    base = comparison["runs"][os.path.basename(rows["scratch"]["run_dir"])]
    seen = {rows["scratch"]["run_dir"]}
    for arm, row in rows.items():
        if row["run_dir"] in seen:  # scratch itself, or an alias of an arm already described
            continue
        seen.add(row["run_dir"])
        r = comparison["runs"][os.path.basename(row["run_dir"])]
        who = "Gstack" if ALIASES.get(arm, arm) == "gstack" else arm
        if r["speedup"] is not None and base["flops_to_target"]:
            saved = 1.0 - r["flops_to_target"] / base["flops_to_target"]
            out.append(f"{who} reached scratch's final val loss {target:.4f} with {abs(saved):.1%} "
                       f"{'fewer' if saved >= 0 else 'more'} FLOPs than scratch ({r['flops_to_target']:.3g} vs "
                       f"{base['flops_to_target']:.3g}; speedup sp = {r['speedup']:+.1%}).")
        else:
            out.append(f"{who} did not reach scratch's final val loss {target:.4f} within its budget (its final val "
                       f"loss {row['val_loss_mean']:.4f} after {row['flops']:.3g} FLOPs; scratch used "
                       f"{rows['scratch']['flops']:.3g}), so there is no speedup at that loss.")
    return out


def main(argv=None):
    args = common.parse(argv, "gstack", ARMS, __doc__)
    s = args.settings
    check_settings(s)
    env = common.child_env(args.scale)
    todo = common.with_dependencies(args.arm_list, ARMS, DEPENDS)
    base = [args.config] + args.overrides
    started = set()
    for arm in todo:
        run_dir = run_dir_of(args.out, arm)
        if run_dir in started:
            continue  # an alias of an arm already run
        started.add(run_dir)
        common.run_arm(arm, run_dir, base + arm_args(arm, s), args.launcher, env, args.dry_run)
    if args.dry_run:
        return None

    import eval as ev
    rows = {arm: common.summary(run_dir_of(args.out, arm)) for arm in args.arm_list}
    dirs = list(dict.fromkeys(([rows["scratch"]["run_dir"]] if "scratch" in rows else [])
                              + [r["run_dir"] for r in rows.values()]))
    comparison = ev.compare_runs(dirs, log=lambda *a: None) if "scratch" in rows else None
    table = []
    for arm, row in rows.items():
        dim, op = describe(arm)
        layers, width = shape(row)
        c = comparison["runs"][os.path.basename(row["run_dir"])] if comparison else {}
        row.update({"dim": dim, "op": op, "flops_to_target": c.get("flops_to_target"),
                    "tokens_to_target": c.get("tokens_to_target"), "speedup": c.get("speedup"),
                    "token_speedup": c.get("token_speedup")})
        grow_at = row["grow_events"][0]["tokens"] if row["grow_events"] else None
        table.append([arm, dim, op, layers, width, fmt_int(grow_at), common.fmt(row["val_loss_mean"]),
                      fmt_int(row["tokens"]), f"{row['flops']:.3g}", common.fmt(row["flops_to_target"], ".3g"),
                      common.pct(row["speedup"]), common.pct(row["token_speedup"])])
    sentences = claims(rows, comparison)
    sentences.append("FLOPs and tokens of a grown arm include its small phase before growth (train.py counts the "
                     "whole run; C = C_small + C_large as in the paper), and a G_learn arm's FLOPs include the "
                     "steps that fitted its growth maps.")
    png, note = common.plot(args.out, {arm: row["run_dir"] for arm, row in rows.items()},
                            target=comparison["target"] if comparison else None)
    target_line = (f"Target: scratch's final val loss {comparison['target']:.4f} (mean over domains). Speedup "
                   f"sp = FLOPs_scratch / FLOPs_arm - 1 to reach it, interpolated between evaluations (eval.py "
                   f"compare_runs); '-' = never reached." if comparison else "No scratch arm: no target loss.")
    md = [common.md_table(["arm", "dim", "op", "layers", "width", "grew at tokens", "final val loss", "tokens",
                           "FLOPs", "FLOPs to target", "speedup (FLOPs)", "speedup (tokens)"], table),
          target_line, "\n".join(f"- {x}" for x in sentences),
          "Per-domain final val loss:\n\n" + per_domain_table(rows),
          (f"![loss curves]({os.path.basename(png)})" if png else note)]
    head = common.header(args, "Gstack: growth operators vs scratch")
    data = {"arms": rows, "comparison": comparison, "claims": sentences, "plot": png, "plot_note": note}
    paths = common.write_results(args.out, head, data, md)
    print("\n".join(sentences))
    print(f"wrote {paths[0]} and {paths[1]}" + (f" and {png}" if png else f" ({note})"))
    return data


def fmt_int(x):
    return "-" if x is None else f"{int(x):,}"


def per_domain_table(rows):
    domains = list(next(iter(rows.values()))["val_loss"])
    return common.md_table(["arm"] + domains + ["mean"],
                           [[arm] + [common.fmt(r["val_loss"].get(d)) for d in domains]
                            + [common.fmt(r["val_loss_mean"])]
                            for arm, r in rows.items()])


if __name__ == "__main__":
    main()
