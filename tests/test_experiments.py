"""The experiment scripts (experiments/*.py) end to end at --scale tiny on the byte-level two-domain dataset, and
every config/*.py against train.py's settings. The three pipelines run concurrently (one module-level fixture), each
with a reduced arm list: the whole file takes ~30-60 s on 2 CPU cores."""
import ast
import glob
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO, read_metrics
from configurator import apply_overrides
from experiments import common

ARMS = {"gstack": "scratch,gstack,depth_zero",
        "inheritune": "reference,inherit,scratch_T,search",
        "bimix": "natural,uniform,ce,fitted"}
EXTRA = {"bimix": ["--tilt", "0.7"]}  # a tilted proxy per domain as well


def script(name, out, dataset, arms, extra=()):
    return [sys.executable, os.path.join(REPO, "experiments", f"{name}.py"), "--scale", "tiny", "--out", str(out),
            "--dataset", dataset, "--arms", arms, *extra]


def start(cmd, log_path):
    log = open(log_path, "w")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env), log


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory):
    """All three experiments at once (2 cores, single-threaded processes); {name: out_dir}."""
    root = tmp_path_factory.mktemp("experiments")
    procs = {}
    for name, arms in ARMS.items():
        procs[name] = start(script(name, root / name, tiny_dataset, arms, EXTRA.get(name, ())), root / f"{name}.log")
    deadline = time.time() + 600
    for name, (p, log) in procs.items():
        rc = p.wait(timeout=max(1, deadline - time.time()))
        log.close()
        if rc != 0:
            pytest.fail(f"experiments/{name}.py failed ({rc}):\n" + (root / f"{name}.log").read_text()[-4000:])
    return {name: root / name for name in ARMS}


def results(out):
    with open(out / "results.json") as f:
        return json.load(f)


def last_eval(run_dir):
    return [m for m in read_metrics(run_dir) if "val_loss" in m][-1]


def md_rows(out):
    text = (out / "results.md").read_text()
    return {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")}


def test_gstack_pipeline(runs, tiny_dataset):
    out = runs["gstack"]
    res = results(out)
    arms = res["arms"]
    assert list(arms) == ["scratch", "gstack", "depth_zero"]
    assert {"scratch", "gstack", "depth_zero"} <= md_rows(out)
    for arm, row in arms.items():  # the table holds what the runs logged
        ev = last_eval(out / arm)
        assert row["val_loss_mean"] == ev["val_loss_mean"] and row["flops"] == ev["flops"], arm
        assert row["iter"] == 40
    # the grown arms grew 2 -> 8 layers after d = 2560 tokens; scratch never grew
    for arm in ("gstack", "depth_zero"):
        grows = [m for m in read_metrics(out / arm) if m.get("event") == "grow"]
        assert len(grows) == 1 and grows[0]["before"]["n_layer"] == 2 and grows[0]["after"]["n_layer"] == 8
        assert grows[0]["tokens"] == 2560 and grows[0]["op"] == ("direct" if arm == "gstack" else "zero")
    assert not [m for m in read_metrics(out / "scratch") if m.get("event")]
    # FLOPs include the small phase: equal tokens, fewer FLOPs than scratch, and exactly the small phase's FLOPs
    # plus the large model's (= scratch's per-token cost) for the tokens after growth
    s, g = arms["scratch"], arms["gstack"]
    assert s["tokens"] == g["tokens"] == 40 * 8 * 32
    assert 0 < g["flops"] < s["flops"]
    grow_flops = g["grow_events"][0]["flops"]
    assert grow_flops > 0
    per_token_big = s["flops"] / s["tokens"]
    assert g["flops"] - grow_flops == pytest.approx(per_token_big * (g["tokens"] - 2560), rel=1e-9)
    # the speedup is eval.compare_runs' against scratch's final loss; scratch against itself is 0
    assert res["comparison"]["target"] == s["val_loss_mean"]
    assert arms["scratch"]["speedup"] == pytest.approx(0.0)
    assert any(c.startswith("Gstack ") for c in res["claims"])
    # the speedup in the paper's convention: a small-model token counts 1/g; scratch counts its tokens
    assert g["g"] == 4.0 and s["g"] == 1.0
    assert g["paper_tokens"] == pytest.approx(2560 / 4 + (40 * 8 * 32 - 2560)) and s["paper_tokens"] == s["tokens"]
    assert s["paper_speedup"] == pytest.approx(0.0)
    if g["paper_speedup"] is not None:  # reached the target: the same sign as the exact-FLOPs speedup
        assert g["paper_tokens_to_target"] < g["paper_tokens"] and (g["paper_speedup"] > 0) == (g["speedup"] > 0)
    md = (out / "results.md").read_text()
    assert "speedup, exact FLOPs" in md and "speedup, paper tokens (small token = 1/g)" in md
    assert "Eq. 2" in md and "val bpb" in md
    assert s["val_bpb_mean"] == pytest.approx(sum(s["val_bpb"].values()) / len(s["val_bpb"]))
    for key in ("command", "device", "date"):
        assert res[key] and key in (out / "results.md").read_text()
    assert res["plot"] or "matplotlib" in res["plot_note"]

    # resumable: a second call reuses every finished arm and trains nothing
    logs = {a: (out / a / "train.log").read_text() for a in arms}
    p = subprocess.run(script("gstack", out, tiny_dataset, ARMS["gstack"]), cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("finished earlier") == 3
    assert all((out / a / "train.log").read_text() == logs[a] for a in arms)
    # a different setting for the same folder is refused instead of mixing runs
    p = subprocess.run(script("gstack", out, tiny_dataset, "scratch", ["--learning_rate=1e-3"]), cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "other settings" in p.stderr


def test_inheritune_pipeline(runs):
    out = runs["inheritune"]
    res = results(out)
    arms = res["arms"]
    assert list(arms) == ["reference", "inherit", "scratch_T"]
    assert {"reference", "inherit", "scratch_T"} <= md_rows(out)
    assert res["n_layer_reference"] == 4 and res["n_layer_small"] == 2 and res["T"] == 30
    for arm, row in arms.items():
        ev = last_eval(out / arm)
        assert row["val_loss_mean"] == ev["val_loss_mean"] and row["iter"] == 30
    cfg = json.loads((out / "inherit" / "config.json").read_text())
    assert cfg["init_from"] == "inherit" and cfg["inherit_n_layer"] == 2
    assert cfg["inherit_from"] == str(out / "reference")
    # inherited weights already help before training: at iter 0 the inherited model is far below a fresh one
    first = {a: [m for m in read_metrics(out / a) if "val_loss" in m][0]["val_loss_mean"]
             for a in ("inherit", "scratch_T")}
    assert first["inherit"] < first["scratch_T"] - 0.5, first
    assert any("vs scratch 2 layers, both at T=30" in c for c in res["claims"])
    # the search (inherit.search): one round at n = L/2 = 2 (n + 2 reaches L), compared with the reference
    search = res["search"]
    assert [r["n_layer"] for r in search["rounds"]] == [2] and search["result"] is not None
    rnd = search["rounds"][0]
    assert rnd["val_loss"] == last_eval(rnd["run_dir"])["val_loss_mean"]
    assert rnd["matched"] == (rnd["val_loss"] <= arms["reference"]["val_loss_mean"])
    assert "Inheritune search" in (out / "results.md").read_text()
    # attention rank per layer (the paper's "more attentive"): one MaxRank per layer, between 1 and T = block_size
    for arm, layers in (("reference", 4), ("inherit", 2), ("scratch_T", 2)):
        ranks = arms[arm]["max_rank"]
        assert len(ranks) == layers and all(1 <= r <= 32 for r in ranks), (arm, ranks)
    assert "| inherit | 2 |" in (out / "results.md").read_text().split("## Attention rank")[1]
    # the reference trained further: the arm inherited from it is out of date, and is not silently reused
    subprocess.run([sys.executable, "train.py", f"--out_dir={out / 'reference'}", "--init_from=resume",
                    "--max_iters=40", "--eval_interval=10"], cwd=REPO, check=True, capture_output=True)
    p = subprocess.run(script("inheritune", out, cfg["dataset"], "inherit"), cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0 and "arm inherit" in p.stderr and "is out of date: it started from" in p.stderr


def test_bimix_pipeline(runs, tiny_dataset):
    out = runs["bimix"]
    res = results(out)
    arms = res["arms"]
    assert list(arms) == ["natural", "uniform", "ce", "tilt_code", "tilt_prose", "fitted"]
    assert set(arms) <= md_rows(out)
    for arm, row in arms.items():
        ev = last_eval(out / arm)
        assert row["val_loss"] == ev["val_loss"] and row["val_loss_mean"] == ev["val_loss_mean"]
        assert row["tokens"] == 30 * 8 * 32 and set(row["val_loss"]) == {"code", "prose"}
    meta = json.loads(open(os.path.join(tiny_dataset, "meta.json")).read())
    total = sum(d["train_tokens"] for d in meta["domains"].values())
    for dom, d in meta["domains"].items():
        assert arms["natural"]["mixture"][dom] == pytest.approx(d["train_tokens"] / total)
        assert arms["uniform"]["mixture"][dom] == pytest.approx(0.5)
    assert arms["ce"]["mixture"] != arms["uniform"]["mixture"]
    # --tilt 0.7 with two domains: 0.7 / 0.3 and 0.3 / 0.7
    assert arms["tilt_code"]["mixture"] == pytest.approx({"code": 0.7, "prose": 0.3})
    assert arms["tilt_prose"]["mixture"] == pytest.approx({"code": 0.3, "prose": 0.7})
    # the fit used the five proxy runs' evaluations at s >= 0.25 x 30 (iter 10..30: 5 per run and domain) and its
    # optimum sums to 1
    fit = res["fit"]
    assert "error" not in fit, fit
    assert [os.path.basename(r) for r in fit["runs"]] == list(arms)[:-1]
    assert fit["n_points"] == 5 * 5 * 2 and fit["steps"] == 30 and fit["fit_from"] == 0.25
    assert sum(fit["mixture"].values()) == pytest.approx(1.0, abs=1e-5)
    assert all(0 < r < 1 for r in fit["mixture"].values())
    ran = json.loads((out / "fitted" / "config.json").read_text())["mixture"]
    assert sum(ran.values()) == pytest.approx(1.0) and ran == pytest.approx(fit["mixture"], abs=1e-5)
    assert any(c.startswith("the CE mixture") for c in res["claims"])
    assert json.loads((out / "fit.json").read_text())["mixture"] == fit["mixture"]
    # the extrapolation check: fitted without the last evaluation (iter 10..25), asked for each proxy's loss at 30
    held = res["heldout"]
    assert "error" not in held, held
    assert held["n_points"] == 5 * 4 * 2 and len(held["points"]) == 5 * 2
    for p in held["points"]:
        ev = last_eval(out / p["run"])
        assert p["s"] == 30 and p["measured"] == ev["val_loss"][p["domain"]]
        assert p["rel_error"] == pytest.approx((p["predicted"] - p["measured"]) / p["measured"])
    assert held["mre"] == pytest.approx(sum(abs(p["rel_error"]) for p in held["points"]) / 10)
    assert "Extrapolation check (last evaluation held out)" in (out / "results.md").read_text()


def test_seeds(tiny_dataset, tmp_path, runs):
    """--seeds 2: every arm twice (seed 1337 in <out>/<arm>, 1338 in <out>/seed1338/<arm>), the tables' means and
    ranges are those of the per-seed numbers, and a second call reuses both seeds' runs. Gstack's two seeds train
    at once (--jobs 2): its seed 1337 is the one-seed run of the same arms to the last digit."""
    arms = {"gstack": "scratch,gstack", "inheritune": "reference,inherit,scratch_2T,search",
            "bimix": "natural,uniform,ce,fitted"}
    procs = {name: start(script(name, tmp_path / name, tiny_dataset, a, ["--seeds", "2"]
                                + (["--jobs", "2"] if name == "gstack" else [])), tmp_path / f"{name}.log")
             for name, a in arms.items()}
    for name, (p, log) in procs.items():
        rc = p.wait(timeout=600)
        log.close()
        assert rc == 0, (tmp_path / f"{name}.log").read_text()[-4000:]
    for name, a in arms.items():
        out = tmp_path / name
        res = results(out)
        assert res["seeds"] == [1337, 1338] and list(res["per_seed"]) == ["1337", "1338"]
        md = (out / "results.md").read_text()
        assert "Mean over 2 seeds" in md and "## Seed 1338 (arms in seed1338/)" in md
        for arm in a.split(","):
            if arm == "search" or any(arm not in s["arms"] for s in res["per_seed"].values()):
                continue  # the search has no run of its own; a fitted arm is not run where its seed's fit failed
            cfgs = [json.loads((d / arm / "config.json").read_text()) for d in (out, out / "seed1338")]
            assert [c["seed"] for c in cfgs] == [1337, 1338]
            losses = [res["per_seed"][sd]["arms"][arm]["val_loss_mean"] for sd in ("1337", "1338")]
            assert losses[0] != losses[1]  # another init and data order
            mean, lo, hi = res["aggregate"][arm]["val_loss_mean"]
            assert mean == pytest.approx(sum(losses) / 2) and (lo, hi) == (min(losses), max(losses))
            assert f"{mean:.4f} [{lo:.4f}, {hi:.4f}]" in md
        assert res["arms"] == res["per_seed"]["1337"]["arms"]  # the first seed's tables at the top level
    g = results(tmp_path / "gstack")
    sp = [g["per_seed"][sd]["arms"]["gstack"]["speedup"] for sd in ("1337", "1338")]
    agg = g["aggregate"]["gstack"]["speedup"]
    if None not in sp:  # each seed's speedup is against its own scratch run
        assert agg[0] == pytest.approx(sum(sp) / 2)
    for arm in ("scratch", "gstack"):
        assert g["per_seed"]["1337"]["arms"][arm]["val_loss"] == results(runs["gstack"])["arms"][arm]["val_loss"]
    inh = results(tmp_path / "inheritune")
    assert json.loads((tmp_path / "inheritune" / "seed1338" / "inherit" / "config.json").read_text())[
        "inherit_from"] == str(tmp_path / "inheritune" / "seed1338" / "reference")
    margins = inh["aggregate"]["inherit_vs_scratch_2T"]["margin"]
    assert margins == pytest.approx([inh["per_seed"][sd]["arms"]["scratch_2T"]["val_loss_mean"]
                                     - inh["per_seed"][sd]["arms"]["inherit"]["val_loss_mean"]
                                     for sd in ("1337", "1338")])
    rounds = inh["per_seed"]["1338"]["search"]["rounds"]
    assert rounds[0]["run_dir"] == str(tmp_path / "inheritune" / "seed1338" / "search" / "n2")
    assert json.loads((tmp_path / "inheritune" / "seed1338" / "search" / "n2" / "config.json").read_text())[
        "seed"] == 1338
    b = results(tmp_path / "bimix")
    assert len(b["aggregate"]["heldout_mre"]) == 2 and all(x is not None for x in b["aggregate"]["heldout_mre"])
    fits = [json.loads((d / "fit.json").read_text()) for d in (tmp_path / "bimix", tmp_path / "bimix" / "seed1338")]
    assert fits[0]["params"] != fits[1]["params"]  # each seed fits its own law
    for sd, f in zip(("1337", "1338"), fits):  # a seed whose optimum does not exist says so and runs no fitted arm
        assert ("fitted" in b["per_seed"][sd]["arms"]) == ("error" not in f)
        assert "fitted" not in b["aggregate"] or b["aggregate"]["fitted"]["values"]["val_loss_mean"] == [
            s["arms"]["fitted"]["val_loss_mean"] for s in b["per_seed"].values() if "fitted" in s["arms"]]
    # rerun: nothing trains again
    p = subprocess.run(script("gstack", tmp_path / "gstack", tiny_dataset, arms["gstack"], ["--seeds", "2"]),
                       cwd=REPO, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
                       timeout=120)
    assert p.returncode == 0 and p.stdout.count("finished earlier") == 4, p.stdout + p.stderr


def test_bimix_fit_failure_is_reported_not_raised(tmp_path, tiny_dataset):
    """Runs too short for the law (one evaluation after iter 0) give a clear reason in the results, no crash."""
    from experiments import bimix
    assert "not found" in bimix.fit([str(tmp_path / "missing")], 10)["error"]
    out = tmp_path / "b"
    for arm, mixture in (("natural", {"code": 0.8, "prose": 0.2}), ("uniform", {"code": 0.5, "prose": 0.5})):
        d = out / arm
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"mixture": mixture}))
        (d / "metrics.jsonl").write_text(json.dumps({"iter": 10, "tokens": 1, "flops": 1.0, "val_loss": {
            "code": 3.0, "prose": 3.5}, "val_loss_mean": 3.25}) + "\n")
    res = bimix.fit([str(out / "natural"), str(out / "uniform")], 10)
    assert "too few observations" in res["error"]
    assert "The BiMix fit failed" in " ".join(bimix.claims({}, res))


def test_bimix_fit_falls_back_to_the_log_objective_when_the_default_overflows(monkeypatch):
    """mix.fit_bimix's default objective can overflow on a degenerate start: the experiment refits once with
    objective='log' and says so in a warning, instead of losing the seed's whole table."""
    import warnings
    from experiments import bimix
    calls = []

    def fake_fit(points, objective="loss"):
        calls.append(objective)
        if objective == "loss":
            raise OverflowError("math range error")
        return {"code": {"objective": objective}}
    monkeypatch.setattr(bimix.mix, "fit_bimix", fake_fit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert bimix.fit_law([("code", 0.5, 10, 3.0)]) == {"code": {"objective": "log"}}
    assert calls == ["loss", "log"] and "refitted with objective='log'" in str(caught[0].message)


def test_bimix_script_reports_a_failed_fit_in_its_table(tmp_path, tiny_dataset):
    """The whole script over three finished proxy runs with one evaluation each (too few points for the law):
    results.md and results.json say why, and the fitted arm is not run. The runs are written by hand (the
    script's own arm records, so it reuses them), so nothing trains."""
    from experiments import bimix
    out = tmp_path / "b"
    meta = json.loads(open(os.path.join(tiny_dataset, "meta.json")).read())
    for arm in bimix.PROXIES:
        d = out / arm
        d.mkdir(parents=True)
        argv = ["config/bimix_tiny.py", f"--dataset={tiny_dataset}", f"--mixture={arm}", f"--out_dir={d}"]
        (d / "arm.json").write_text(json.dumps({"arm": arm, "argv": argv, "last_iter": 30}))
        mixture = {dom: 0.5 for dom in meta["domains"]}
        (d / "config.json").write_text(json.dumps({"mixture": mixture, "n_layer": 2, "n_embd": 32, "arch": "gpt2",
                                                   "gelu_approximate": "none"}))
        line = {"iter": 30, "tokens": 7680, "flops": 1e9, "val_loss": {"code": 3.0, "prose": 3.5},
                "val_loss_mean": 3.25, "mixture": mixture}
        (d / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    data = bimix.main(["--out", str(out), "--dataset", tiny_dataset])
    assert "too few observations" in data["fit"]["error"] and "fitted" not in data["arms"]
    assert not (out / "fitted").exists()
    md = (out / "results.md").read_text()
    assert "| fitted |" in md and "not run: fit failed" in md and "The BiMix fit failed" in md


def test_gpu_arms_are_valid_train_settings(tmp_path, capsys):
    """--dry_run builds every arm's train.py command at --scale gpu and checks it against train.py's settings."""
    from experiments import bimix, gstack, inheritune
    for mod in (gstack, inheritune, bimix):
        assert mod.main(["--scale", "gpu", "--out", str(tmp_path / mod.__name__), "--dry_run"]) is None
    for name in gstack.ABLATIONS:
        assert gstack.main(["--scale", "gpu", "--out", str(tmp_path / "g"), "--ablation", name, "--dry_run"]) is None
    printed = capsys.readouterr().out
    for arm in gstack.ARMS + inheritune.ARMS + bimix.ARMS:
        assert f"[{arm}]" in printed or arm in ("depth_direct", "ablation_full"), arm  # aliases share a run
    g, ref = common.resolve(["config/gstack_gpu.py"]), common.resolve(["config/inheritune_gpu.py"])
    assert (f"--n_embd={g['n_embd'] // 2} --n_head={g['n_head'] // 2} --intermediate_size="
            f"{gstack.intermediate(g) // 2}") in printed                      # widthwise: half width, head_dim kept
    assert f"--n_layer={ref['n_layer'] // 2} --max_iters={2 * common.final_iter(ref)}" in printed  # scratch_2T
    # the ablations: MIDAS grows by the base's size at 10%, 30% and 60% of the budget (stage k trains in proportion
    # to k), gradual doubles twice reaching L at d, the budget arms train 4x the steps with the same d
    L0, d, B = g["n_layer"], g["grow_at_tokens"], common.final_iter(g) * common.tokens_per_iter(g)
    assert g["grow_factor"] == 4 and f"'--grow_at_tokens=[{B // 10},{B * 3 // 10},{B * 6 // 10}]'" in printed
    assert "'--grow_layer_map=" + str(gstack.grow.midas_layer_maps(L0, L0, 3)).replace(" ", "") + "'" in printed
    assert f"'--grow_at_tokens=[{d // 2},{d}]' --grow_dim=depth --grow_op=direct --grow_factor=2" in printed
    assert f"--grow_factor=4 --max_iters={4 * g['max_iters']}" in printed
    assert f"--n_layer={L0 * 4 // 8} --grow_at_tokens={d} --grow_dim=depth --grow_op=direct --grow_factor=8" in printed


def test_inheritune_gap_against_T(tmp_path, tiny_dataset):
    """--gap runs the headline arms at each T (F = 1 in --out itself) and reports, per T and seed, inherit -
    scratch_2T and reference - scratch_T from the arms' own final losses."""
    from experiments import inheritune
    out = tmp_path / "gap"
    data = inheritune.main(["--scale", "tiny", "--out", str(out), "--dataset", tiny_dataset, "--gap", "0.5,1",
                            "--max_iters=20", "--eval_interval=5"])
    assert sorted(data["gaps"]) == [10, 20] and sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "T10", "gap", "inherit", "reference", "scratch_2T", "scratch_T"]
    for T, run in ((10, out / "T10"), (20, out)):
        loss = {a: last_eval(run / a)["val_loss_mean"] for a in inheritune.HEADLINE}
        assert last_eval(run / "scratch_2T")["iter"] == 2 * T
        assert data["gaps"][T]["inherit_minus_scratch_2T"] == [loss["inherit"] - loss["scratch_2T"]]
        assert data["gaps"][T]["reference_minus_scratch_T"] == [loss["reference"] - loss["scratch_T"]]
    assert "| 10 | 2,560 |" in (out / "gap" / "results.md").read_text()
    # scratch at T = 20 is scratch_2T of T = 10 (the same settings): copied, not trained again
    arm = json.loads((out / "scratch_T" / "arm.json").read_text())
    assert arm["same_as"] == str(out / "T10" / "scratch_2T") and arm["wall_s"] == 0.0
    assert read_metrics(out / "scratch_T") == read_metrics(out / "T10" / "scratch_2T")


def settings_block_names():
    """Names assigned in train.py between '# settings' and 'setting_names =', found by parsing (not running) it."""
    src = open(os.path.join(REPO, "train.py")).read()
    tree = ast.parse(src)
    lines = src.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# settings")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("setting_names =")) + 1
    return {t.id for node in tree.body if isinstance(node, ast.Assign) and start <= node.lineno < end
            for t in node.targets if isinstance(t, ast.Name)}


CONFIGS = sorted(glob.glob(os.path.join(REPO, "config", "*.py")))


def test_train_defaults_are_train_py_settings():
    defaults = common.train_defaults()
    assert set(defaults) == settings_block_names()
    assert defaults["grow_factor"] == 4 and defaults["mixture"] is None and defaults["init_from"] == "scratch"


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_config_loads_with_train_py_defaults(path):
    defaults = common.train_defaults()
    s = apply_overrides(defaults, [path])  # unknown names or wrong types raise ConfigError
    text = open(path).read()
    assert text.startswith("#") and "docs/papers.md" in text and "python " in text  # header: what, how to run, facts
    if s["total_batch_tokens"]:
        assert s["total_batch_tokens"] % (s["batch_size"] * s["block_size"]) == 0
    assert s["n_embd"] % s["n_head"] == 0
    assert common.final_iter(s) > 0


def test_paper_configs_follow_papers_md():
    load = {os.path.basename(p)[:-3]: apply_overrides(common.train_defaults(), [p]) for p in CONFIGS}
    for name, lr in (("gstack_410m", 6e-4), ("gstack_1b", 3e-4)):
        s = load[name]
        assert s["arch"] == "llama" and s["n_layer"] == 6 and s["n_layer"] * s["grow_factor"] == 24
        assert s["grow_dim"] == "depth" and s["grow_op"] == "direct" and s["grow_schedule"] == "restart"
        assert s["block_size"] == 2048 and s["total_batch_tokens"] == 2 ** 21 and s["warmup_iters"] == 3000
        # the grown model's max LR is the paper's, cosine to 0.1x of it; the base trains at 1e-3 as in the code
        assert s["grow_learning_rate"] == lr and s["min_lr"] == pytest.approx(0.1 * lr)
        assert s["learning_rate"] == 1e-3
        assert s["grow_at_tokens"] == 10 ** 10 and s["dataset"] == "slimpajama"
    for name, (L, d, h, lr, batch) in {"inheritune_gpt2_medium": (24, 1024, 16, 3e-4, 393_216),
                                       "inheritune_gpt2_large": (36, 1280, 20, 2e-4, 131_072)}.items():
        s = load[name]
        got = (s["n_layer"], s["n_embd"], s["n_head"], s["learning_rate"], s["total_batch_tokens"])
        assert got == (L, d, h, lr, batch)
        assert s["arch"] == "gpt2" and not s["bias"] and s["dropout"] == 0 and s["scale_attn_by_inverse_layer_idx"]
        assert (s["beta1"], s["beta2"], s["warmup_iters"], s["min_lr"], s["weight_decay"], s["grad_clip"]) == \
            (0.9, 0.95, 2000, 1e-5, 0.1, 1.0)
        assert s["block_size"] == 1024 and s["max_iters"] == 100_000 and s["dataset"] == "openwebtext"
    s = load["bimix_proxy"]
    assert (s["n_layer"], s["n_embd"], s["block_size"], s["total_batch_tokens"]) == (12, 768, 1024, 512 * 1024)


def test_results_keep_no_path_of_this_machine():
    """common.portable: the interpreter as `python`, paths in the repository relative to it, the repository itself
    as `.`, and a neighbouring folder whose name starts like the repository's left alone."""
    repo = common.REPO
    text = (f'{sys.executable} train.py --out_dir={repo}/out/x "{repo}" {repo}2/data '
            f'{json.dumps({"run": os.path.join(repo, "out", "y")})}')
    assert common.portable(text) == f'python train.py --out_dir=out/x "." {repo}2/data {{"run": "out/y"}}'
    assert common.portable(f"cd {repo}/ && ls /mnt/copy{repo}/out") == f"cd . && ls /mnt/copy{repo}/out"


def test_bimix_tilted_proxies_and_the_same_share_check():
    """--tilt: one proxy per domain with that domain's share set; same_share groups the arms that gave a domain the
    same share (within 0.01), whose losses on it the law says must agree."""
    from experiments import bimix
    tilted = bimix.tilted_mixtures(["code", "prose", "c"], 0.6)
    assert list(tilted) == ["tilt_code", "tilt_prose", "tilt_c"]
    assert tilted["tilt_prose"] == pytest.approx({"code": 0.2, "prose": 0.6, "c": 0.2})
    assert all(sum(m.values()) == pytest.approx(1.0) for m in tilted.values())
    rows = {"natural": {"mixture": {"x": 0.195, "y": 0.805}, "val_loss": {"x": 2.1, "y": 1.0}},
            "tilt_y": {"mixture": {"x": 0.2, "y": 0.8}, "val_loss": {"x": 2.0, "y": 1.2}},
            "uniform": {"mixture": {"x": 0.5, "y": 0.5}, "val_loss": {"x": 1.8, "y": 1.3}}}
    groups = bimix.same_share(rows)
    assert [(g["domain"], sorted(g["losses"])) for g in groups] == [("x", ["natural", "tilt_y"]),
                                                                    ("y", ["natural", "tilt_y"])]
    assert [round(g["spread"], 6) for g in groups] == [0.1, 0.2] and groups[0]["share"] == pytest.approx(0.1975)
    assert bimix.same_share({a: rows[a] for a in ("natural", "uniform")}) == []


def test_bimix_tilt_errors_name_the_fix(tiny_dataset, tmp_path):
    from experiments import bimix
    for argv, says in ((["--tilt", "1.5", "--dataset", tiny_dataset], "--tilt=1.5: must be in [0, 1)"),
                       (["--tilt", "0.6", "--dataset", str(tmp_path / "nosuch")], "build it first")):
        with pytest.raises(SystemExit) as e:
            bimix.main(["--scale", "tiny", "--out", str(tmp_path / "out"), "--dry_run"] + argv)
        assert says in str(e.value)
    assert not (tmp_path / "out").exists()
    # a folder whose fitted arm was fitted without tilted proxies: stopped before any proxy trains
    out = tmp_path / "old"
    (out / "fitted").mkdir(parents=True)
    (out / "fitted" / "arm.json").write_text("{}")
    (out / "fit.json").write_text(json.dumps({"runs": [str(out / a) for a in bimix.PROXIES]}))
    with pytest.raises(SystemExit) as e:
        bimix.main(["--scale", "tiny", "--out", str(out), "--tilt", "0.7", "--dataset", tiny_dataset])
    assert "was fitted on the proxies natural, uniform, ce" in str(e.value) and "another --out" in str(e.value)
    assert sorted(p.name for p in out.iterdir()) == ["fit.json", "fitted"]


def test_a_stopped_driver_stops_its_train_py(tiny_dataset, tmp_path):
    """SIGTERM to an experiment script: its running train.py gets SIGTERM too (it writes a checkpoint and exits),
    and the script exits non-zero, the minutes it ran recorded; nothing keeps training behind the user's back.
    Plain log lines say N/total."""
    from test_reliability import _descendants
    out = tmp_path / "inh"
    p, log = start(script("inheritune", out, tiny_dataset, "reference", ["--max_iters=100000"]), tmp_path / "log")
    try:
        t = time.time()
        while "iter 5/100000" not in (tmp_path / "log").read_text():  # the reference is training
            assert p.poll() is None and time.time() - t < 120, (tmp_path / "log").read_text()
            time.sleep(0.1)
        child = _descendants(p.pid)
        assert len(child) == 1
        p.terminate()
        assert p.wait(timeout=60) == 128 + 15
    finally:
        p.kill()
        log.close()
    assert not os.path.exists(f"/proc/{child[0]}")  # reaped: the driver waited for it
    text = (tmp_path / "log").read_text()
    assert "[reference] stopped by signal 15" in text and " left" in text
    assert glob.glob(str(out / "reference" / "ckpt_*.pt"))  # its checkpoint: the same command resumes it
    wall = json.loads((out / "reference" / "arm.json").read_text())["wall_s"]
    assert 0 < wall < time.time() - t + 1  # the stopped part's minutes count (a resume adds its own)
