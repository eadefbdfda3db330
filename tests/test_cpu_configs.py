"""The cpu-scale configs (config/<experiment>_cpu.py, `python experiments/<experiment>.py --scale cpu`) keep their
promises on paper: computed from the configs and the experiment scripts' own arm settings, nothing trained.

- the transformer body dominates: embeddings + LM head <= 15% of GPT.flops_per_token for every model an arm trains
  (counted conservatively: the embedding lookups as if they were matmuls too);
- real training: >= 1M tokens per arm;
- the papers' shapes: the Gstack base has L/4 layers and trains to scratch's token budget; the Inheritune arms have
  L/2 layers and T / 2T steps;
- the time: the headline arms of one seed fit 20 minutes on a 2-core CPU at the throughput measured there (Inheritune:
  every arm, the sub-block ablation and every search round included, 30 minutes).

The gpu-scale configs (config/<experiment>_gpu.py, jobs 2-4 of tools/gpu_jobs.py) keep the same promises, larger:
the same corpus, architecture, depth and arms, 8-16x the FLOPs per token and >= 20M tokens per arm, and train.py's
device defaults (so a CPU dry run works with overrides). Their time is the runner's estimate, tested in
tests/test_gpu_jobs.py.
"""
import os

import pytest
import torch

from conftest import REPO
from configurator import apply_overrides, model_args
from experiments import bimix, common, gstack, inheritune
from model import GPT, GPTConfig

MIN_TOKENS = 1_000_000
MAX_EMBED_SHARE = 0.15
# Throughput measured with bench.py (float32, 2 threads) on the 2-core x86 VM these configs were sized on, while
# other jobs shared its cores: 105-123 GFLOP/s of GPT.flops_per_token for every 128-wide shape used here (8-layer
# Llama 9,800 tokens/s x 12.0 MFLOP, 2-layer 36,000 x 3.15, GPT-2 8 / 6 / 4 layers 9,500 x 11.2, 14,500 x 8.46,
# 21,300 x 5.71). The 64-wide Inheritune models run best as two seeds at once (--jobs 2), one thread each: with
# another run beside it each gets 48.6-51.3 GFLOP/s (8 / 4 layers: 17,006 x 2.86 MFLOP, 34,736 x 1.48; bench.py
# --n_layer=8|4 with OMP_NUM_THREADS=1): a seed costs the machine its FLOPs at about 100 GFLOP/s, two at a time.
# The time check takes the low end, and asks for 25% headroom under the limit for process start-up, checkpoints and
# data loading.
CPU_FLOPS_PER_S = {"gstack": 100e9, "inheritune": 100e9, "bimix": 100e9}
LIMIT_S = {"gstack": 20 * 60, "inheritune": 30 * 60, "bimix": 20 * 60}
HEADROOM = 0.75


def cpu_settings(name, extra=(), scale="cpu"):
    return apply_overrides(common.train_defaults(), [os.path.join(REPO, "config", f"{name}_{scale}.py"), *extra])


def gpu_settings(name, extra=()):
    return cpu_settings(name, extra, scale="gpu")


SETTINGS = {"cpu": cpu_settings, "gpu": gpu_settings}
GPU_MIN_TOKENS = 20_000_000


def model(s):
    with torch.device("meta"):  # shapes only: no memory, no init
        return GPT(GPTConfig(**model_args(s)))


def embed_share(s):
    """Embeddings + LM head as a share of the training FLOPs per token, conservatively: every embedding-like matrix
    (token embedding, LM head, GPT-2's position embedding) costs 6 x its size per token as if it were a matmul
    (flops_per_token itself counts the LM head only; a lookup is no matmul), a tied matrix twice."""
    m = model(s)
    c = m.config
    embed = m.num_params(non_embedding=False) - m.num_params(non_embedding=True)
    if c.tie_embeddings:
        embed += c.n_embd * c.vocab_size  # one tensor, used as the embedding and as the head
    return 6 * embed / m.flops_per_token(s["block_size"])


def tokens(s):
    return common.final_iter(s) * common.tokens_per_iter(s)


def evaluations(s):
    last = common.final_iter(s)
    return last // s["eval_interval"] + 1 + (last % s["eval_interval"] != 0)


def run_flops(s, phases=None):
    """Training FLOPs (each phase's tokens at its own model's flops_per_token) plus the evaluations' forward passes
    (a third of a training token each) of one run; phases: [(settings, tokens)] for a run that grows."""
    phases = phases or [(s, tokens(s))]
    train = sum(model(p).flops_per_token(p["block_size"]) * n for p, n in phases)
    final = phases[-1][0]
    eval_tokens = evaluations(s) * s["eval_iters"] * s["batch_size"] * s["block_size"] * 3  # three domains
    return train + eval_tokens * model(final).flops_per_token(final["block_size"]) / 3


# -------------------------------------------------------------------------------------------------------------
# The arms' settings, from the experiment scripts themselves

def gstack_arms(scale="cpu"):
    at = SETTINGS[scale]
    s = at("gstack")
    return s, {arm: at("gstack", gstack.arm_args(arm, s)) for arm in ("scratch", "gstack")}


def inheritune_arms(scale="cpu"):
    at = SETTINGS[scale]
    s = at("inheritune")
    arms = {arm: at("inheritune", inheritune.arm_args(arm, s, "out/ref"))
            for arm in ("reference", "inherit", "scratch_T", "scratch_2T")}
    L, T = s["n_layer"], common.final_iter(s)
    if scale == "cpu":  # the gpu job runs neither the search nor the ablation: no time left for them in 8 minutes
        for n in range(L // 2, L, 2):  # every round the search can run: n = L/2, L/2 + 2, ...
            arms[f"search_n{n}"] = at("inheritune", [f"--n_layer={n}", f"--max_iters={T}", "--max_tokens=0"])
        for arm in inheritune.ARMS:
            if arm.startswith("ablation_"):
                arms[arm] = at("inheritune", inheritune.arm_args(arm, s, "out/ref"))
    return s, arms


def bimix_arms(scale="cpu"):
    at = SETTINGS[scale]
    s = at("bimix")
    return s, {arm: at("bimix", [f"--mixture={arm}"]) for arm in ("natural", "uniform", "ce")} | {
        "fitted": at("bimix", ['--mixture={"code": 0.2, "prose": 0.5, "c": 0.3}'])}


ARMS = {"gstack": gstack_arms, "inheritune": inheritune_arms, "bimix": bimix_arms}


def gstack_models(arm_s):
    """(settings, tokens) of each model an arm trains: the grown arm is its base, then the stacked model."""
    if not arm_s["grow_at_tokens"]:
        return [(arm_s, tokens(arm_s))]
    big = dict(arm_s, n_layer=arm_s["n_layer"] * arm_s["grow_factor"])
    return [(arm_s, arm_s["grow_at_tokens"]), (big, tokens(arm_s) - arm_s["grow_at_tokens"])]


# -------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ARMS))
def test_byte_vocabulary_and_dataset(name):
    """The shares below are computed at the vocabulary the runs use: the config fixes it at the byte tokenizer's
    256 (train.py refuses a dataset whose ids do not fit), and names the byte-level dataset."""
    s = cpu_settings(name)
    assert s["vocab_size"] == 256 and s["dataset"] == "pybytes"
    assert s["device"] == "cpu" and s["dtype"] == "float32" and s["compile"] is False


@pytest.mark.parametrize("scale", list(SETTINGS))
@pytest.mark.parametrize("name", list(ARMS))
def test_body_dominates_the_flops(name, scale):
    _, arms = ARMS[name](scale)
    models = [m for a in arms.values() for m, _ in (gstack_models(a) if name == "gstack" else [(a, 0)])]
    assert models
    for s in models:
        share = embed_share(s)
        head = 6 * s["n_embd"] * s["vocab_size"] / model(s).flops_per_token(s["block_size"])
        assert head <= share <= MAX_EMBED_SHARE, (name, s["n_layer"], share)


def test_the_share_check_can_fail():
    """The same computation on the GPT-2 BPE vocabulary: these models would be mostly LM head."""
    for name in ARMS:
        s = cpu_settings(name, ["--vocab_size=50304"])
        assert embed_share(s) > 0.5, name
    assert embed_share(cpu_settings("gstack", ["--n_embd=512", "--n_head=8"])) < MAX_EMBED_SHARE  # and can pass


@pytest.mark.parametrize("name", list(ARMS))
def test_at_least_1M_tokens_per_arm(name):
    _, arms = ARMS[name]()
    for arm, s in arms.items():
        assert tokens(s) >= MIN_TOKENS, (name, arm, tokens(s))


@pytest.mark.parametrize("scale", list(SETTINGS))
def test_gstack_base_is_a_quarter_of_scratch(scale):
    s, arms = gstack_arms(scale)
    scratch, grown = arms["scratch"], arms["gstack"]
    assert s["grow_factor"] == 4 and s["grow_dim"] == "depth" and s["grow_op"] == "direct"
    assert s["grow_schedule"] == "restart" and s["grow_layer_map"] is None
    assert scratch["n_layer"] == 4 * grown["n_layer"] and scratch["grow_at_tokens"] == 0
    assert tokens(scratch) == tokens(grown)  # the same token budget
    d = grown["grow_at_tokens"]
    assert 0 < d < tokens(grown) and d % common.tokens_per_iter(grown) == 0  # grows on a step boundary
    gstack.check_settings(s)  # the script's own checks
    # the grown arm costs less than scratch (the base phase is cheaper), and both are in the table's terms
    assert run_flops(grown, gstack_models(grown)) < run_flops(scratch)


@pytest.mark.parametrize("scale", list(SETTINGS))
def test_inheritune_arms_at_half_depth_and_T_2T(scale):
    s, arms = inheritune_arms(scale)
    L, T = s["n_layer"], common.final_iter(s)
    assert L % 2 == 0 and L >= 4 and T % s["eval_interval"] == 0
    assert (arms["reference"]["n_layer"], common.final_iter(arms["reference"])) == (L, T)
    assert arms["inherit"]["init_from"] == "inherit" and arms["inherit"]["inherit_n_layer"] == L // 2
    for arm, steps in (("inherit", T), ("scratch_T", T), ("scratch_2T", 2 * T)):
        a = arms[arm]
        assert a["n_layer"] == L // 2 and common.final_iter(a) == steps, arm
        assert common.tokens_per_iter(a) == common.tokens_per_iter(s)
    assert arms["scratch_T"]["init_from"] == "scratch" and arms["scratch_2T"]["init_from"] == "scratch"


@pytest.mark.parametrize("scale", list(SETTINGS))
def test_bimix_law_has_points_to_fit_and_hold_out(scale):
    s, _ = bimix_arms(scale)
    last = common.final_iter(s)
    assert last % s["eval_interval"] == 0  # the last evaluation is at s = the budget
    fitted = [it for it in range(s["eval_interval"], last + 1, s["eval_interval"]) if it >= bimix.FIT_FROM * last]
    assert len(fitted) - 1 >= 5  # the held-out fit still has >= 5 points per run and domain, at >= 5 distinct s


def headline_seconds(name):
    _, arms = ARMS[name]()
    if name == "gstack":
        flops = sum(run_flops(a, gstack_models(a)) for a in arms.values())
    else:
        flops = sum(run_flops(a) for a in arms.values())  # inheritune: the search's rounds too, all of them
    return flops / CPU_FLOPS_PER_S[name]


@pytest.mark.parametrize("name", list(ARMS))
def test_arms_of_one_seed_fit_the_time_limit(name):
    seconds, limit = headline_seconds(name), LIMIT_S[name]
    assert seconds <= HEADROOM * limit, f"{name}: {seconds / 60:.1f} min at {CPU_FLOPS_PER_S[name]:.0e} FLOP/s"
    assert seconds >= 0.25 * limit, f"{name}: {seconds / 60:.1f} min: the budget is left mostly unused"


def test_time_check_can_fail():
    s = cpu_settings("bimix", ["--max_iters=4096"])
    assert 4 * run_flops(s) / CPU_FLOPS_PER_S["bimix"] > HEADROOM * LIMIT_S["bimix"]


def test_cpu_arms_are_valid_train_settings(tmp_path, capsys):
    """--dry_run --seeds 2 builds every headline arm's train.py command for both seeds without training."""
    for mod, arms in ((gstack, "scratch,gstack"), (inheritune, "reference,inherit,scratch_T,scratch_2T,search"),
                      (bimix, "natural,uniform,ce,fitted")):
        out = tmp_path / mod.__name__.split(".")[-1]
        assert mod.main(["--scale", "cpu", "--out", str(out), "--arms", arms, "--seeds", "2", "--dry_run"]) is None
    printed = capsys.readouterr().out
    assert "config/gstack_cpu.py --n_layer=8 --grow_at_tokens=0 --out_dir=" in printed
    assert "config/gstack_cpu.py --seed=1338 --n_layer=2 --grow_at_tokens=786432" in printed
    assert f"--seed=1338 --n_layer=4 --max_iters=4096 --max_tokens=0 --out_dir={tmp_path}/inheritune/seed1338/" \
           f"scratch_2T" in printed
    assert f"{tmp_path}/bimix/seed1338/ce" in printed and "--seed=1338 --mixture=ce" in printed


# -------------------------------------------------------------------------------------------------------------
# the gpu scale against the cpu scale

@pytest.mark.parametrize("name", list(ARMS))
def test_gpu_configs_scale_up_the_cpu_ones(name):
    """The same corpus, architecture, depth and arms; every model 8-16x the cpu scale's FLOPs per token (wider, with
    heads of 64), every arm >= 20M tokens and >= 8x the cpu scale's; device, dtype and compile left to train.py (a
    GPU gets bfloat16 and torch.compile, a --device=cpu dry run works)."""
    cpu, gpu = cpu_settings(name), gpu_settings(name)
    assert gpu["dataset"] == cpu["dataset"] == "pybytes" and gpu["vocab_size"] == 256
    assert (gpu["arch"], gpu["n_layer"]) == (cpu["arch"], cpu["n_layer"]) and gpu["n_embd"] // gpu["n_head"] == 64
    assert (gpu["device"], gpu["dtype"], gpu["compile"]) == ("auto", "auto", None)
    _, cpu_arms = ARMS[name]("cpu")
    _, gpu_arms = ARMS[name]("gpu")
    for arm, g in gpu_arms.items():
        c = cpu_arms[arm]
        ratio = model(g).flops_per_token(g["block_size"]) / model(c).flops_per_token(c["block_size"])
        assert 8 <= ratio <= 16, (name, arm, ratio)
        assert tokens(g) >= max(GPU_MIN_TOKENS, 8 * tokens(c)), (name, arm, tokens(g))
    if name == "gstack":  # the growth happens at the same share of the budget as at the cpu scale
        assert gpu["grow_at_tokens"] / tokens(gpu_arms["gstack"]) == cpu["grow_at_tokens"] / tokens(cpu_arms["gstack"])
