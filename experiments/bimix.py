"""
BiMix experiment (Ge et al. 2024, "Data Mixing Made Efficient"; docs/papers.md sec. 3): which domain
mixture gives the lowest mean validation loss at a fixed budget: the natural one (by size), uniform, the
training-free conditional-entropy (CE) mixture, or the optimum of the BiMix law fitted on those three runs?

    python experiments/bimix.py --scale tiny --dataset data/<name>         # seconds on a CPU
    python experiments/bimix.py --scale mini                               # one GPU, pycorpus
    python experiments/bimix.py --scale mini --arms natural,ce

The config (config/bimix_<scale>.py) is the proxy model and its budget (s = its last iteration). Arms:

  natural   mixture proportional to each domain's train tokens
  uniform   1/n per domain
  ce        r_i = softmax(H_i), H = conditional entropy H(X_t+1 | X_t) of the domain's train tokens (mix.py)
  fitted    the BiMix law L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i), fitted on every evaluation
            (iter > 0) of the natural / uniform / ce runs (mix.observations_from_runs + fit_bimix), minimised over
            the mixture at s = the budget's step count (mix.optimal_mixture); runs those three first. When the fit
            fails (too few points, alpha <= 0, ...) the table says why and the arm is not run.

Outputs in --out: one folder per arm, fit.json, results.json, results.md (mixture, val loss per domain and mean,
the law's prediction per arm, fit quality), loss_curves.png when matplotlib is installed. Finished arms are reused.
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


def fit(run_dirs, steps):
    """Fit BiMix on the runs and take the optimal mixture at `steps`. Returns a dict with "params", "mixture",
    "predicted" (mean loss of the optimum), "n_points", "warnings", or "error" (the reason) when it cannot."""
    result = {"runs": run_dirs, "steps": steps, "warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            obs = mix.observations_from_runs(run_dirs)
            result["n_points"] = len(obs)
            params = mix.fit_bimix(obs)
            result["params"] = params
            opt = mix.optimal_mixture(params, steps)
            # rounded for the train.py command line; resolve_mixture renormalises the rounding away
            result["mixture"] = {d: round(r, 6) for d, r in opt.items()}
            result["predicted"] = mix.predict_losses(params, opt, steps)
        except (ValueError, OSError, FloatingPointError, np.linalg.LinAlgError) as e:
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
    if d > 0:
        return f"the {a_name} mixture beat the {b_name} one by {d:.4f} nats mean val loss ({a:.4f} vs {b:.4f})."
    if d < 0:
        return f"the {a_name} mixture lost to the {b_name} one by {-d:.4f} nats mean val loss ({a:.4f} vs {b:.4f})."
    return f"the {a_name} and {b_name} mixtures tied at {a:.4f} mean val loss."


def claims(rows, fitres):
    loss = {a: r["val_loss_mean"] for a, r in rows.items()}
    out = []
    names = {"ce": "CE", "uniform": "uniform", "natural": "natural", "fitted": "BiMix-fitted"}
    for a, b in (("ce", "natural"), ("uniform", "natural"), ("fitted", "natural")):
        if a in loss and b in loss:
            out.append(versus(names[a], loss[a], names[b], loss[b]))
    proxies = {a: loss[a] for a in PROXIES if a in loss}
    if "fitted" in loss and proxies:
        best = min(proxies, key=proxies.get)
        out.append(f"fitted vs the best of the proxy mixtures ({names[best]}): " + versus(
            names["fitted"], loss["fitted"], names[best], proxies[best]))
    if fitres is not None and "error" in fitres:
        out.append(f"The BiMix fit failed: {fitres['error']} The fitted arm was not run.")
    elif fitres is not None and "fitted" in rows and fitres.get("predicted"):
        pred = sum(fitres["predicted"].values()) / len(fitres["predicted"])
        out.append(f"The law predicted a mean val loss of {pred:.4f} for the fitted mixture at s={fitres['steps']}; "
                   f"the run reached {loss['fitted']:.4f}.")
    return out


def main(argv=None):
    args = common.parse(argv, "bimix", ARMS, __doc__)
    s = args.settings
    env = common.child_env(args.scale)
    steps = common.final_iter(s)
    base = [args.config] + args.overrides
    todo = common.with_dependencies(args.arm_list, ARMS, DEPENDS)
    fitres = None
    for arm in todo:
        run_dir = os.path.join(args.out, arm)
        if arm == "fitted":
            proxies = [os.path.join(args.out, a) for a in PROXIES]
            if args.dry_run:
                print(f"[fitted] would fit BiMix on {proxies} and train on its optimal mixture at s={steps}")
                continue
            fitres = fit(proxies, steps)
            with open(os.path.join(args.out, "fit.json"), "w") as f:
                json.dump(fitres, f, indent=2)
            if "error" in fitres:
                print(f"[fitted] BiMix fit failed: {fitres['error']}; the fitted arm is not run")
                continue
            print(f"[fitted] optimal mixture at s={steps}: {fitres['mixture']}")
            common.run_arm(arm, run_dir, base + [f"--mixture={json.dumps(fitres['mixture'])}"], args.launcher, env)
            continue
        common.run_arm(arm, run_dir, base + [f"--mixture={arm}"], args.launcher, env, args.dry_run)
    if args.dry_run:
        return None

    # the requested arms and the ones they needed (the proxies of a fit), in the experiment's order
    rows = {a: common.summary(os.path.join(args.out, a)) for a in todo
            if not (a == "fitted" and fitres is not None and "error" in fitres)}
    domains = list(next(iter(rows.values()))["val_loss"]) if rows else []
    params = (fitres or {}).get("params")
    table = []
    for a, r in rows.items():
        r["predicted_mean"] = predicted_mean(params, r["mixture"], steps)
        table.append([a] + [common.fmt(r["mixture"].get(d), ".3f") for d in domains]
                     + [common.fmt(r["val_loss"].get(d)) for d in domains]
                     + [common.fmt(r["val_loss_mean"]), common.fmt(r["predicted_mean"]), f"{r['tokens']:,}"])
    if fitres is not None and "error" in fitres:
        table.append(["fitted"] + ["-"] * (2 * len(domains) + 1) + [f"not run: fit failed ({fitres['error']})", "-"])
    sections = []
    if table:
        sections.append(common.md_table(["arm"] + [f"r {d}" for d in domains] + [f"val {d}" for d in domains]
                                        + ["val loss (mean)", "BiMix predicted mean", "tokens"], table))
        sections.append(f"All arms: {steps} steps, equal tokens. 'BiMix predicted mean' = the fitted law's mean "
                        f"per-domain loss for the arm's mixture at s={steps} ('-' without a fit).")
    sentences = claims(rows, fitres)
    if sentences:
        sections.append("\n".join(f"- {x}" for x in sentences))
    if params:
        fit_rows = [[d, p["n"], f"{p['A']:.4g}", f"{p['B']:.4g}", f"{p['C']:.3g}", f"{p['alpha']:.4f}",
                     f"{p['beta']:.4f}", f"{p['mre']:.3%}", f"{p['r2_log']:.4f}"] for d, p in params.items()]
        sections.append(f"## BiMix fit ({fitres['n_points']} points from {', '.join(PROXIES)})\n\n"
                        "L_i(r, s) = A / r^alpha * (B / s^beta + C), gauge C = 1; MRE = mean relative error, "
                        "R2 on log L (the paper: MRE ~0.16-0.19%, R2 0.974-0.994).\n\n"
                        + common.md_table(["domain", "points", "A", "B", "C", "alpha", "beta", "MRE", "R2 (log)"],
                                          fit_rows)
                        + f"\n\noptimal mixture at s={steps}: `{fitres['mixture']}`")
    if fitres is not None and fitres.get("warnings"):
        sections.append("Fit warnings:\n\n" + "\n".join(f"- {w}" for w in fitres["warnings"]))
    png, note = common.plot(args.out, {a: r["run_dir"] for a, r in rows.items()})
    sections.append(f"![loss curves]({os.path.basename(png)})" if png else note)
    head = common.header(args, "BiMix: data mixtures at equal tokens")
    data = {"arms": rows, "fit": fitres, "steps": steps, "claims": sentences, "plot": png, "plot_note": note}
    paths = common.write_results(args.out, head, data, sections)
    print("\n".join(sentences))
    print(f"wrote {paths[0]} and {paths[1]}" + (f" and {png}" if png else f" ({note})"))
    return data


if __name__ == "__main__":
    main()
