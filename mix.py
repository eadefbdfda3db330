"""
nanogrow data mixing: BiMix (Ge et al. 2024, "Data Mixing Made Efficient: A Bivariate Scaling Law for Language
Model Pretraining", arXiv 2405.14908). Facts used here are collected in docs/papers.md section 3.

Two ways to pick the proportions r_i (sum_i r_i = 1) of the domains of a dataset (layout in docs/contracts.md):

  1. training-free entropy mixtures: r_i = softmax_i(H_i), with H_i an entropy of domain i's tokenized train split:
       SE  Shannon entropy of the unigram distribution
       JE  joint entropy of consecutive pairs H(X_t, X_t+1)
       CE  conditional entropy H(X_t+1 | X_t)  (the paper's best of the four)
       VNE von Neumann entropy of a kernel over sampled windows (Vendi-style; our embedding, see domain_vne)
  2. the BiMix law fitted on a few short proxy runs with different mixtures,
       L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i)        (s = training steps)
     and the mixture that minimises the mean predicted loss over domains at a step budget s.

resolve_mixture(spec, dataset_dir) is what train.py calls to turn its `mixture` setting into proportions.

  python mix.py data/<dataset>                            # entropies per domain and the mixtures they give
  python mix.py --fit out/run1 out/run2 ... [--steps S]   # fit BiMix on runs, print the optimal mixture at S

Everything is numpy; no scipy (the paper fits with SciPy's trust-region least squares, we use our own
Levenberg-Marquardt, which solves the same problem).
"""

import argparse
import json
import math
import os
import warnings

import numpy as np

from runs import read_metrics

ENTROPIES = ("SE", "JE", "CE", "VNE")
MIXTURE_SPECS = ("natural", "uniform", "se", "je", "ce", "vne")
SUM_TOLERANCE = 1e-3     # explicit proportions may miss 1 by this much (rounding) before resolve_mixture warns
CACHE_VERSION = 1
VNE_SETTINGS = {"n_samples": 512, "seq_len": 512, "dim": 4096, "seed": 0}

# -------------------------------------------------------------------------------------------------------------
# Entropies of a token stream (training-free mixtures)


def _entropy(counts):
    """Shannon entropy in nats of the empirical distribution given by non-negative counts."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    p = c / c.sum()
    return float(-(p * np.log(p)).sum()) + 0.0  # + 0.0: a single symbol gives 0.0, not -0.0


def _merge_counts(keys, counts, new_keys, new_counts):
    """Add two sparse count tables (sorted unique int64 keys, int64 counts) into one sorted unique table."""
    k = np.concatenate([keys, new_keys])
    c = np.concatenate([counts, new_counts])
    if len(k) == 0:
        return k, c
    order = np.argsort(k, kind="stable")  # two sorted runs: numpy's stable sort (timsort) merges them in O(n)
    k, c = k[order], c[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])  # first index of each distinct key
    return k[starts], np.add.reduceat(c, starts)


def domain_entropies(tokens, vocab_size, chunk=1 << 24):
    """
    SE, JE and CE of one domain's token stream (BiMix's training-free entropies, Ge et al. 2024), in nats.

    tokens: 1-D array of token ids, typically an np.memmap of 100M+ tokens; read `chunk` tokens at a time so
    memory stays O(chunk + distinct bigrams), never O(len(tokens)) or O(V^2).
      SE = H(X)            over the n unigrams
      JE = H(X_t, X_t+1)   over the n-1 consecutive pairs
      CE = H(X_t+1 | X_t) = JE - H(X_t), where X_t is the *first element of a pair* (every token but the last),
           computed pair by pair as -sum p(a,b) log(c(a,b) / c_first(a)) so that a deterministic successor
           gives exactly 0 and rounding can never make CE negative.
    Bigram counts live in a sparse table keyed by prev*V + next (int64; V=50257 gives keys < 2.6e9), merged
    chunk by chunk; each chunk reads one token of overlap so the pair straddling two chunks is counted once.
    Returns {"tokens": n, "SE", "JE", "CE"}.
    """
    n, V = len(tokens), int(vocab_size)
    if n < 2:
        raise ValueError(f"domain_entropies: need at least 2 tokens for pair statistics, got {n}")
    if chunk < 1:
        raise ValueError(f"domain_entropies: chunk must be >= 1, got {chunk}")
    unigram = np.zeros(V, dtype=np.int64)                                   # (V,)
    keys, counts = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)  # (distinct bigrams,)
    for start in range(0, n, chunk):
        x = np.asarray(tokens[max(start - 1, 0): start + chunk], dtype=np.int64)  # (<= chunk+1,)
        own = x if start == 0 else x[1:]  # x[0] of a later chunk was counted as a unigram by the previous chunk
        if own.min() < 0 or own.max() >= V:
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
    ce = float(-(p * log_cond).sum()) + 0.0  # + 0.0 turns the -0.0 of a deterministic chain into 0.0
    return {"tokens": int(n), "SE": _entropy(unigram), "JE": _entropy(counts), "CE": ce}


def domain_vne(tokens, n_samples=512, seq_len=512, dim=4096, seed=0):
    """
    VNE: von Neumann entropy of a sample kernel, BiMix's fourth entropy (Ge et al. 2024; a Vendi-score-style
    eigen-entropy). The paper embeds samples with a model; we use a simple, model-free embedding instead:

      - draw n_samples windows of seq_len tokens at seeded random starts (with replacement, so a small domain
        repeats windows, which lowers its VNE: it really has fewer distinct samples to offer),
      - embed a window as sqrt of its unigram distribution, token ids hashed into `dim` buckets (Knuth's
        multiplicative hash, top bits), so x_i has unit norm and K_ij = x_i . x_j is the Bhattacharyya
        coefficient of the two windows' token distributions: a PSD kernel with K_ii = 1,
      - VNE = -sum_k lambda_k log lambda_k over the eigenvalues of K / n (unit trace).

    What it measures: how dissimilar the windows' token distributions are; exp(VNE) is the effective number of
    distinct windows. That mixes two things: real between-sample diversity (text hopping between topics scores
    high, a repeated phrase scores 0) and, when windows are short next to the vocabulary, lexical richness
    (sparse counts over a rich vocabulary rarely overlap). So i.i.d. noise over a small vocabulary scores low
    (dense windows, all alike) but over a large one high. VNE lies in [0, log min(n_samples, dim)]; it compares
    domains only at equal settings (resolve_mixture always uses VNE_SETTINGS) and is not the paper's number
    (their embedding differs), so treat "vne" as the least validated of the four mixtures.
    Deterministic given `seed`.
    """
    n = len(tokens)
    if n < seq_len:
        raise ValueError(f"domain_vne: domain has {n} tokens, fewer than seq_len={seq_len}")
    if dim & (dim - 1) or dim < 2:
        raise ValueError(f"domain_vne: dim must be a power of 2, got {dim}")
    shift = 32 - (dim.bit_length() - 1)
    starts = np.random.default_rng(seed).integers(0, n - seq_len + 1, size=n_samples)
    X = np.zeros((n_samples, dim))                                              # (n_samples, dim)
    for i, st in enumerate(starts):
        ids = np.asarray(tokens[st: st + seq_len], dtype=np.int64)
        buckets = ((ids * 2654435761) & 0xFFFFFFFF) >> shift                     # (seq_len,) in [0, dim)
        X[i] = np.sqrt(np.bincount(buckets, minlength=dim) / seq_len)           # unit norm: sum of p is 1
    # K/n and X^T X/n share their non-zero eigenvalues; decompose whichever is smaller
    G = X @ X.T if n_samples <= dim else X.T @ X
    lam = np.linalg.eigvalsh(G / n_samples)
    lam = lam[lam > 1e-12]
    lam = lam / lam.sum()
    return float(-(lam * np.log(lam)).sum()) + 0.0


def entropy_mixture(entropies):
    """BiMix entropy mixture (Ge et al. 2024): r_i = exp(H_i) / sum_j exp(H_j), i.e. softmax over domains."""
    if not entropies:
        raise ValueError("entropy_mixture: no domains")
    h = np.array([float(v) for v in entropies.values()])
    if not np.all(np.isfinite(h)):
        raise ValueError(f"entropy_mixture: non-finite entropy in {entropies}")
    e = np.exp(h - h.max())  # shift by the max: same softmax, no overflow
    return {d: float(x) for d, x in zip(entropies, e / e.sum())}


# -------------------------------------------------------------------------------------------------------------
# Datasets (layout in docs/contracts.md; plain numpy so mix.py stands alone)


def _load_meta(dataset_dir):
    path = os.path.join(dataset_dir, "meta.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: a dataset folder holds meta.json and <domain>/train.bin "
                                f"(see docs/contracts.md); run data/prepare.py first")
    with open(path) as f:
        meta = json.load(f)
    if not meta.get("domains"):
        raise ValueError(f"{path} lists no domains")
    return meta


def _open_tokens(dataset_dir, domain, dtype, split="train"):
    """Read-only memmap of <dataset_dir>/<domain>/<split>.bin (an empty array for an empty file)."""
    path = os.path.join(dataset_dir, domain, f"{split}.bin")
    if os.path.getsize(path) == 0:  # np.memmap refuses empty files
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def dataset_entropies(dataset_dir, cache=True):
    """
    {domain: {"tokens", "SE", "JE", "CE", "VNE"}} over each domain's train split, computed once and cached in
    <dataset_dir>/entropy.json keyed by the train.bin file size (a re-tokenized domain changes size and is
    recomputed). An empty domain gets None entropies; VNE is None for a domain shorter than one VNE window.
    """
    meta = _load_meta(dataset_dir)
    dtype, V = np.dtype(meta.get("dtype", "uint16")), int(meta["vocab_size"])
    cache_path = os.path.join(dataset_dir, "entropy.json")
    cached = {}
    if cache and os.path.isfile(cache_path):
        try:
            with open(cache_path) as f:
                blob = json.load(f)
            if blob.get("version") == CACHE_VERSION and blob.get("vne_settings") == VNE_SETTINGS:
                cached = blob.get("domains", {})
        except (OSError, ValueError):
            cached = {}  # unreadable cache: recompute
    out, dirty = {}, False
    for d in meta["domains"]:
        size = os.path.getsize(os.path.join(dataset_dir, d, "train.bin"))
        if d in cached and cached[d].get("train_bin_bytes") == size:
            out[d] = {k: cached[d][k] for k in ("tokens",) + ENTROPIES}
            continue
        tokens = _open_tokens(dataset_dir, d, dtype)
        if len(tokens) < 2:
            ent = {"tokens": len(tokens), "SE": None, "JE": None, "CE": None, "VNE": None}
        else:
            print(f"mix: entropies of {d} ({len(tokens):,} train tokens)...", flush=True)
            ent = domain_entropies(tokens, V)
            ent["VNE"] = domain_vne(tokens, **VNE_SETTINGS) if len(tokens) >= VNE_SETTINGS["seq_len"] else None
        out[d], dirty = ent, True
        cached[d] = dict(ent, train_bin_bytes=size)
    if cache and dirty:
        blob = {"version": CACHE_VERSION, "vne_settings": VNE_SETTINGS,
                "domains": {d: cached[d] for d in meta["domains"]}}
        tmp = f"{cache_path}.tmp.{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                json.dump(blob, f, indent=1)
            os.replace(tmp, cache_path)  # atomic: a crash never leaves half a cache
        except OSError as e:
            warnings.warn(f"could not write {cache_path} ({e}); entropies will be recomputed next time")
    return out


def _parse_mixture_string(spec):
    """'{"web": 0.7, "code": 0.3}' (JSON or a Python dict literal, e.g. from --mixture=...) -> dict."""
    import ast
    try:
        return json.loads(spec)
    except ValueError:
        try:
            return ast.literal_eval(spec)
        except (ValueError, SyntaxError):
            raise ValueError(f"mixture={spec!r}: could not parse as a dict {{domain: proportion}}") from None


def resolve_mixture(spec, dataset_dir):
    """
    Turn train.py's `mixture` setting into {domain: proportion} over all domains of the dataset (meta order).

      None or "natural"      proportional to train tokens (what concatenating the domains would give)
      "uniform"              1/n per domain
      "se" | "je" | "ce" | "vne"  BiMix entropy mixture softmax(H) over the train split (Ge et al. 2024),
                             entropies cached in <dataset_dir>/entropy.json
      {domain: r}            explicit; missing domains get 0; a string holding such a dict is parsed too

    Rules (ValueError with the reason): unknown domain (the valid ones are listed), negative or non-finite
    value, all zero, positive weight on a domain with 0 train tokens ("uniform" and the entropies refuse a
    dataset with an empty domain; give an explicit dict that puts 0 on it). Explicit proportions are
    *weights*: they are normalised to sum to 1, silently if the sum is within SUM_TOLERANCE of 1 (rounded
    values pasted from `mix.py --fit`), else with a warnings.warn naming the sum.
    """
    meta = _load_meta(dataset_dir)
    domains = list(meta["domains"])
    train_tokens = {d: int(meta["domains"][d].get("train_tokens", 0)) for d in domains}
    empty = [d for d in domains if train_tokens[d] == 0]
    if isinstance(spec, str) and spec.strip().startswith("{"):
        spec = _parse_mixture_string(spec)

    if spec is None or isinstance(spec, str):
        name = "natural" if spec is None else spec.strip().lower()
        if name not in MIXTURE_SPECS:
            raise ValueError(f"mixture={spec!r} is unknown; use one of {', '.join(MIXTURE_SPECS)} "
                             f"or a dict {{domain: proportion}} over {domains}")
        if name != "natural" and empty:
            raise ValueError(f"mixture={name!r}: domain(s) {empty} have 0 train tokens and cannot be sampled; "
                             f"give an explicit dict with 0 for them")
        if name == "natural":
            if sum(train_tokens.values()) == 0:
                raise ValueError(f"mixture='natural': all domains of {dataset_dir} have 0 train tokens")
            weights = {d: float(train_tokens[d]) for d in domains}
        elif name == "uniform":
            weights = {d: 1.0 for d in domains}
        else:
            ents = dataset_entropies(dataset_dir)
            key = name.upper()
            missing = [d for d in domains if ents[d][key] is None]
            if missing:
                raise ValueError(f"mixture={name!r}: {key} undefined for {missing} (too few train tokens; VNE "
                                 f"needs {VNE_SETTINGS['seq_len']})")
            weights = entropy_mixture({d: ents[d][key] for d in domains})
        return _normalise(weights)  # built-ins sum to 1 up to rounding: no warning needed

    if not isinstance(spec, dict):
        raise TypeError(f"mixture must be None, a name ({', '.join(MIXTURE_SPECS)}) or a dict, "
                        f"got {type(spec).__name__}")
    unknown = [d for d in spec if d not in train_tokens]
    if unknown:
        raise ValueError(f"mixture: unknown domain(s) {unknown}; valid domains are {domains}")
    weights = {}
    for d in domains:
        v = spec.get(d, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"mixture[{d!r}]={v!r}: proportions must be numbers")
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"mixture[{d!r}]={v}: proportions must be finite and >= 0")
        if v > 0 and train_tokens[d] == 0:
            raise ValueError(f"mixture[{d!r}]={v}: domain {d!r} has 0 train tokens and cannot be sampled")
        weights[d] = float(v)
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"mixture: all proportions are zero ({spec}); at least one domain needs r > 0")
    if abs(total - 1.0) > SUM_TOLERANCE:
        warnings.warn(f"mixture proportions sum to {total:.6g}, not 1; normalising them "
                      f"(they are treated as relative weights)")
    return _normalise(weights)


def _normalise(weights):
    total = sum(weights.values())
    return {d: w / total for d, w in weights.items()}


# -------------------------------------------------------------------------------------------------------------
# The BiMix law and its fit
#
# L_i(r, s) = A_i / r^alpha_i * (B_i / s^beta_i + C_i). A, B, C are only defined up to (kA, B/k, C/k), so the fit
# uses the 4 identifiable numbers theta = (alpha, beta, a = log(A B), c = log(A C)), positive A B and A C by
# construction:  log L = -alpha log r + logaddexp(a - beta log s, c). Reported coefficients take the gauge C = 1,
# so A is the loss at r = 1, s -> inf and B / s^beta the relative excess over it.

COEFFICIENTS = ("A", "B", "C", "alpha", "beta")


def bimix_loss(params, r, s):
    """BiMix law (Ge et al. 2024) for one domain: A / r^alpha * (B / s^beta + C); r, s scalars or arrays."""
    r, s = np.asarray(r, dtype=np.float64), np.asarray(s, dtype=np.float64)
    loss = params["A"] / r ** params["alpha"] * (params["B"] / s ** params["beta"] + params["C"])
    return float(loss) if loss.ndim == 0 else loss


def _log_law(theta, log_r, log_s):
    """log L and its Jacobian d log L / d theta, theta = (alpha, beta, a, c); shapes (n,), (n, 4)."""
    alpha, beta, a, c = theta
    u = a - beta * log_s                        # log(A B s^-beta), (n,)
    z = np.logaddexp(u, c)                      # log(A (B s^-beta + C)), (n,)
    w = np.exp(u - z)                           # share of the reducible term B s^-beta, in (0, 1)
    jac = np.stack([-log_r, -w * log_s, w, np.exp(c - z)], axis=1)
    return -alpha * log_r + z, jac


def _levenberg_marquardt(theta, log_r, log_s, log_L, max_iter=500):
    """
    Minimise sum (log L_model - log L)^2 over theta by damped Gauss-Newton (Levenberg-Marquardt with
    Marquardt's diagonal scaling). Residuals in log space are relative errors, the paper's fit-quality measure.
    """
    theta = np.asarray(theta, dtype=np.float64)
    f, J = _log_law(theta, log_r, log_s)
    res = f - log_L
    cost, lam = float(res @ res), 1e-3
    for _ in range(max_iter):
        if cost < 1e-28:  # exact fit (noise-free data)
            break
        g, H = J.T @ res, J.T @ J
        D = np.diag(np.maximum(np.diag(H), 1e-12 * max(np.diag(H).max(), 1e-12)))
        accepted = False
        while lam < 1e16:
            try:
                step = np.linalg.solve(H + lam * D, -g)
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            f_new, J_new = _log_law(theta + step, log_r, log_s)
            res_new = f_new - log_L
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


def _initial_thetas(r, s, L, n_starts):
    """
    Starting points for the fit. alpha: within one step s, log L = -alpha log r + const(s) (the law separates r
    and s), so alpha is minus the slope of log L on log r after removing per-step means (fixed effects). Then,
    on a grid of beta, L r^alpha = P s^-beta + Q is linear in (P, Q) = (A B, A C): solve it, keep the n_starts
    grid points with the smallest log-residual.
    """
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
        res = _log_law(theta, log_r, log_s)[0] - log_L
        starts.append((float(res @ res), theta))
    starts.sort(key=lambda t: t[0])
    return [t for _, t in starts[:n_starts]]


def _group_observations(observations):
    """list of (domain, r, s, loss) or {domain: (r, s, loss) | {"r", "s", "loss"}} -> {domain: (r, s, L)}."""
    grouped = {}
    if isinstance(observations, dict):
        for d, v in observations.items():
            if isinstance(v, dict):
                v = (v["r"], v["s"], v["loss"])
            r, s, L = (np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in v)
            if not (r.shape == s.shape == L.shape and r.ndim == 1):
                raise ValueError(f"fit_bimix: domain {d!r}: r, s, loss must be 1-D arrays of one length, "
                                 f"got shapes {r.shape}, {s.shape}, {L.shape}")
            grouped[d] = (r, s, L)
        return grouped
    rows = {}
    for i, ob in enumerate(observations):
        if len(ob) != 4:
            raise ValueError(f"fit_bimix: observation {i} is {ob!r}, expected (domain, r, s, loss)")
        d, r, s, L = ob
        rows.setdefault(d, []).append((float(r), float(s), float(L)))
    return {d: tuple(np.array(col) for col in zip(*v)) for d, v in rows.items()}


def _check_observations(domain, r, s, L):
    for name, v in (("r", r), ("s", s), ("loss", L)):
        bad = ~np.isfinite(v) | (v <= 0)
        if bad.any():
            raise ValueError(f"fit_bimix: domain {domain!r}: {name} must be finite and > 0, got {v[bad][0]} "
                             f"(the law has r^-alpha and s^-beta; drop points of domains a run left out)")
    if len(L) < 5 or len(np.unique(r)) < 2 or len(np.unique(s)) < 2:
        raise ValueError(f"fit_bimix: domain {domain!r}: too few observations ({len(L)} points, "
                         f"{len(np.unique(r))} distinct r, {len(np.unique(s))} distinct s); BiMix needs >= 5 "
                         f"points with >= 2 distinct proportions r and >= 2 distinct steps s")
    if len(np.unique(s)) < 3:
        warnings.warn(f"fit_bimix: domain {domain!r} has only 2 distinct steps s: beta and C are not "
                      f"separately identifiable; evaluate at more steps")


def fit_bimix(observations, n_starts=4):
    """
    Fit the BiMix law L_i(r, s) = A_i / r^alpha_i * (B_i / s^beta_i + C_i) per domain (Ge et al. 2024; the paper
    uses SciPy's trust-region least squares, here Levenberg-Marquardt in numpy on log L, from n_starts
    initialisations, see _initial_thetas). observations: list of (domain, r, s, loss), or
    {domain: (r, s, loss) arrays}. Needs per domain >= 5 points, >= 2 distinct r, >= 2 distinct s, all > 0.

    Returns {domain: {"A", "B", "C", "alpha", "beta", "n", "mre", "r2_log"}} with the gauge C = 1 (A, B, C
    are only defined up to (kA, B/k, C/k)), mre the mean relative error |L_fit - L| / L over the domain's
    points and r2_log the R^2 of log L (the paper's two fit-quality numbers).
    """
    grouped = _group_observations(observations)
    if not grouped:
        raise ValueError("fit_bimix: no observations")
    params = {}
    for d, (r, s, L) in grouped.items():
        _check_observations(d, r, s, L)
        log_r, log_s, log_L = np.log(r), np.log(s), np.log(L)
        fits = [_levenberg_marquardt(t, log_r, log_s, log_L) for t in _initial_thetas(r, s, L, n_starts)]
        theta, _ = min(fits, key=lambda t: t[1])
        alpha, beta, a, c = (float(x) for x in theta)
        coef = {"A": math.exp(c), "B": math.exp(a - c), "C": 1.0, "alpha": alpha, "beta": beta}
        pred = bimix_loss(coef, r, s)
        ss_tot = float(((log_L - log_L.mean()) ** 2).sum())
        ss_res = float(((np.log(pred) - log_L) ** 2).sum())
        params[d] = dict(coef, n=int(len(L)), mre=float(np.mean(np.abs(pred - L) / L)),
                         r2_log=1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"))
    return params


def _log_K(params, domains, s):
    """log K_i = log(A_i (B_i s^-beta_i + C_i)): the loss at r_i = 1, so that L_i = K_i r_i^-alpha_i."""
    with np.errstate(divide="ignore"):  # B = 0 or C = 0 are valid limits: log 0 = -inf, logaddexp copes
        return np.array([np.log(params[d]["A"]) + np.logaddexp(np.log(params[d]["B"]) - params[d]["beta"] *
                         math.log(s), np.log(params[d]["C"])) for d in domains])


def optimal_mixture(params, s):
    """
    BiMix optimal mixture at step budget s (Ge et al. 2024): minimise mean_i K_i r_i^-alpha_i subject to
    sum r_i = 1, r_i > 0. Convex for alpha_i > 0, so the stationary point is the minimum:
    r_i(lambda) = (alpha_i K_i / lambda)^(1/(alpha_i+1)), with lambda the root of sum_i r_i(lambda) = 1, found
    by bisection on log lambda. sum r_i is decreasing in lambda, and the bracket is exact:
    at log lambda = max_i log(alpha_i K_i) one r_i is 1 (sum >= 1); at max_i [log(alpha_i K_i) +
    (alpha_i+1) log n] every r_i <= 1/n (sum <= 1). Returns {domain: r}.
    """
    domains = list(params)
    if not domains:
        raise ValueError("optimal_mixture: no domains")
    if s <= 0:
        raise ValueError(f"optimal_mixture: s must be > 0, got {s}")
    alpha = np.array([float(params[d]["alpha"]) for d in domains])
    bad = [d for d, a in zip(domains, alpha) if not a > 0]
    if bad:
        raise ValueError(f"optimal_mixture: alpha <= 0 for {bad}: their loss does not fall with more data, "
                         f"the law has no interior optimum (refit with more varied proportions)")
    log_aK = np.log(alpha) + _log_K(params, domains, s)              # log(alpha_i K_i), (n,)
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
    """BiMix predicted validation loss per domain at step s for a mixture {domain: r} (missing domains: r = 0,
    whose predicted loss is inf). Returns {domain: loss}; the objective of optimal_mixture is their mean."""
    unknown = [d for d in mixture if d not in params]
    if unknown:
        raise ValueError(f"predict_losses: unknown domain(s) {unknown}; fitted domains are {list(params)}")
    out = {}
    for d in params:
        r = float(mixture.get(d, 0.0))
        if r < 0:
            raise ValueError(f"predict_losses: mixture[{d!r}]={r} is negative")
        out[d] = float("inf") if r == 0 else bimix_loss(params[d], r, s)
    return out


# -------------------------------------------------------------------------------------------------------------
# Reading proxy runs (run out_dir layout in docs/contracts.md)


def _run_mixture(run_dir):
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {run_dir} a train.py out_dir?")
    with open(path) as f:
        mixture = json.load(f).get("mixture")
    if not isinstance(mixture, dict):
        raise ValueError(f"{path}: 'mixture' is {mixture!r}, expected the resolved dict {{domain: r}}")
    return {d: float(r) for d, r in mixture.items()}


def observations_from_runs(run_dirs):
    """
    BiMix fitting points from train.py runs: list of (domain, r, s, loss). r from the run's config.json
    "mixture" (or an evaluation line's own "mixture" when present), s = "iter" and loss = "val_loss"[domain]
    from the evaluation lines of metrics.jsonl. Skipped: iter 0 (s^-beta is infinite there), domains with
    r = 0 in that run (the law has r^-alpha), non-finite losses (a diverged run) and lines that are not JSON (a
    run killed mid-write), the last two with a warning; a resumed run that evaluated one iter twice keeps the last.
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    obs = []
    for run_dir in run_dirs:
        mixture = _run_mixture(run_dir)
        by_iter = {int(rec["iter"]): rec for rec in read_metrics(run_dir, log=warnings.warn)
                   if isinstance(rec.get("val_loss"), dict) and rec.get("iter", 0) > 0}
        nonfinite = 0
        for it in sorted(by_iter):
            rec = by_iter[it]
            mix = rec.get("mixture") if isinstance(rec.get("mixture"), dict) else mixture
            for d, loss in rec["val_loss"].items():
                if float(mix.get(d, 0.0)) <= 0:
                    continue
                if loss is None or not math.isfinite(loss):
                    nonfinite += 1
                    continue
                obs.append((d, float(mix[d]), float(it), float(loss)))
        if nonfinite:
            warnings.warn(f"{run_dir}/metrics.jsonl: skipped {nonfinite} non-finite validation loss(es)")
    return obs


# -------------------------------------------------------------------------------------------------------------
# CLI


def _fmt(x, spec="7.4f"):
    return "-" if x is None else format(x, spec)


def print_entropy_table(dataset_dir):
    meta = _load_meta(dataset_dir)
    ents = dataset_entropies(dataset_dir)
    domains = list(meta["domains"])
    total = sum(e["tokens"] for e in ents.values())
    mixes = {}
    for key in ENTROPIES:
        if all(ents[d][key] is not None for d in domains):
            mixes[key] = entropy_mixture({d: ents[d][key] for d in domains})
    w = max(len("domain"), *(len(d) for d in domains))
    head = f"{'domain':<{w}} {'tokens':>13} " + " ".join(f"{k:>7}" for k in ENTROPIES)
    head += "  | " + " ".join(f"{n:>7}" for n in ["natural"] + [f"r_{k}" for k in ENTROPIES])
    print(f"{dataset_dir} (entropies in nats over the train split; proportions: natural by size, r_H = softmax H)")
    print(head)
    print("-" * len(head))
    for d in domains:
        e = ents[d]
        row = f"{d:<{w}} {e['tokens']:>13,} " + " ".join(_fmt(e[k]) for k in ENTROPIES)
        row += "  | " + _fmt(e["tokens"] / total if total else None)
        row += " " + " ".join(_fmt(mixes[k][d] if k in mixes else None) for k in ENTROPIES)
        print(row)


def _rounded_mixture(r, digits=4):
    """Round for pasting into a config; put the rounding slack on the largest domain so it sums to 1."""
    out = {d: round(x, digits) for d, x in r.items()}
    top = max(out, key=out.get)
    out[top] = round(out[top] + 1.0 - sum(out.values()), digits)
    return out


def print_fit(run_dirs, steps=None):
    obs = observations_from_runs(run_dirs)
    if not obs:
        raise SystemExit(f"no evaluation points (iter > 0) found in {run_dirs}")
    params = fit_bimix(obs)
    s = float(steps) if steps else max(o[2] for o in obs)
    domains = list(params)
    w = max(len("domain"), *(len(d) for d in domains))
    print(f"BiMix fit on {len(run_dirs)} run(s), {len(obs)} points: L = A / r^alpha * (B / s^beta + C), gauge C=1")
    head = f"{'domain':<{w}} {'n':>4} {'A':>10} {'B':>10} {'C':>5} {'alpha':>8} {'beta':>8} {'MRE':>8} {'R2(log)':>8}"
    print(head)
    print("-" * len(head))
    for d in domains:
        p = params[d]
        print(f"{d:<{w}} {p['n']:>4} {p['A']:>10.4g} {p['B']:>10.4g} {p['C']:>5.3g} {p['alpha']:>8.4f} "
              f"{p['beta']:>8.4f} {p['mre']:>8.3%} {p['r2_log']:>8.4f}")
    opt = optimal_mixture(params, s)
    print(f"\npredicted mean val loss at s={s:g}:")
    candidates = {"optimal": opt, "uniform": {d: 1.0 / len(domains) for d in domains}}
    for run_dir in run_dirs:
        candidates[run_dir] = _run_mixture(run_dir)
    for name, mix in candidates.items():
        mix = {d: r for d, r in mix.items() if d in params}
        L = predict_losses(params, mix, s)
        shown = " ".join(f"{d}={mix.get(d, 0.0):.4f}" for d in domains)
        print(f"  {name:<{max(12, *(len(n) for n in candidates))}} {np.mean(list(L.values())):.4f}   {shown}")
    print(f"\n# optimal BiMix mixture at s={s:g}; paste into a train config:")
    print(f"mixture = {_rounded_mixture(opt)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="BiMix data mixing (Ge et al. 2024): entropy mixtures of a "
                                     "dataset, or fit the bivariate scaling law on proxy runs.")
    parser.add_argument("paths", nargs="+", help="a dataset folder (data/<name>), or run out_dirs with --fit")
    parser.add_argument("--fit", action="store_true", help="fit BiMix on the given run out_dirs")
    parser.add_argument("--steps", type=float, default=None,
                        help="step budget s for the optimal mixture (default: the largest s seen)")
    args = parser.parse_args(argv)
    if not args.fit and len(args.paths) != 1:
        parser.error("give one dataset folder (or use --fit with run out_dirs)")
    try:
        if args.fit:
            print_fit(args.paths, args.steps)
        else:
            print_entropy_table(args.paths[0])
    except (FileNotFoundError, ValueError) as e:  # they say what is wrong and what to do: no traceback
        raise SystemExit(f"mix.py: {e}") from None


if __name__ == "__main__":
    main()
