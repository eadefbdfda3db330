"""Tests for mix.py: BiMix entropies, mixtures, the bivariate law fit and its optimum (Ge et al. 2024). CPU, fast."""

import json
import math
import os
import warnings

import numpy as np
import pytest

import mix

# -------------------------------------------------------------------------------------------------------------
# helpers


def write_dataset(root, domains, vocab_size=64, dtype="uint16"):
    """A dataset folder per docs/training.md: meta.json + <domain>/{train,val}.bin from {domain: token array}."""
    meta = {"tokenizer": "byte", "vocab_size": vocab_size, "dtype": dtype, "domains": {}}
    for d, toks in domains.items():
        os.makedirs(root / d, exist_ok=True)
        toks = np.asarray(toks, dtype=dtype)
        toks.tofile(root / d / "train.bin")
        toks[:10].tofile(root / d / "val.bin")
        meta["domains"][d] = {"train_tokens": len(toks), "val_tokens": min(10, len(toks)),
                              "train_bytes": len(toks), "val_bytes": min(10, len(toks))}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def markov_tokens(n, V, stay, seed):
    """Tokens where the next one repeats the previous with probability `stay`, else is uniform: CE falls with stay."""
    rng = np.random.default_rng(seed)
    fresh = rng.integers(0, V, size=n)
    keep = rng.random(n) < stay
    out = np.empty(n, dtype=np.int64)
    out[0] = fresh[0]
    for i in range(1, n):
        out[i] = out[i - 1] if keep[i] else fresh[i]
    return out


TRUE = {  # BiMix coefficients for three synthetic domains
    "web": dict(A=2.0, B=5.0, C=1.5, alpha=0.10, beta=0.40),
    "code": dict(A=1.0, B=8.0, C=2.0, alpha=0.05, beta=0.30),
    "books": dict(A=3.0, B=2.0, C=1.0, alpha=0.20, beta=0.60),
}
MIXES = [(1 / 3, 1 / 3, 1 / 3), (0.6, 0.2, 0.2), (0.2, 0.6, 0.2), (0.2, 0.2, 0.6), (0.5, 0.3, 0.2)]
STEPS = [250, 500, 1000, 2000, 4000, 8000, 16000, 32000]


def synthetic_observations(noise=0.0, seed=0):
    """5 mixtures x 8 steps x 3 domains from the law, with multiplicative Gaussian noise of relative size `noise`."""
    rng = np.random.default_rng(seed)
    obs = []
    for m in MIXES:
        for s in STEPS:
            for d, r in zip(TRUE, m):
                obs.append((d, r, s, mix.bimix_loss(TRUE[d], r, s) * (1 + noise * rng.standard_normal())))
    return obs


def mean_loss(params, mixture, s):
    return float(np.mean(list(mix.predict_losses(params, mixture, s).values())))


# -------------------------------------------------------------------------------------------------------------
# entropies


def test_se_of_uniform_iid_is_log_v():
    V, n = 64, 2_000_000
    toks = np.random.default_rng(0).integers(0, V, size=n).astype(np.uint16)
    e = mix.domain_entropies(toks, V)
    # plug-in entropy bias is ~(V-1)/(2n) = 1.6e-5 and its spread far smaller than 1e-3
    assert e["tokens"] == n
    assert abs(e["SE"] - math.log(V)) < 1e-3


def test_ce_of_deterministic_chain_is_exactly_zero():
    V = 50257  # GPT-2's vocab: the bigram table must stay sparse (a dense V x V table would be 20 GB)
    toks = (np.arange(300_000) % V).astype(np.uint16)
    e = mix.domain_entropies(toks, V, chunk=70_001)
    assert e["CE"] == 0.0
    assert abs(e["SE"] - math.log(V)) < 1e-3  # nearly uniform: 300000 = 5 full cycles + a partial one
    assert abs(e["JE"] - math.log(V)) < 1e-3  # each pair is determined by its first token


def test_independent_tokens_je_is_twice_se_and_ce_is_se():
    V, n = 16, 1_000_000
    p = np.arange(1, V + 1) / np.arange(1, V + 1).sum()  # non-uniform, so SE < log V
    toks = np.random.default_rng(1).choice(V, size=n, p=p).astype(np.uint16)
    e = mix.domain_entropies(toks, V, chunk=100_000)
    se_true = float(-(p * np.log(p)).sum())
    # plug-in biases: (V-1)/(2n) ~ 1e-5 for SE, (V^2-1)/(2n) ~ 1.3e-4 for JE; tolerance 2e-3 nats
    assert abs(e["SE"] - se_true) < 2e-3
    assert abs(e["JE"] - 2 * e["SE"]) < 2e-3
    assert abs(e["CE"] - e["SE"]) < 2e-3


def test_ce_is_je_minus_entropy_of_pair_first_elements():
    V = 8
    toks = markov_tokens(5000, V, stay=0.5, seed=2)
    e = mix.domain_entropies(toks, V)
    first = np.bincount(toks[:-1], minlength=V) / (len(toks) - 1)
    h_first = float(-(first[first > 0] * np.log(first[first > 0])).sum())
    assert e["CE"] == pytest.approx(e["JE"] - h_first, abs=1e-12)
    assert 0 < e["CE"] < e["SE"]


@pytest.mark.parametrize("chunk", [1, 2, 3, 999, 10_007, 10_008, 1 << 24])
def test_chunked_streaming_matches_one_chunk(chunk, tmp_path):
    V, n = 50, 10_007
    toks = markov_tokens(n, V, stay=0.3, seed=3).astype(np.uint16)
    toks.tofile(tmp_path / "t.bin")
    memmap = np.memmap(tmp_path / "t.bin", dtype=np.uint16, mode="r")
    whole = mix.domain_entropies(toks, V, chunk=n)
    part = mix.domain_entropies(memmap, V, chunk=chunk)
    for k in ("tokens", "SE", "JE", "CE"):  # same counts -> same sums: boundary pairs counted exactly once
        assert part[k] == pytest.approx(whole[k], rel=1e-13, abs=1e-15)


def test_entropies_reject_bad_tokens():
    with pytest.raises(ValueError, match="outside"):
        mix.domain_entropies(np.array([1, 2, 70], dtype=np.uint16), vocab_size=64)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        mix.domain_entropies(np.array([1], dtype=np.uint16), vocab_size=64)


def test_entropy_mixture_is_softmax():
    H = {"a": 1.0, "b": 2.5, "c": -0.3}
    e = np.exp(list(H.values()))
    r = mix.entropy_mixture(H)
    assert list(r) == list(H)
    assert np.allclose(list(r.values()), e / e.sum(), rtol=1e-14)
    # shift invariant and overflow-free
    r_big = mix.entropy_mixture({d: h + 1000.0 for d, h in H.items()})
    assert np.allclose(list(r_big.values()), list(r.values()), rtol=1e-12)


# -------------------------------------------------------------------------------------------------------------
# resolve_mixture


@pytest.fixture
def dataset(tmp_path):
    """three domains of different size and predictability (CE: noisy > markov > chain)."""
    V = 64
    return write_dataset(tmp_path / "ds", {
        "noisy": np.random.default_rng(5).integers(0, V, size=6000),
        "markov": markov_tokens(3000, V, stay=0.7, seed=6),
        "chain": np.arange(1000) % V,
    }, vocab_size=V)


def test_resolve_natural_uniform(dataset):
    nat = {"noisy": 0.6, "markov": 0.3, "chain": 0.1}
    for spec in (None, "natural", " Natural "):
        r = mix.resolve_mixture(spec, dataset)
        assert list(r) == ["noisy", "markov", "chain"]
        assert r == pytest.approx(nat, rel=1e-12)
    assert mix.resolve_mixture("uniform", dataset) == pytest.approx({d: 1 / 3 for d in nat})


def test_resolve_entropy_mixture_and_cache(dataset, monkeypatch):
    r = mix.resolve_mixture("ce", dataset)
    meta = json.loads((dataset / "meta.json").read_text())
    ce = {d: mix.domain_entropies(np.fromfile(dataset / d / "train.bin", dtype=np.uint16), meta["vocab_size"])["CE"]
          for d in meta["domains"]}
    assert r == pytest.approx(mix.entropy_mixture(ce), rel=1e-12)
    assert ce["chain"] == 0.0 and r["noisy"] > r["markov"] > r["chain"]
    assert sum(r.values()) == pytest.approx(1.0, abs=1e-12)
    cache = json.loads((dataset / "entropy.json").read_text())
    assert cache["domains"]["noisy"]["train_bin_bytes"] == 6000 * 2

    # cached: a second resolve computes nothing
    def boom(*a, **k):
        raise AssertionError("recomputed despite the cache")
    monkeypatch.setattr(mix, "domain_entropies", boom)
    assert mix.resolve_mixture("ce", dataset) == r
    assert mix.resolve_mixture("se", dataset)["noisy"] > 0
    # a domain whose train.bin changed size is recomputed
    np.arange(2000, dtype=np.uint16).__mod__(64).astype(np.uint16).tofile(dataset / "chain" / "train.bin")
    with pytest.raises(AssertionError, match="recomputed"):
        mix.resolve_mixture("ce", dataset)


def test_resolve_explicit_dict(dataset):
    r = mix.resolve_mixture({"noisy": 0.25, "chain": 0.75}, dataset)
    assert r == {"noisy": 0.25, "markov": 0.0, "chain": 0.75}  # missing domain gets 0
    assert mix.resolve_mixture('{"noisy": 0.5, "markov": 0.5}', dataset)["markov"] == 0.5  # --mixture=... string
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rounding slack within SUM_TOLERANCE: normalised silently
        r = mix.resolve_mixture({"noisy": 0.3333, "markov": 0.3333, "chain": 0.3333}, dataset)
    assert sum(r.values()) == pytest.approx(1.0, abs=1e-15)
    with pytest.warns(UserWarning, match="sum to 2.*normalising"):
        r = mix.resolve_mixture({"noisy": 1, "markov": 1}, dataset)
    assert r == {"noisy": 0.5, "markov": 0.5, "chain": 0.0}


def test_resolve_errors(dataset, tmp_path):
    valid = r"valid domains are \['noisy', 'markov', 'chain'\]"
    with pytest.raises(ValueError, match=r"unknown domain\(s\) \['wiki'\]; " + valid):
        mix.resolve_mixture({"wiki": 1.0}, dataset)
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        mix.resolve_mixture({"noisy": 1.2, "markov": -0.2}, dataset)
    with pytest.raises(ValueError, match="must be finite"):
        mix.resolve_mixture({"noisy": float("nan")}, dataset)
    with pytest.raises(ValueError, match="all proportions are zero"):
        mix.resolve_mixture({"noisy": 0, "markov": 0.0}, dataset)
    with pytest.raises(ValueError, match="must be numbers"):
        mix.resolve_mixture({"noisy": "0.5"}, dataset)
    with pytest.raises(ValueError, match="is unknown; use one of natural, uniform"):
        mix.resolve_mixture("entropy", dataset)
    with pytest.raises(ValueError, match="nowhere does not exist: build it first"):
        mix.resolve_mixture("uniform", tmp_path / "nowhere")

    ds = write_dataset(tmp_path / "with_empty", {"a": np.arange(500) % 64, "empty": np.zeros(0)})
    assert mix.resolve_mixture("natural", ds) == {"a": 1.0, "empty": 0.0}
    assert mix.resolve_mixture({"a": 1.0}, ds) == {"a": 1.0, "empty": 0.0}
    with pytest.raises(ValueError, match="'empty' has 0 train tokens"):
        mix.resolve_mixture({"a": 0.5, "empty": 0.5}, ds)
    for spec in ("uniform", "ce"):
        with pytest.raises(ValueError, match=r"\['empty'\] have 0 train tokens"):
            mix.resolve_mixture(spec, ds)


# -------------------------------------------------------------------------------------------------------------
# BiMix law, fit, optimum


def domain_points(obs, d):
    """(r, s, loss) arrays of one domain's observations."""
    return tuple(np.array([o[k] for o in obs if o[0] == d]) for k in (1, 2, 3))


def sum_squares(params, r, s, L, log=False):
    """The two fit objectives: sum of squared loss residuals (the paper's) or of squared log-loss residuals."""
    pred = mix.bimix_loss(params, r, s)
    res = np.log(pred) - np.log(L) if log else pred - L
    return float(res @ res)


@pytest.mark.parametrize("objective", ["loss", "log"])
def test_fit_recovers_coefficients_noise_free(objective):
    params = mix.fit_bimix(synthetic_observations(), objective=objective)
    for d, t in TRUE.items():
        p = params[d]
        assert p["C"] == 1.0 and p["objective"] == objective  # reported gauge, and what was minimised
        # identifiable: alpha, beta, A*B, A*C (A, B, C alone are defined only up to (kA, B/k, C/k))
        for got, want in [(p["alpha"], t["alpha"]), (p["beta"], t["beta"]),
                          (p["A"] * p["B"], t["A"] * t["B"]), (p["A"] * p["C"], t["A"] * t["C"])]:
            assert abs(got / want - 1) < 0.01
        assert p["n"] == 40 and p["mre"] < 1e-6 and p["r2_log"] > 1 - 1e-9


def test_a_fit_that_runs_to_a_pure_power_law_in_s_does_not_overflow():
    """Real points (tests/fixtures/bimix_overflow_points.json: the CPU-scale BiMix proxies of seed 1337, s < 1024)
    on which domain c's fit runs to C -> 0 next to B / s^beta (a pure power law in s); the gauge C = 1 then needs
    B = e^(>709), which raised OverflowError. The fit must return finite coefficients (the gauge B = 1) that
    reproduce the points, and an optimum mixture."""
    with open(os.path.join(os.path.dirname(__file__), "fixtures", "bimix_overflow_points.json")) as f:
        obs = [tuple(o) for o in json.load(f)]
    params = mix.fit_bimix(obs)
    for d, p in params.items():
        assert all(math.isfinite(p[k]) for k in ("A", "B", "C", "alpha", "beta")), (d, p)
        assert p["mre"] < 0.02 and p["r2_log"] > 0.95
    assert params["c"]["B"] == 1.0  # this domain took the other gauge
    r = mix.optimal_mixture(params, 1024)
    assert abs(sum(r.values()) - 1) < 1e-6 and all(0 < v < 1 for v in r.values())


def test_default_fit_is_least_squares_on_the_loss_and_differs_from_the_log_fit():
    """On noisy data the two objectives have different minima: the default (the paper's) attains the smaller sum of
    squared loss residuals, the log fit the smaller sum of squared log residuals; neither optimum is the other's."""
    obs = synthetic_observations(noise=0.01, seed=1)
    default, loss, log = mix.fit_bimix(obs), mix.fit_bimix(obs, objective="loss"), mix.fit_bimix(obs, objective="log")
    for d in TRUE:
        r, s, L = domain_points(obs, d)
        assert default[d] == loss[d] and default[d]["objective"] == "loss"
        # margins 5e-4 relative: the optima differ by 1.4e-3 to 2.8e-3 in either objective on this data
        assert sum_squares(loss[d], r, s, L) < sum_squares(log[d], r, s, L) * (1 - 5e-4)
        assert sum_squares(log[d], r, s, L, log=True) < sum_squares(loss[d], r, s, L, log=True) * (1 - 5e-4)


def test_fit_matches_scipy_trust_region_reflective():
    """The paper fits with SciPy's least_squares(method="trf") on the loss; the hand-written default fit must reach
    the same minimum on the same data (cost and the identifiable alpha, beta, A B, A C). Skipped without SciPy,
    which nanogrow does not need."""
    optimize = pytest.importorskip("scipy.optimize")
    obs = synthetic_observations(noise=0.01, seed=1)
    params = mix.fit_bimix(obs)
    for d in TRUE:
        r, s, L = domain_points(obs, d)

        def residuals(x):  # the paper's form and coefficients (A, B, C, alpha, beta), residuals on the loss
            A, B, C, alpha, beta = x
            return A / r ** alpha * (B / s ** beta + C) - L
        # a neutral start, not ours: TRF with A, B, C, beta >= 0 (the law's signs), tight tolerances
        sol = optimize.least_squares(residuals, x0=[L.mean(), 1.0, 1.0, 0.1, 0.5], method="trf",
                                     bounds=([0, 0, 0, -np.inf, 0], np.inf), xtol=1e-15, ftol=1e-15, gtol=1e-15)
        A, B, C, alpha, beta = sol.x
        p = params[d]
        assert sum_squares(p, r, s, L) == pytest.approx(2 * sol.cost, rel=1e-9)  # scipy's cost is half the sum
        for got, want in [(p["alpha"], alpha), (p["beta"], beta), (p["A"] * p["B"], A * B), (p["A"] * p["C"], A * C)]:
            assert got == pytest.approx(want, rel=1e-5)


def test_fit_with_one_percent_noise_predicts_unseen_mixtures():
    params = mix.fit_bimix(synthetic_observations(noise=0.01, seed=0))
    for d in TRUE:
        assert params[d]["mre"] < 0.015 and params[d]["r2_log"] > 0.97
    # unseen mixtures, inside and 2x beyond the fitted steps: predictions within 3% of the true law
    for m in [(0.1, 0.3, 0.6), (0.45, 0.45, 0.1), (0.7, 0.15, 0.15)]:
        mixture = dict(zip(TRUE, m))
        for s in (1000, 32000, 64000):
            got, want = mix.predict_losses(params, mixture, s), mix.predict_losses(TRUE, mixture, s)
            for d in TRUE:
                assert abs(got[d] / want[d] - 1) < 0.03
    # the optimum of the noisy fit is near the true optimum and nearly as good under the true law
    s = 32000
    opt_fit, opt_true = mix.optimal_mixture(params, s), mix.optimal_mixture(TRUE, s)
    assert all(abs(opt_fit[d] - opt_true[d]) < 0.03 for d in TRUE)
    assert mean_loss(TRUE, opt_fit, s) < mean_loss(TRUE, opt_true, s) * 1.001


def test_optimal_mixture_stationarity_and_beats_alternatives():
    params = mix.fit_bimix(synthetic_observations())
    for s in (1000, 32000, 1e6):
        opt = mix.optimal_mixture(params, s)
        r = np.array([opt[d] for d in TRUE])
        assert r.sum() == pytest.approx(1.0, abs=1e-12) and (r > 0).all()
        # stationarity of the Lagrangian: alpha_i K_i / r_i^(alpha_i + 1) is the same lambda for every domain
        lam = [params[d]["alpha"] * params[d]["A"] * (params[d]["B"] * s ** -params[d]["beta"] + params[d]["C"])
               / opt[d] ** (params[d]["alpha"] + 1) for d in TRUE]
        assert np.allclose(lam, lam[0], rtol=1e-9)
        best = mean_loss(params, opt, s)
        alternatives = [{d: 1 / 3 for d in TRUE}]
        for dom in TRUE:  # one domain dominant
            alternatives.append({d: 0.98 if d == dom else 0.01 for d in TRUE})
        for m in np.random.default_rng(7).dirichlet(np.ones(3), size=200):
            alternatives.append(dict(zip(TRUE, m)))
        for alt in alternatives:
            assert best < mean_loss(params, alt, s)


def test_optimal_mixture_single_domain_and_errors():
    assert mix.optimal_mixture({"only": TRUE["web"]}, 1000) == {"only": 1.0}
    with pytest.raises(ValueError, match="alpha <= 0"):
        mix.optimal_mixture({"a": TRUE["web"], "b": dict(TRUE["code"], alpha=-0.01)}, 1000)
    with pytest.raises(ValueError, match="unknown domain"):
        mix.predict_losses(TRUE, {"wiki": 1.0}, 1000)
    assert mix.predict_losses(TRUE, {"web": 1.0}, 1000)["code"] == float("inf")


def test_fit_errors():
    obs = synthetic_observations()
    few = [o for o in obs if o[0] != "web"] + [o for o in obs if o[0] == "web"][:4]
    with pytest.raises(ValueError, match="'web': too few observations \\(4 points"):
        mix.fit_bimix(few)
    one_r = [o for o in obs if o[0] == "web" and o[1] == 0.2]  # 16 points, but r is always 0.2
    with pytest.raises(ValueError, match="1 distinct r.*>= 2 distinct proportions"):
        mix.fit_bimix(one_r)
    one_s = [o for o in obs if o[0] == "web" and o[2] == 1000]
    with pytest.raises(ValueError, match="1 distinct s"):
        mix.fit_bimix(one_s)
    for i, name in ((1, "r"), (2, "s"), (3, "loss")):
        bad = list(obs)
        bad[0] = tuple(0.0 if j == i else v for j, v in enumerate(bad[0]))
        with pytest.raises(ValueError, match=f"{name} must be finite and > 0"):
            mix.fit_bimix(bad)
    with pytest.raises(ValueError, match="expected \\(domain, r, s, loss\\)"):
        mix.fit_bimix([("web", 0.5, 100)])
    with pytest.raises(ValueError, match="no observations"):
        mix.fit_bimix([])
    with pytest.raises(ValueError, match="objective='l2' is unknown; use 'loss'"):
        mix.fit_bimix(obs, objective="l2")
    two_s = [o for o in obs if o[0] == "web" and o[2] in (1000, 2000)]
    with pytest.warns(UserWarning, match="only 2 distinct steps"):
        mix.fit_bimix(two_s)


# -------------------------------------------------------------------------------------------------------------
# reading runs, CLI


def write_run(run_dir, mixture, s_list, noise=0.0, seed=0, extra_lines=()):
    """A fake train.py out_dir (docs/training.md): config.json + metrics.jsonl with losses from TRUE."""
    rng = np.random.default_rng(seed)
    os.makedirs(run_dir)
    (run_dir / "config.json").write_text(json.dumps({"mixture": mixture, "learning_rate": 6e-4}))
    lines = []
    for s in s_list:
        lines.append({"iter": s, "tokens": s * 1024, "flops": 1.0, "train_loss": 3.0, "lr": 1e-3,
                      "tokens_per_s": 1.0, "mfu": 0.1})
        val = {d: (mix.bimix_loss(TRUE[d], r, s) * (1 + noise * rng.standard_normal()) if r > 0 and s > 0
                   else 10.8) for d, r in mixture.items()}
        lines.append({"iter": s, "tokens": s * 1024, "flops": 1.0, "val_loss": val,
                      "val_loss_mean": float(np.mean(list(val.values()))), "mixture": mixture})
    text = "".join(json.dumps(l) + "\n" for l in lines) + "".join(extra_lines)
    (run_dir / "metrics.jsonl").write_text(text)
    return run_dir


def test_observations_from_runs(tmp_path):
    m = {"web": 0.5, "code": 0.3, "books": 0.2}
    grow = json.dumps({"event": "grow", "iter": 500, "tokens": 1, "flops": 1, "before": {}, "after": {}}) + "\n"
    dup = json.dumps({"iter": 1000, "tokens": 1, "flops": 1, "val_loss": {"web": 1.234}, "val_loss_mean": 1.2})
    run = write_run(tmp_path / "run1", m, [0, 500, 1000], extra_lines=[grow, dup + "\n", '{"iter": 15'])
    with pytest.warns(UserWarning, match=r"metrics.jsonl:\d+ is not valid JSON"):
        obs = mix.observations_from_runs([run])
    assert all(s > 0 for _, _, s, _ in obs)  # iter 0 skipped
    assert ("web", 0.5, 500.0, pytest.approx(mix.bimix_loss(TRUE["web"], 0.5, 500))) in obs
    assert [o for o in obs if o[2] == 1000] == [("web", 0.5, 1000.0, 1.234)]  # re-evaluated iter: last line wins
    # a domain left out of a run (r = 0) gives no points
    run0 = write_run(tmp_path / "run0", {"web": 0.6, "code": 0.4, "books": 0.0}, [100, 200])
    assert {o[0] for o in mix.observations_from_runs(str(run0))} == {"web", "code"}
    nan_line = json.dumps({"iter": 300, "val_loss": {"web": float("nan"), "code": 2.0}, "val_loss_mean": float("nan")}) + "\n"
    run_nan = write_run(tmp_path / "run_nan", {"web": 0.5, "code": 0.5}, [100], extra_lines=[nan_line])
    with pytest.warns(UserWarning, match="skipped 1 non-finite"):
        assert [o[2] for o in mix.observations_from_runs([run_nan])] == [100.0, 100.0, 300.0]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"mixture": "natural"}))
    with pytest.raises(ValueError, match="expected the resolved dict"):
        mix.observations_from_runs([tmp_path / "bad"])
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        mix.observations_from_runs([tmp_path / "missing"])
    # runs of two datasets (or vocabularies) never share a fit
    for name, data, vocab in (("a", "pybytes", 256), ("b", "pycorpus", None), ("c", "pybytes", 256)):
        write_run(tmp_path / name, {"web": 0.5, "code": 0.5}, [100])
        cfg = json.loads((tmp_path / name / "config.json").read_text())
        (tmp_path / name / "config.json").write_text(json.dumps(dict(cfg, dataset=data, vocab_size=vocab)))
    assert len(mix.observations_from_runs([tmp_path / "a", tmp_path / "c"])) == 4  # 2 runs x 2 domains
    with pytest.raises(ValueError, match=r"different datasets or vocabularies; fit the runs of one: .*pybytes "
                                         r"\(vocab_size 256\): .*a, .*c; .*pycorpus \(vocab_size None\): .*b"):
        mix.observations_from_runs([tmp_path / "a", tmp_path / "b", tmp_path / "c"])


def test_fit_from_runs_and_cli(tmp_path, capsys):
    runs = [str(write_run(tmp_path / f"run{i}", dict(zip(TRUE, m)), [0] + STEPS, noise=0.002, seed=i))
            for i, m in enumerate(MIXES)]
    params = mix.fit_bimix(mix.observations_from_runs(runs))
    for d in TRUE:
        assert abs(params[d]["alpha"] / TRUE[d]["alpha"] - 1) < 0.05
    mix.main(["--fit", *runs, "--steps", "64000"])
    out = capsys.readouterr().out
    line = [l for l in out.splitlines() if l.startswith("mixture = ")][0]
    pasted = eval(line[len("mixture = "):])
    assert set(pasted) == set(TRUE) and sum(pasted.values()) == pytest.approx(1.0, abs=1e-9)
    assert pasted == pytest.approx(mix.optimal_mixture(params, 64000), abs=1e-4)
    assert "s=64000" in out and "optimal" in out and "squared loss residuals (the paper's)" in out
    mix.main(["--fit", *runs, "--objective", "log"])
    assert "squared log-loss residuals" in capsys.readouterr().out


def test_cli_entropy_table(dataset, capsys):
    mix.main([str(dataset)])
    out = capsys.readouterr().out
    for word in ("noisy", "markov", "chain", "SE", "JE", "CE", "natural", "r_CE", "6,000"):
        assert word in out


def test_resolve_every_spec_on_real_text(tiny_dataset):
    """conftest's byte-level dataset of stdlib code and prose: every spec gives a proper mixture."""
    for spec in mix.MIXTURE_SPECS:
        r = mix.resolve_mixture(spec, tiny_dataset)
        assert set(r) == {"code", "prose"} and sum(r.values()) == pytest.approx(1.0, abs=1e-12)
        assert all(0 < v < 1 for v in r.values())
    ents = mix.dataset_entropies(tiny_dataset)
    for d in ("code", "prose"):
        e = ents[d]
        assert 0 < e["CE"] < e["SE"] < e["JE"] <= 2 * e["SE"] + 1e-9  # H(Y|X) <= H(Y), H(X,Y) <= H(X) + H(Y)
