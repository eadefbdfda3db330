"""
BiMix experiment (Ge et al. 2024, "Data Mixing Made Efficient"; docs/papers.md sec. 3): which domain mixture gives
the lowest mean val loss at a fixed budget: natural (by size), uniform, the training-free conditional-entropy (CE)
mixture, or the optimum of the BiMix law fitted on those runs?

    python experiments/bimix.py --scale tiny --dataset data/<name>         # seconds on a CPU (pipeline check)
    python experiments/bimix.py --scale cpu --seeds 2                      # the headline, 13 min a seed
    python experiments/bimix.py --scale cpu --tilt 0.6                     # + a tilted proxy per domain

config/bimix_<scale>.py is the proxy model and its budget (s = its last iteration). The fitted arm fits the law
L_i(r_i, s) on the proxies' evaluations at s >= --fit_from x the budget (warmup follows no power law) and trains on
its optimum at the budget. --tilt R adds a proxy per domain giving it R and the others equal shares (tilt_<d>), so
the fit sees each domain's share vary and can test that L_i depends on r_i alone. The law fitted without the last
evaluation also predicts it (fit.json "heldout"). Outputs in --out: one folder per arm, fit.json, results.json,
results.md, loss_curves.png. Each seed fits its own law; finished arms are reused.
"""

import json
import math
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import common  # noqa: E402
import mix  # noqa: E402

PROXIES = ["natural", "uniform", "ce"]
ARMS = PROXIES + ["fitted"]
DEPENDS = {"fitted": PROXIES}


def tilted_mixtures(domains, tilt):
    """One proxy mixture per domain that gives that domain `tilt` and the others equal shares of the rest:
    {"tilt_<domain>": {domain: r}}. Why: the law's alpha_i is the slope of log L_i in log r_i, and natural, uniform
    and CE can lie close together (on pybytes r_c is 0.33-0.40 in all three), too close to tell alpha from noise."""
    rest = round((1 - tilt) / (len(domains) - 1), 6)  # a readable train.py argument; resolve_mixture renormalises
    return {f"tilt_{d}": {e: tilt if e == d else rest for e in domains} for d in domains}


def arm_mixtures(args):
    """The arms to run, in order, each with its --mixture value: the requested ones and the proxies the fitted
    arm needs; with --tilt, the tilted proxies (tilted_mixtures) after the other three."""
    arms = {a: a for a in common.with_dependencies(args.arm_list, ARMS, DEPENDS)}
    if not args.tilt:
        return arms
    meta = common.dataset_meta(args.settings["dataset"])
    if meta is None:
        raise SystemExit(f"experiments/bimix.py: --tilt needs the dataset's domains, and dataset "
                         f"{args.settings['dataset']!r} was not found: build it first (data/prepare.py)")
    if len(meta["domains"]) < 2:
        raise SystemExit(f"experiments/bimix.py: --tilt needs at least two domains; the dataset has "
                         f"{list(meta['domains'])}")
    if args.tilt <= 1 / len(meta["domains"]):
        print(f"experiments/bimix.py: note: --tilt={args.tilt:g} is at most uniform's 1/{len(meta['domains'])}: each "
              f"tilted proxy gives its domain less than the others, not more")
    tilted = {a: json.dumps(m) for a, m in tilted_mixtures(list(meta["domains"]), args.tilt).items()}
    return {**{a: m for a, m in arms.items() if a != "fitted"}, **tilted,
            **({"fitted": "fitted"} if "fitted" in arms else {})}


FIT_FROM = 0.25  # default --fit_from: the law is fitted on evaluations at s >= this fraction of the budget
FIT_ERRORS = (ValueError, ArithmeticError, OSError, np.linalg.LinAlgError)  # FloatingPointError, OverflowError too


def fit_law(points):
    """mix.fit_bimix with its default objective; when that overflows (a degenerate start), once more with
    objective='log' (squared relative errors) and a warning that says so. Returns the params."""
    try:
        return mix.fit_bimix(points)
    except ArithmeticError as e:
        warnings.warn(f"mix.fit_bimix (default objective) failed: {type(e).__name__}: {e}; refitted with "
                      f"objective='log'")
        return mix.fit_bimix(points, objective="log")


def fit(run_dirs, steps, fit_from=FIT_FROM, hold_out=False):
    """Fit BiMix on the runs' evaluations at s >= fit_from * steps and take the optimal mixture at `steps`. With
    hold_out, the paper's extrapolation check: the fit sees only the evaluations before the last (s < steps) and
    predicts the last ones ("points": run, domain, r, s, measured, predicted, rel_error; "mre" and "max_rel_error"
    of those predictions). Returns a dict with "params", "mixture" ("mixture_error" when the law has no optimum
    in a held-out fit), "predicted" (the optimum's losses), "n_points", "warnings", or "error" (the reason)."""
    result = {"runs": run_dirs, "steps": steps, "fit_from": fit_from, "warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            obs = [(os.path.basename(d), *o) for d in run_dirs for o in mix.observations_from_runs([d])
                   if o[2] >= fit_from * steps]  # (run, domain, r, s, loss); observations_from_runs: iter > 0
            held = [o for o in obs if o[3] >= steps] if hold_out else []
            if hold_out and not held:
                raise ValueError(f"no evaluation at s={steps} to hold out")
            obs = [o[1:] for o in obs if not (hold_out and o[3] >= steps)]
            result["n_points"] = len(obs)
            params = result["params"] = fit_law(obs)
            if hold_out:
                result["points"] = [{"run": run, "domain": dom, "r": r, "s": s, "measured": loss,
                                     "predicted": mix.bimix_loss(params[dom], r, s),
                                     "rel_error": (mix.bimix_loss(params[dom], r, s) - loss) / loss}
                                    for run, dom, r, s, loss in held]
                errs = [abs(p["rel_error"]) for p in result["points"]]
                result["mre"], result["max_rel_error"] = sum(errs) / len(errs), max(errs)
            try:
                opt = mix.optimal_mixture(params, steps)
                # rounded for the train.py command line; resolve_mixture renormalises the rounding away
                result["mixture"] = {d: round(r, 6) for d, r in opt.items()}
                result["predicted"] = mix.predict_losses(params, opt, steps)
            except FIT_ERRORS as e:  # the law has no optimum (alpha <= 0): no fitted arm; said beside the errors
                result["mixture_error" if hold_out else "error"] = str(e)
        except (FIT_ERRORS + (KeyError,)) as e:
            result["error"] = str(e)
    result["warnings"] = [str(w.message) for w in caught]
    return result


def predicted_mean(params, mixture, steps):
    """The law's mean predicted loss for a mixture, over the fitted domains (None when undefined)."""
    if not params or not mixture:
        return None
    try:
        pred = mix.predict_losses(params, {d: r for d, r in mixture.items() if d in params}, steps)
    except ValueError:
        return None
    vals = list(pred.values())
    return sum(vals) / len(vals) if all(math.isfinite(v) for v in vals) else None


def versus(a_name, a, b_name, b):
    d = b - a
    if d == 0:
        return f"the {a_name} and {b_name} mixtures tied at {a:.4f} mean val loss."
    return (f"the {a_name} mixture {'beat' if d > 0 else 'lost to'} the {b_name} one by {abs(d):.4f} nats mean val "
            f"loss ({a:.4f} vs {b:.4f}).")


def claims(rows, fitres):
    loss, out = {a: r["val_loss_mean"] for a, r in rows.items()}, []
    names = {"ce": "CE", "uniform": "uniform", "natural": "natural", "fitted": "BiMix-fitted"}
    for a, b in (("ce", "natural"), ("uniform", "natural"), ("fitted", "natural")):
        if a in loss and b in loss:
            out.append(versus(names[a], loss[a], names[b], loss[b]))
    proxies = {a: loss[a] for a in loss if a != "fitted"}  # the tilted ones too
    if "fitted" in loss and proxies:
        best = min(proxies, key=proxies.get)
        out.append(f"fitted vs the best of the proxy mixtures ({names.get(best, best)}): " + versus(
            names["fitted"], loss["fitted"], names.get(best, best), proxies[best]))
    if fitres is not None and "error" in fitres:
        out.append(f"The BiMix fit failed: {fitres['error']} The fitted arm was not run.")
    elif fitres is not None and "fitted" in rows and fitres.get("predicted"):
        pred = sum(fitres["predicted"].values()) / len(fitres["predicted"])
        out.append(f"The law predicted a mean val loss of {pred:.4f} for the fitted mixture at s={fitres['steps']}; "
                   f"the run reached {loss['fitted']:.4f}.")
    return out


def heldout_markdown(h):
    if "error" in h:
        return f"## Extrapolation check (last evaluation held out)\n\nnot available: {h['error']}"
    rows = [[p["run"], p["domain"], f"{p['r']:.3f}", f"{p['s']:.0f}", f"{p['measured']:.4f}", f"{p['predicted']:.4f}",
             f"{p['rel_error']:+.3%}"] for p in h["points"]]
    return (f"## Extrapolation check (last evaluation held out)\n\nThe law fitted on the {h['n_points']} points with "
            f"{h['fit_from'] * h['steps']:g} <= s < {h['steps']} of the proxy runs, then asked for each run's loss at s = {h['steps']}: mean relative "
            f"error **{h['mre']:.3%}** (max {h['max_rel_error']:.3%}; the paper, extrapolating to its last step: "
            f"~0.16-0.19%). That fit's optimum at s = {h['steps']}: "
            + (f"`{h['mixture']}`" if "mixture" in h else f"none ({h.get('mixture_error')})") + ".\n\n"
            + common.md_table(["run", "domain", "r", "s", "measured", "predicted", "error"], rows))


def check_fitted_proxies(out, proxies):
    """Stop before any training when <out>/fitted was fitted on other proxies than these (a run with --tilt into
    the folder of one without, or the reverse): the fitted arm would be refused only after the proxies trained."""
    fit_file, record = os.path.join(out, "fit.json"), os.path.join(out, "fitted", "arm.json")
    if os.path.isfile(fit_file) and os.path.isfile(record):
        with open(fit_file) as f:
            then = [os.path.basename(r) for r in json.load(f).get("runs", [])]
        if then != proxies:
            raise SystemExit(f"experiments/bimix.py: {out}/fitted was fitted on the proxies {', '.join(then)}; this "
                             f"command fits on {', '.join(proxies)} (--tilt adds or removes tilt_<domain>). Pass "
                             f"another --out, or delete {out}/fitted and fit.json to fit again there")


def run_seed(args, s, k, seed):
    """Train (or reuse) one seed's proxies, fit the law (all evaluations, and the held-out check), run the fitted
    mixture. Returns (that seed's folder, fit result or None, held-out result or None)."""
    out, base = common.seed_run(args, k, seed)
    steps, fitres, held = common.final_iter(s), None, None
    arms = arm_mixtures(args)
    if "fitted" in arms:
        check_fitted_proxies(out, [a for a in arms if a != "fitted"])
    for arm, mixture in arms.items():
        name = arm if k == 0 else f"{arm} seed {seed}"
        if arm == "fitted":
            proxies = [os.path.join(out, a) for a in arms if a != "fitted"]
            if args.dry_run:
                print(f"[{name}] would fit BiMix on {proxies} and train on its optimal mixture at s={steps}")
                continue
            fitres = fit(proxies, steps, args.fit_from)
            held = fit(proxies, steps, args.fit_from, hold_out=True)
            with open(os.path.join(out, "fit.json"), "w") as f:
                json.dump(dict(fitres, heldout=held), f, indent=2)
            if "error" in fitres:
                print(f"[{name}] BiMix fit failed: {fitres['error']}; the fitted arm is not run")
                continue
            print(f"[{name}] optimal mixture at s={steps}: {fitres['mixture']}")
            mixture = json.dumps(fitres["mixture"])
        common.run_arm(name, os.path.join(out, arm), base + [f"--mixture={mixture}"], args.launcher, args.env,
                       args.dry_run)
    return out, fitres, held


def analyse(args, out, fitres, steps):
    """One seed's rows (requested arms and the proxies a fit needed), main table and claims."""
    todo = arm_mixtures(args)
    rows = {a: common.summary(os.path.join(out, a)) for a in todo
            if not (a == "fitted" and fitres is not None and "error" in fitres)}
    domains = list(next(iter(rows.values()))["val_loss"]) if rows else []
    params = (fitres or {}).get("params")
    table = []
    for a, r in rows.items():
        r["predicted_mean"] = predicted_mean(params, r["mixture"], steps)
        table.append([a] + [common.fmt(r["mixture"].get(d), ".3f") for d in domains]
                     + [common.fmt(r["val_loss"].get(d)) for d in domains]
                     + [common.fmt(r["val_loss_mean"]), common.fmt(r["val_bpb_mean"], ".3f"),
                        common.fmt(r["predicted_mean"]), f"{r['tokens']:,}"])
    if fitres is not None and "error" in fitres:
        table.append(["fitted"] + ["-"] * (2 * len(domains) + 2) + [f"not run: fit failed ({fitres['error']})", "-"])
    md = common.md_table(["arm"] + [f"r {d}" for d in domains] + [f"val {d}" for d in domains]
                         + ["val loss (mean)", "val bpb", "BiMix predicted mean", "tokens"], table) if table else None
    return rows, md, claims(rows, fitres)


def same_share(rows, tol=0.01):
    """The law's premise, checked where the arms allow it: L_i depends on domain i's share r_i alone (docs/papers.md
    sec. 3), so arms that give domain i the same share (within tol) should reach the same loss on it. Returns
    [{"domain", "share", "losses": {arm: val loss on the domain}, "spread": max - min}] for each such group of two
    or more arms (with --tilt and three or more domains, e.g. every tilt_<other domain> gives d the same share)."""
    out = []
    domains = list(next(iter(rows.values()))["val_loss"]) if rows else []
    for d in domains:
        points = sorted((r["mixture"].get(d, 0.0), a, r["val_loss"][d]) for a, r in rows.items())
        groups = []
        for share, arm, loss in points:  # consecutive shares within tol of the group's first
            if groups and share - groups[-1][0][0] <= tol:
                groups[-1].append((share, arm, loss))
            else:
                groups.append([(share, arm, loss)])
        for g in groups:
            if len(g) > 1:
                losses = {arm: loss for _, arm, loss in g}
                out.append({"domain": d, "share": sum(x[0] for x in g) / len(g), "losses": losses,
                            "spread": max(losses.values()) - min(losses.values())})
    return out


def same_share_markdown(groups, tol=0.01):
    rows = [[g["domain"], f"{g['share']:.3f}", ", ".join(f"{a} {v:.4f}" for a, v in g["losses"].items()),
             f"{g['spread']:.4f}"] for g in groups]
    return ("## The law's premise: the same share, the same loss?\n\nL_i(r_i, s) lets a domain's loss depend on its "
            f"own share only. Arms of this seed that gave a domain the same share (within {tol:g}), and their val loss "
            "on it. A spread that is larger than the same arms' differences between seeds (the table over seeds, "
            "with --seeds 2 or more), and the same way round in every seed, means the other domains' shares matter "
            "too (transfer between domains), which the law cannot express.\n\n"
            + common.md_table(["domain", "share", "arms: val loss on the domain", "spread"], rows))


def fit_markdown(fitres, steps):
    params = fitres["params"]
    fit_rows = [[d, p["n"], f"{p['A']:.4g}", f"{p['B']:.4g}", f"{p['C']:.3g}", f"{p['alpha']:.4f}",
                 f"{p['beta']:.4f}", common.fmt(p.get("mre"), ".3%"), common.fmt(p.get("r2_log"), ".4f")]
                for d, p in params.items()]
    runs = ", ".join(os.path.basename(r) for r in fitres["runs"])
    return (f"## BiMix fit ({fitres['n_points']} points from {runs}: their evaluations at s >= "
            f"{fitres['fit_from'] * steps:g} = {fitres['fit_from']:g} x the budget)\n\n"
            "L_i(r, s) = A / r^alpha * (B / s^beta + C), gauge C = 1 (B = 1 where C is negligible), fitted with mix.fit_bimix's default "
            "objective; MRE = mean relative error over the fitted points, R2 on log L (the paper: MRE "
            "~0.16-0.19%, R2 0.974-0.994).\n\n"
            + common.md_table(["domain", "points", "A", "B", "C", "alpha", "beta", "MRE", "R2 (log)"], fit_rows)
            + (f"\n\noptimal mixture at s={steps} (the fitted arm's): `{fitres['mixture']}`" if "mixture" in fitres
               else f"\n\nno optimal mixture: {fitres.get('error')}"))


def aggregate(results, domains):
    """Mean [min, max] over seeds per arm: mixture, per-domain and mean val loss, bpb; held-out errors per seed."""
    # every arm some seed ran (a failed fit runs no fitted arm there), in the arms' order
    rows0 = list(dict.fromkeys(a for res in results for a in res[0]))
    table, data = [], {}
    for a in rows0:
        per = [res[0][a] for res in results if a in res[0]]
        vals = {"val_loss_mean": [r["val_loss_mean"] for r in per], "val_bpb_mean": [r["val_bpb_mean"] for r in per]}
        vals.update({f"val_{d}": [r["val_loss"].get(d) for r in per] for d in domains})
        vals.update({f"r_{d}": [r["mixture"].get(d) for r in per] for d in domains})
        data[a] = dict({k: common.spread(v) for k, v in vals.items()}, values=vals)
        table.append([a, str(len(per))] + [common.fmt_spread(vals[f"r_{d}"], ".3f") for d in domains]
                     + [common.fmt_spread(vals[f"val_{d}"]) for d in domains]
                     + [common.fmt_spread(vals["val_loss_mean"]), common.fmt_spread(vals["val_bpb_mean"], ".3f")])
    md = common.md_table(["arm", "seeds"] + [f"r {d}" for d in domains] + [f"val {d}" for d in domains]
                         + ["val loss (mean)", "val bpb"], table)
    lines = []
    loss = {a: [res[0][a]["val_loss_mean"] if a in res[0] else None for res in results] for a in rows0}
    for a, b in (("ce", "natural"), ("uniform", "natural"), ("fitted", "natural"), ("fitted", "ce"),
                 ("fitted", "uniform")):
        diffs = [y - x for x, y in zip(loss.get(a, []), loss.get(b, [])) if x is not None and y is not None]
        if diffs:
            wins = sum(d > 0 for d in diffs)
            data[f"{a}_vs_{b}"] = {"margin": diffs, "wins": wins}
            lines.append(f"{a} beat {b} in {wins} of {len(diffs)} seeds (mean val loss {b} - {a}: "
                         f"{common.fmt_spread(diffs, '+.4f')} nats).")
    failed = [res[1]["error"] for res in results if res[1] is not None and "error" in res[1]]
    if failed:
        lines.append(f"the BiMix fit found no optimal mixture in {len(failed)} of {len(results)} seeds (no fitted arm "
                     f"there): {'; '.join(dict.fromkeys(failed))}")
    helds = [res[2] for res in results if res[2] is not None]
    if helds:
        mres = [h.get("mre") for h in helds]
        data["heldout_mre"] = mres
        lines.append(f"extrapolation to the held-out last evaluation: mean relative error "
                     f"{common.fmt_spread(mres, '.3%')} over seeds (the paper: ~0.16-0.19%).")
    return md, data, lines


def options(p):
    """bimix.py's own options, beside experiments/common.py's."""
    p.add_argument("--fit_from", type=float, default=FIT_FROM,
                   help=f"fit the law on the proxies' evaluations at s >= this fraction of the budget (default "
                        f"{FIT_FROM}: the warmup and the first drop of the loss are no power law in s); 0 = every "
                        f"evaluation after iter 0")
    p.add_argument("--tilt", type=float, default=0.0,
                   help="also train one tilted proxy per domain, which gives that domain this share and the others "
                        "equal shares of the rest (arms tilt_<domain>), and fit the law on them too (default 0: off)")


def main(argv=None):
    args = common.parse(argv, "bimix", ARMS, __doc__, options=options)
    if not 0 <= args.fit_from < 1:
        raise SystemExit(f"experiments/bimix.py: --fit_from={args.fit_from}: must be in [0, 1)")
    if not 0 <= args.tilt < 1:
        raise SystemExit(f"experiments/bimix.py: --tilt={args.tilt}: must be in [0, 1), the tilted domain's share "
                         f"(0: no tilted proxies)")
    s = args.settings
    steps = common.final_iter(s)
    ran = common.each_seed(args, lambda k, seed: run_seed(args, s, k, seed))
    if args.dry_run:
        return None

    results = [analyse(args, out, fitres, steps) + (fitres, held) for out, fitres, held in ran]
    rows, _, sentences, fitres, held = results[0]
    domains = list(next(iter(rows.values()))["val_loss"]) if rows else []
    many = len(ran) > 1
    sections, agg, summary_lines = [], None, sentences
    note = (f"All arms: {steps} steps, equal tokens. 'BiMix predicted mean' = the fitted law's mean per-domain loss "
            f"for the arm's mixture at s={steps} ('-' without a fit); 'val bpb' = bits per byte of text, the mean over "
            f"domains of eval.bits_per_byte.")
    if many:
        agg_md, agg, summary_lines = aggregate([(r[0], r[3], r[4]) for r in results], domains)
        sections += [f"## Mean over {len(ran)} seeds\n\n" + agg_md, common.seeds_note(args.seed_list)
                     + " The fitted arm's mixture is each seed's own fit.", note,
                     "\n".join(f"- {x}" for x in summary_lines)]
    premise = [same_share(r[0]) for r in results]  # per seed: the groups of arms that gave a domain one share
    for k, (rs, table_md, sents, fr, hd) in enumerate(results):
        if many:
            sections.append(f"## Seed {args.seed_list[k]} (arms in {os.path.relpath(ran[k][0], args.out)}/)")
        sections += [table_md, note if table_md and not many else None, "\n".join(f"- {x}" for x in sents),
                     fit_markdown(fr, steps) if fr is not None and fr.get("params") else None,
                     heldout_markdown(hd) if hd is not None else None,
                     same_share_markdown(premise[k]) if premise[k] else None]  # write_results leaves out empty ones
        warns = dict.fromkeys(((fr or {}).get("warnings") or []) + ((hd or {}).get("warnings") or []))
        sections.append("Fit warnings:\n\n" + "\n".join(f"- {w}" for w in warns) if warns else None)
    series = {a: [r[0][a]["run_dir"] for r in results if a in r[0]] for a in rows}
    data = {"arms": rows, "fit": fitres, "heldout": held, "steps": steps, "claims": sentences,
            "per_seed": {str(seed): {"arms": r[0], "claims": r[2], "fit": r[3], "heldout": r[4], "same_share": p}
                         for seed, r, p in zip(args.seed_list, results, premise)}, "aggregate": agg}
    return common.finish(args, "BiMix: data mixtures at equal tokens", sections, data, summary_lines,
                         "loss_curves.png", series, [("tokens", "tokens")],
                         plot_title=f"{len(ran)} seed(s) (first solid, others dashed)")

if __name__ == "__main__":
    common.exit_on_sigterm()
    main()
