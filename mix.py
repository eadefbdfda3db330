"""
BiMix (Ge et al. 2024, "Data Mixing Made Efficient: A Bivariate Scaling Law for Language Model Pretraining",
arXiv 2405.14908; docs/papers.md sec. 3): two ways to pick the proportions r_i (sum r_i = 1) of a dataset's domains.

  1. training-free entropy mixtures: r_i = softmax_i(H_i), H_i an entropy of domain i's tokenized train split:
       SE  Shannon entropy of the unigram distribution,  JE  joint entropy of consecutive pairs,
       CE  conditional entropy H(X_t+1 | X_t) (the paper's best); its fourth, VNE, needs its embedding model
  2. the BiMix law, fitted on a few short proxy runs with different mixtures,
       L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i)        (s = training steps)
     and the mixture that minimises the mean predicted loss over domains at a step budget s.

    python mix.py <dataset>                                          # entropies per domain and their mixtures
    python mix.py --fit out/run1 out/run2 ... [--steps S] [--objective loss|log]   # fit BiMix, optimum at S

resolve_mixture(spec, dataset_dir) turns train.py's `mixture` setting into proportions. The fit minimises the
paper's least squares on the losses (objective="loss"; "log" minimises squared relative errors, another problem)
with a small Levenberg-Marquardt in numpy, so SciPy is not needed (tests check both reach the same minimum).
"""

import argparse
import json
import math
import os
import warnings

import numpy as np

from data.loader import load_meta
from runs import read_evals

ENTROPIES = ("SE", "JE", "CE")
MIXTURE_SPECS = ("natural", "uniform", "se", "je", "ce")
SUM_TOLERANCE = 1e-3     # explicit proportions may miss 1 by this much (rounding) before resolve_mixture warns
CACHE_VERSION = 2

# -------------------------------------------------------------------------------------------------------------
# Entropies of a token stream (training-free mixtures)


def _entropy(counts):
    """Shannon entropy in nats of the empirical distribution given by non-negative counts."""
    c = np.asarray(counts, dtype=np.float64)
    p = c[c > 0] / c.sum()
    return float(-(p * np.log(p)).sum()) + 0.0  # + 0.0: a single symbol gives 0.0, not -0.0


def _merge_counts(keys, counts, new_keys, new_counts):
    """Add two sparse count tables (sorted unique int64 keys, int64 counts) into one sorted unique table."""
    k, c = np.concatenate([keys, new_keys]), np.concatenate([counts, new_counts])
    if len(k) == 0:
        return k, c
    order = np.argsort(k, kind="stable")  # two sorted runs: numpy's stable sort (timsort) merges them in O(n)
    k, c = k[order], c[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])  # first index of each distinct key
    return k[starts], np.add.reduceat(c, starts)


def domain_entropies(tokens, vocab_size, chunk=1 << 24):
    """SE, JE and CE of one domain's token stream, in nats: {"tokens": n, "SE", "JE", "CE"}.
      SE = H(X) over the n unigrams; JE = H(X_t, X_t+1) over the n-1 consecutive pairs;
      CE = H(X_t+1 | X_t), computed pair by pair as -sum p(a,b) log(c(a,b) / c_first(a)), X_t being the first
           element of a pair, so that a deterministic successor gives exactly 0 and CE is never negative.
    tokens: 1-D array (an np.memmap of 100M+ tokens is fine): read `chunk` at a time, one token of overlap, so
    memory is O(chunk + distinct bigrams); bigrams in a sparse table keyed by prev*V + next (int64)."""
    n, V = len(tokens), int(vocab_size)
    if n < 2:
        raise ValueError(f"domain_entropies: need at least 2 tokens for pair statistics, got {n}")
    unigram = np.zeros(V, dtype=np.int64)                                   # c(x), (V,)
    keys, counts = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)  # c(a, b), (distinct bigrams,)
    for start in range(0, n, chunk):
        x = np.asarray(tokens[max(start - 1, 0): start + chunk], dtype=np.int64)  # (<= chunk+1,)
        own = x if start == 0 else x[1:]  # x[0] of a later chunk was counted as a unigram by the previous chunk
        if own.min() < 0 or own.max() >= V:  # streamed: a chunk's ids are known only once it is read
            raise ValueError(f"domain_entropies: token id {int(own.max()) if own.max() >= V else int(own.min())} "
                             f"outside [0, vocab_size={V})")
        unigram += np.bincount(own, minlength=V)
        if len(x) >= 2:
            k, c = np.unique(x[:-1] * V + x[1:], return_counts=True)
            keys, counts = _merge_counts(keys, counts, k, c.astype(np.int64))
    first = unigram.copy()
    first[int(tokens[n - 1])] -= 1                 # counts of X_t over the n-1 pairs: the last token starts none
    p = counts / (n - 1)                           # p(a, b), (distinct bigrams,)
    log_cond = np.log(counts) - np.log(first[keys // V])  # log p(b | a) = log c(a,b) - log c_first(a), <= 0
    ce = float(-(p * log_cond).sum()) + 0.0
    return {"tokens": int(n), "SE": _entropy(unigram), "JE": _entropy(counts), "CE": ce}


def entropy_mixture(entropies):
    """BiMix's entropy mixture: r_i = exp(H_i) / sum_j exp(H_j), a softmax over domains."""
    if not entropies:
        raise ValueError("entropy_mixture: no domains")
    if not all(math.isfinite(float(v)) for v in entropies.values()):
        raise ValueError(f"entropy_mixture: non-finite entropy in {entropies}")
    h = np.array([float(v) for v in entropies.values()])                       # (n_domains,)
    e = np.exp(h - h.max())  # shift by the max: same softmax, no overflow
    return {d: float(x) for d, x in zip(entropies, e / e.sum())}


def dataset_entropies(dataset_dir, cache=True):
    """{domain: {"tokens", "SE", "JE", "CE"}} over each domain's train split, cached in <dataset_dir>/entropy.json
    keyed by the train.bin size (a re-tokenized domain is recomputed). An empty domain has None entropies."""
    meta = load_meta(dataset_dir)
    V = int(meta["vocab_size"])
    cache_path = os.path.join(dataset_dir, "entropy.json")
    cached = {}
    if cache and os.path.isfile(cache_path):
        try:
            with open(cache_path) as f:
                blob = json.load(f)
            if blob.get("version") == CACHE_VERSION:
                cached = blob.get("domains", {})
        except (OSError, ValueError):
            pass  # unreadable cache: recompute
    out, dirty = {}, False
    for d in meta["domains"]:
        path = os.path.join(dataset_dir, d, "train.bin")
        size = os.path.getsize(path)
        if d in cached and cached[d].get("train_bin_bytes") == size:
            out[d] = {k: cached[d][k] for k in ("tokens",) + ENTROPIES}
            continue
        tokens = np.memmap(path, dtype=meta["dtype"], mode="r") if size else np.zeros(0)
        if len(tokens) < 2:
            ent = {"tokens": len(tokens), "SE": None, "JE": None, "CE": None}
        else:
            print(f"mix: entropies of {d} ({len(tokens):,} train tokens)...", flush=True)
            ent = domain_entropies(tokens, V)
        out[d], dirty, cached[d] = ent, True, dict(ent, train_bin_bytes=size)
    if cache and dirty:
        blob = {"version": CACHE_VERSION, "domains": {d: cached[d] for d in meta["domains"]}}
        try:
            with open(f"{cache_path}.tmp.{os.getpid()}", "w") as f:
                json.dump(blob, f, indent=1)
            os.replace(f"{cache_path}.tmp.{os.getpid()}", cache_path)  # atomic: never half a cache
        except OSError as e:
            warnings.warn(f"could not write {cache_path} ({e}); entropies will be recomputed next time")
    return out


def resolve_mixture(spec, dataset_dir):
    """train.py's `mixture` setting as {domain: proportion} over all the dataset's domains (meta order):
      None or "natural"           proportional to train tokens (what concatenating the domains would give)
      "uniform"                   1/n per domain
      "se" | "je" | "ce"          BiMix's entropy mixture softmax(H) over the train split (cached)
      {domain: r}                 explicit weights (a string holding such a dict too); missing domains get 0
    Explicit weights are normalised to sum to 1, with a warning when the sum misses 1 by more than SUM_TOLERANCE.
    Refused: unknown domains, negative or non-finite weights, all zero, weight on a domain with 0 train tokens."""
    meta = load_meta(dataset_dir)
    domains = list(meta["domains"])
    train_tokens = {d: int(meta["domains"][d].get("train_tokens", 0)) for d in domains}
    if isinstance(spec, str) and spec.strip().startswith("{"):  # a dict written as text, e.g. from --mixture=...
        import ast
        try:
            spec = ast.literal_eval(spec)
        except (ValueError, SyntaxError):
            raise ValueError(f"mixture={spec!r}: could not parse as a dict {{domain: proportion}}") from None
    _check_mixture_spec(spec, domains, train_tokens, dataset_dir)
    if isinstance(spec, dict):
        weights = {d: float(spec.get(d, 0.0)) for d in domains}
    elif spec is None or spec.strip().lower() == "natural":
        weights = {d: float(train_tokens[d]) for d in domains}
    elif spec.strip().lower() == "uniform":
        weights = {d: 1.0 for d in domains}
    else:  # an entropy mixture
        key = spec.strip().upper()
        ents = dataset_entropies(dataset_dir)
        missing = [d for d in domains if ents[d][key] is None]
        if missing:
            raise ValueError(f"mixture={spec.strip().lower()!r}: {key} undefined for {missing} (fewer than 2 "
                             f"train tokens)")
        weights = entropy_mixture({d: ents[d][key] for d in domains})
    total = sum(weights.values())
    return {d: w / total for d, w in weights.items()}


# -------------------------------------------------------------------------------------------------------------
# The BiMix law and its fit (docs/papers.md sec. 3 "The law")
#
# A, B, C are only defined up to (kA, B/k, C/k), so the fit uses the 4 identifiable numbers theta = (alpha, beta,
# a = log(A B), c = log(A C)):  log L = -alpha log r + logaddexp(a - beta log s, c), A B and A C positive by
# construction. Reported coefficients take the gauge C = 1, so A is the loss at r = 1, s -> inf.

COEFFICIENTS = ("A", "B", "C", "alpha", "beta")
FIT_OBJECTIVES = ("loss", "log")  # least squares on L (the paper's; the default) | on log L (relative errors)


def bimix_loss(params, r, s):
    """The BiMix law for one domain: A / r^alpha * (B / s^beta + C); r, s scalars or arrays."""
    r, s = np.asarray(r, dtype=np.float64), np.asarray(s, dtype=np.float64)
    loss = params["A"] / r ** params["alpha"] * (params["B"] / s ** params["beta"] + params["C"])
    return float(loss) if loss.ndim == 0 else loss


def _residuals(theta, log_r, log_s, L, objective):
    """The residuals (n,) the fit squares and sums, and their Jacobian (n, 4) in theta = (alpha, beta, a, c):
    "loss": L_model - L (the paper's); "log": log L_model - log L (every point weighs the same)."""
    alpha, beta, a, c = theta
    u = a - beta * log_s                        # log(A B s^-beta), (n,)
    z = np.logaddexp(u, c)                      # log(A (B s^-beta + C)), (n,)
    w = np.exp(u - z)                           # share of the reducible term B s^-beta, in (0, 1)
    log_f, jac = -alpha * log_r + z, np.stack([-log_r, -w * log_s, w, np.exp(c - z)], axis=1)
    if objective == "log":
        return log_f - np.log(L), jac
    with np.errstate(over="ignore", invalid="ignore"):  # a wild trial step may overflow: its cost is inf, rejected
        f = np.exp(log_f)                                           # L_model, (n,)
        return f - L, f[:, None] * jac  # d L_model / d theta = L_model * d log L_model / d theta


def _levenberg_marquardt(theta, residuals, max_iter=500):
    """Minimise sum residuals(theta)^2 by damped Gauss-Newton (Levenberg-Marquardt with Marquardt's diagonal
    scaling); residuals(theta) -> (res (n,), jac (n, 4)). Returns (theta, cost). A local method: the caller starts
    it from several points (_initial_thetas) and keeps the best."""
    theta = np.asarray(theta, dtype=np.float64)
    res, J = residuals(theta)
    cost, lam = float(res @ res), 1e-3
    for _ in range(max_iter):
        if cost < 1e-28:  # exact fit (noise-free data)
            break
        g, H = J.T @ res, J.T @ J                                              # (4,), (4, 4)
        D = np.diag(np.maximum(np.diag(H), 1e-12 * max(np.diag(H).max(), 1e-12)))
        accepted = False
        while lam < 1e16:  # raise the damping until a step lowers the cost
            try:
                step = np.linalg.solve(H + lam * D, -g)
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            res_new, J_new = residuals(theta + step)
            cost_new = float(res_new @ res_new)
            if np.isfinite(cost_new) and cost_new < cost:
                theta, J, res, cost = theta + step, J_new, res_new, cost_new
                lam = max(lam * 0.3, 1e-12)
                accepted = True
                break
            lam *= 10.0
        if not accepted or np.max(np.abs(step)) < 1e-12 * (1.0 + np.max(np.abs(theta))):
            break
    return theta, cost


def _initial_thetas(r, s, L, n_starts, residuals):
    """Starting points for the fit. alpha: within one step s, log L = -alpha log r + const(s), so alpha is minus
    the slope of log L on log r after removing per-step means. Then, on a grid of beta, L r^alpha = P s^-beta + Q
    is linear in (P, Q) = (A B, A C): solve it and keep the n_starts grid points of smallest cost."""
    log_r, log_s, log_L = np.log(r), np.log(s), np.log(L)
    _, group = np.unique(s, return_inverse=True)

    def demean(v):
        return v - (np.bincount(group, weights=v) / np.bincount(group))[group]
    x, y = demean(log_r), demean(log_L)
    if x @ x > 1e-12 * len(x):
        alpha = -(x @ y) / (x @ x)
    else:  # r and s confounded (one r per step): pooled regression log L ~ 1 + log r + log s
        X = np.stack([np.ones_like(log_r), log_r, log_s], axis=1)
        alpha = -np.linalg.lstsq(X, log_L, rcond=None)[0][1]
    z = L * r ** alpha                                       # A (B s^-beta + C), (n,)
    starts = []
    for beta in np.geomspace(1e-3, 3.0, 40):
        xs = s ** -beta
        P, Q = np.linalg.lstsq(np.stack([xs, np.ones_like(xs)], axis=1), z, rcond=None)[0]
        eps = 1e-6 * z.mean()
        if P <= 0:   # keep both terms positive (log-parametrised): refit the other one alone
            P = eps
            Q = max((z - P * xs).mean(), eps)
        elif Q <= 0:
            Q = eps
            P = max(xs @ (z - Q) / (xs @ xs), eps)
        theta = np.array([alpha, beta, np.log(P), np.log(Q)])
        res = residuals(theta)[0]
        starts.append((float(res @ res), theta))
    starts.sort(key=lambda t: t[0])
    return [t for _, t in starts[:n_starts]]


def fit_bimix(observations, n_starts=4, objective="loss"):
    """Fit L_i(r, s) = A_i / r^alpha_i * (B_i / s^beta_i + C_i) per domain by Levenberg-Marquardt from n_starts
    initialisations. observations: [(domain, r, s, loss)] (observations_from_runs); per domain >= 5 points,
    >= 2 distinct r and s, all > 0. objective: "loss" (the paper's least squares on L) or "log".
    Returns {domain: {"A", "B", "C", "alpha", "beta", "objective", "n", "mre", "r2_log"}}, gauge C = 1 (B = 1
    when C is negligible next to B / s^beta); mre = mean |L_fit - L| / L, r2_log = R^2 of log L (the paper's two
    fit-quality numbers)."""
    rows = {}
    for i, ob in enumerate(observations):
        if len(ob) != 4:
            raise ValueError(f"fit_bimix: observation {i} is {ob!r}, expected (domain, r, s, loss)")
        rows.setdefault(ob[0], []).append(tuple(float(v) for v in ob[1:]))
    grouped = {d: tuple(np.array(col) for col in zip(*v)) for d, v in rows.items()}  # {domain: (r, s, L)}, (n,) each
    _check_fit_args(grouped, objective)
    return {d: _fit_domain(r, s, L, n_starts, objective) for d, (r, s, L) in grouped.items()}


def _fit_domain(r, s, L, n_starts, objective):
    """The law's coefficients (gauge C = 1) and fit quality for one domain's points r, s, L (each (n,))."""
    log_r, log_s = np.log(r), np.log(s)

    def residuals(theta):
        return _residuals(theta, log_r, log_s, L, objective)
    fits = [_levenberg_marquardt(t, residuals) for t in _initial_thetas(r, s, L, n_starts, residuals)]
    alpha, beta, a, c = (float(x) for x in min(fits, key=lambda t: t[1])[0])  # A*B = e^a, A*C = e^c
    if a - c < 700:  # the gauge C = 1
        coef = {"A": math.exp(c), "B": math.exp(a - c), "C": 1.0, "alpha": alpha, "beta": beta}
    else:  # C ~ 0 next to B (a pure power law in s): B = e^(a-c) would overflow, so the gauge B = 1
        coef = {"A": math.exp(a), "B": 1.0, "C": math.exp(c - a), "alpha": alpha, "beta": beta}
    pred, log_L = bimix_loss(coef, r, s), np.log(L)                             # (n,), (n,)
    ss_tot, ss_res = float(((log_L - log_L.mean()) ** 2).sum()), float(((np.log(pred) - log_L) ** 2).sum())
    return dict(coef, objective=objective, n=int(len(L)), mre=float(np.mean(np.abs(pred - L) / L)),
                r2_log=1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"))


def optimal_mixture(params, s):
    """BiMix's optimal mixture at step budget s: minimise mean_i K_i r_i^-alpha_i subject to sum r_i = 1, where
    K_i = A_i (B_i s^-beta_i + C_i). Convex for alpha_i > 0, so the stationary point is the minimum:
    r_i(lambda) = (alpha_i K_i / lambda)^(1/(alpha_i+1)), lambda the root of sum_i r_i = 1, found by bisection on
    log lambda between max_i log(alpha_i K_i) (one r_i is 1) and max_i [log(alpha_i K_i) + (alpha_i+1) log n]
    (every r_i <= 1/n). Returns {domain: r}."""
    _check_optimum_args(params, s)
    domains = list(params)
    alpha = np.array([float(params[d]["alpha"]) for d in domains])              # (n,)
    with np.errstate(divide="ignore"):  # B = 0 or C = 0 are valid limits: log 0 = -inf, logaddexp copes
        log_K = np.array([np.log(params[d]["A"]) + np.logaddexp(np.log(params[d]["B"]) - params[d]["beta"] *
                          math.log(s), np.log(params[d]["C"])) for d in domains])
    log_aK = np.log(alpha) + log_K                                              # log(alpha_i K_i), (n,)

    def log_r(log_lam):
        return (log_aK - log_lam) / (alpha + 1.0)
    lo, hi = log_aK.max(), (log_aK + (alpha + 1.0) * math.log(len(domains))).max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.exp(log_r(mid)).sum() > 1.0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * max(1.0, abs(mid)):
            break
    r = np.exp(log_r(0.5 * (lo + hi)))
    r = r / r.sum()  # remove the last ~1e-15 of bisection error
    return {d: float(x) for d, x in zip(domains, r)}


def predict_losses(params, mixture, s):
    """The law's val loss per domain at step s for a mixture {domain: r} (r = 0: inf). Returns {domain: loss}."""
    unknown = [d for d in mixture if d not in params]
    if unknown:
        raise ValueError(f"predict_losses: unknown domain(s) {unknown}; fitted domains are {list(params)}")
    out = {}
    for d in params:
        r = float(mixture.get(d, 0.0))
        if r < 0:
            raise ValueError(f"predict_losses: mixture[{d!r}]={r} is negative")
        out[d] = float("inf") if r == 0 else bimix_loss(params[d], r, s)  # r^-alpha -> inf as r -> 0
    return out


def run_mixture(run_dir):
    """The resolved mixture {domain: r} a train.py run recorded in its config.json."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {run_dir} a train.py out_dir?")
    with open(path) as f:
        try:
            mixture = json.load(f).get("mixture")
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(mixture, dict):
        raise ValueError(f"{path}: 'mixture' is {mixture!r}, expected the resolved dict {{domain: r}}")
    return {d: float(r) for d, r in mixture.items()}


def check_one_dataset(run_dirs):
    """The law is fitted per dataset and tokenizer: runs trained on others cannot share a fit."""
    from data.loader import dataset_dir
    groups = {}
    for run_dir in run_dirs:
        run_mixture(run_dir)  # a run folder with a readable config.json
        with open(os.path.join(run_dir, "config.json")) as f:
            cfg = json.load(f)
        try:
            data = os.path.realpath(dataset_dir(cfg.get("dataset")))
        except TypeError:  # no dataset recorded
            data = cfg.get("dataset")
        groups.setdefault((data, cfg.get("vocab_size")), []).append(str(run_dir))
    if len(groups) > 1:
        raise ValueError("the runs were trained on different datasets or vocabularies; fit the runs of one: "
                         + "; ".join(f"{d} (vocab_size {v}): {', '.join(r)}" for (d, v), r in groups.items()))


def observations_from_runs(run_dirs):
    """BiMix fitting points (domain, r, s, loss) from train.py runs: r from an evaluation's own "mixture" (else
    the run's config.json), s its iter, loss its val_loss[domain]. Skipped: iter 0 (s^-beta is infinite there),
    domains a run left out (r = 0), and non-finite losses (a diverged run; with a warning)."""
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    check_one_dataset(run_dirs)
    obs = []
    for run_dir in run_dirs:
        mixture = run_mixture(run_dir)
        nonfinite = 0
        for rec in read_evals(run_dir, log=warnings.warn)[0]:
            if rec["iter"] == 0:
                continue
            mix = rec.get("mixture") if isinstance(rec.get("mixture"), dict) else mixture
            for d, loss in (rec.get("val_loss") or {}).items():
                if float(mix.get(d, 0.0)) <= 0:
                    continue
                if loss is None or not math.isfinite(loss):
                    nonfinite += 1
                    continue
                obs.append((d, float(mix[d]), float(rec["iter"]), float(loss)))
        if nonfinite:
            warnings.warn(f"{run_dir}/metrics.jsonl: skipped {nonfinite} non-finite validation loss(es)")
    return obs


# -------------------------------------------------------------------------------------------------------------
# Command line

def _fmt(x, spec="7.4f"):
    return "-" if x is None else format(x, spec)


def print_entropy_table(dataset_dir):
    domains = list(load_meta(dataset_dir)["domains"])
    ents = dataset_entropies(dataset_dir)
    total = sum(e["tokens"] for e in ents.values())
    mixes = {k: entropy_mixture({d: ents[d][k] for d in domains}) for k in ENTROPIES
             if all(ents[d][k] is not None for d in domains)}
    w = max(len("domain"), *(len(d) for d in domains))
    head = (f"{'domain':<{w}} {'tokens':>13} " + " ".join(f"{k:>7}" for k in ENTROPIES) + "  | "
            + " ".join(f"{n:>7}" for n in ["natural"] + [f"r_{k}" for k in ENTROPIES]))
    print(f"{dataset_dir} (entropies in nats over the train split; proportions: natural by size, r_H = softmax H)")
    print(head + "\n" + "-" * len(head))
    for d in domains:
        e = ents[d]
        print(f"{d:<{w}} {e['tokens']:>13,} " + " ".join(_fmt(e[k]) for k in ENTROPIES) + "  | "
              + _fmt(e["tokens"] / total if total else None) + " "
              + " ".join(_fmt(mixes[k][d] if k in mixes else None) for k in ENTROPIES))


def print_fit(run_dirs, steps=None, objective="loss"):
    obs = observations_from_runs(run_dirs)
    if not obs:
        raise SystemExit(f"no evaluation points (iter > 0) found in {run_dirs}")
    params = fit_bimix(obs, objective=objective)
    s = float(steps) if steps else max(o[2] for o in obs)
    domains = list(params)
    w = max(len("domain"), *(len(d) for d in domains))
    what = "squared loss residuals (the paper's)" if objective == "loss" else "squared log-loss residuals"
    print(f"BiMix fit on {len(run_dirs)} run(s), {len(obs)} points: L = A / r^alpha * (B / s^beta + C), gauge C=1; "
          f"least squares on {what}")
    head = f"{'domain':<{w}} {'n':>4} {'A':>10} {'B':>10} {'C':>5} {'alpha':>8} {'beta':>8} {'MRE':>8} {'R2(log)':>8}"
    print(head + "\n" + "-" * len(head))
    for d in domains:
        p = params[d]
        print(f"{d:<{w}} {p['n']:>4} {p['A']:>10.4g} {p['B']:>10.4g} {p['C']:>5.3g} {p['alpha']:>8.4f} "
              f"{p['beta']:>8.4f} {p['mre']:>8.3%} {p['r2_log']:>8.4f}")
    opt = optimal_mixture(params, s)
    print(f"\npredicted mean val loss at s={s:g}:")
    candidates = {"optimal": opt, "uniform": {d: 1.0 / len(domains) for d in domains},
                  **{run_dir: run_mixture(run_dir) for run_dir in run_dirs}}
    for name, m in candidates.items():
        m = {d: r for d, r in m.items() if d in params}
        L = predict_losses(params, m, s)
        shown = " ".join(f"{d}={m.get(d, 0.0):.4f}" for d in domains)
        print(f"  {name:<{max(12, *(len(n) for n in candidates))}} {np.mean(list(L.values())):.4f}   {shown}")
    rounded = {d: round(x, 4) for d, x in opt.items()}  # for a config: the rounding slack on the largest domain
    top = max(rounded, key=rounded.get)
    rounded[top] = round(rounded[top] + 1.0 - sum(rounded.values()), 4)
    print(f"\n# optimal BiMix mixture at s={s:g}; paste into a train config:\nmixture = {rounded}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="BiMix data mixing (Ge et al. 2024): entropy mixtures of a "
                                     "dataset, or fit the bivariate scaling law on proxy runs.")
    parser.add_argument("paths", nargs="+", help="a dataset name or folder, or run out_dirs with --fit")
    parser.add_argument("--fit", action="store_true", help="fit BiMix on the given run out_dirs")
    parser.add_argument("--steps", type=float, default=None,
                        help="step budget s for the optimal mixture (default: the largest s seen)")
    parser.add_argument("--objective", choices=FIT_OBJECTIVES, default="loss",
                        help="least squares on the loss (the paper's, default) or on log loss")
    args = parser.parse_args(argv)
    if not args.fit and len(args.paths) != 1:
        parser.error("give one dataset folder (or use --fit with run out_dirs)")
    try:
        if args.fit:
            print_fit(args.paths, args.steps, args.objective)
        else:
            from data.loader import dataset_dir
            print_entropy_table(dataset_dir(args.paths[0]))
    except (FileNotFoundError, ValueError) as e:  # they say what is wrong and what to do: no traceback
        raise SystemExit(f"mix.py: {e}") from None


# -------------------------------------------------------------------------------------------------------------
# Argument checks: each says what is wrong and what to do

def _check_mixture_spec(spec, domains, train_tokens, dataset_dir):
    """A known name usable on this dataset, or a dict of finite weights >= 0 over known, non-empty domains, not all
    zero (a sum away from 1 only warns: the weights are normalised)."""
    empty = [d for d in domains if train_tokens[d] == 0]
    if spec is None or isinstance(spec, str):
        name = "natural" if spec is None else spec.strip().lower()
        if name not in MIXTURE_SPECS:
            raise ValueError(f"mixture={spec!r} is unknown; use one of {', '.join(MIXTURE_SPECS)} "
                             f"or a dict {{domain: proportion}} over {domains}")
        if name != "natural" and empty:
            raise ValueError(f"mixture={name!r}: domain(s) {empty} have 0 train tokens and cannot be sampled; "
                             f"give an explicit dict with 0 for them")
        if name == "natural" and sum(train_tokens.values()) == 0:
            raise ValueError(f"mixture='natural': all domains of {dataset_dir} have 0 train tokens")
        return
    if not isinstance(spec, dict):
        raise TypeError(f"mixture must be None, a name ({', '.join(MIXTURE_SPECS)}) or a dict, "
                        f"got {type(spec).__name__}")
    unknown = [d for d in spec if d not in train_tokens]
    if unknown:
        raise ValueError(f"mixture: unknown domain(s) {unknown}; valid domains are {domains}")
    for d in domains:
        v = spec.get(d, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"mixture[{d!r}]={v!r}: proportions must be numbers")
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"mixture[{d!r}]={v}: proportions must be finite and >= 0")
        if v > 0 and train_tokens[d] == 0:
            raise ValueError(f"mixture[{d!r}]={v}: domain {d!r} has 0 train tokens and cannot be sampled")
    total = sum(float(spec.get(d, 0.0)) for d in domains)
    if total <= 0:
        raise ValueError(f"mixture: all proportions are zero ({spec}); at least one domain needs r > 0")
    if abs(total - 1.0) > SUM_TOLERANCE:
        warnings.warn(f"mixture proportions sum to {total:.6g}, not 1; normalising them "
                      f"(they are treated as relative weights)")


def _check_fit_args(grouped, objective):
    """Per domain: the law has r^-alpha and s^-beta (so all > 0), five coefficients (so >= 5 points), and
    separates r from s only when both vary."""
    if not grouped:
        raise ValueError("fit_bimix: no observations")
    if objective not in FIT_OBJECTIVES:
        raise ValueError(f"fit_bimix: objective={objective!r} is unknown; use 'loss' (least squares on the loss, "
                         f"the paper's) or 'log' (on log loss)")
    for d, (r, s, L) in grouped.items():
        for name, v in (("r", r), ("s", s), ("loss", L)):
            bad = ~np.isfinite(v) | (v <= 0)
            if bad.any():
                raise ValueError(f"fit_bimix: domain {d!r}: {name} must be finite and > 0, got {v[bad][0]} "
                                 f"(the law has r^-alpha and s^-beta; drop points of domains a run left out)")
        if len(L) < 5 or len(np.unique(r)) < 2 or len(np.unique(s)) < 2:
            raise ValueError(f"fit_bimix: domain {d!r}: too few observations ({len(L)} points, "
                             f"{len(np.unique(r))} distinct r, {len(np.unique(s))} distinct s); BiMix needs >= 5 "
                             f"points with >= 2 distinct proportions r and >= 2 distinct steps s")
        if len(np.unique(s)) < 3:
            warnings.warn(f"fit_bimix: domain {d!r} has only 2 distinct steps s: beta and C are not "
                          f"separately identifiable; evaluate at more steps")


def _check_optimum_args(params, s):
    if not params:
        raise ValueError("optimal_mixture: no domains")
    if s <= 0:
        raise ValueError(f"optimal_mixture: s must be > 0, got {s}")
    bad = [d for d in params if not float(params[d]["alpha"]) > 0]
    if bad:  # the stationarity condition needs alpha_i > 0 (convexity)
        raise ValueError(f"optimal_mixture: alpha <= 0 for {bad}: their loss does not fall with more data, "
                         f"the law has no interior optimum (refit with more varied proportions)")


if __name__ == "__main__":
    main()
