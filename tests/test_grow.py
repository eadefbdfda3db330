"""Tests for grow.py: the growth operators of "Stacking Your Transformers" (Du et al. 2024), depthwise and widthwise,
for both architectures; the ramps of G_random; the paper's guidelines and speedup accounting. CPU, fast."""

import functools
import math

import numpy as np
import pytest
import torch

import grow
from model import GPT, GPTConfig

V, T = 96, 32
ARCHS = ["gpt2", "llama"]


# -------------------------------------------------------------------------------------------------------------
# helpers

def make(arch, **kw):
    """Tiny model: 2 layers, n_embd 32, head_dim 8 (4 heads); llama with grouped-query attention (2 kv heads)."""
    args = dict(arch=arch, block_size=T, vocab_size=V, n_layer=2, n_head=4, n_embd=32)
    args.update(dict(n_kv_head=2) if arch == "llama" else dict(bias=True))
    args.update(kw)
    return GPT(GPTConfig(**args))


def synthetic_batches(n, batch=8, seed=0):
    """Token sequences with structure: the next token is a fixed permutation of the current one 90% of the time."""
    perm = torch.randperm(V, generator=torch.Generator().manual_seed(1234))
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        seq = torch.empty(batch, T + 1, dtype=torch.long)
        seq[:, 0] = torch.randint(V, (batch,), generator=g)
        for t in range(T):
            noise = torch.rand(batch, generator=g) < 0.1
            seq[:, t + 1] = torch.where(noise, torch.randint(V, (batch,), generator=g), perm[seq[:, t]])
        out.append((seq[:, :-1], seq[:, 1:]))
    return out


@functools.lru_cache(maxsize=None)
def trained(arch, **kw):
    """A small model trained briefly on the synthetic data (so its weights are not just the init)."""
    torch.manual_seed(0)
    model = make(arch, **kw)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for x, y in synthetic_batches(40, seed=1):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model, snap):
    sd = model.state_dict()
    return sd.keys() == snap.keys() and all(torch.equal(sd[k], snap[k]) for k in snap)


@torch.no_grad()
def held_out_loss(model, batches):
    model.eval()
    return sum(model(x, y)[1].item() for x, y in batches) / len(batches)


IDX = torch.randint(V, (2, T), generator=torch.Generator().manual_seed(7))


# -------------------------------------------------------------------------------------------------------------
# depthwise

@pytest.mark.parametrize("arch", ARCHS)
def test_gstack_stacks_whole_model(arch):
    small = trained(arch)
    snap = snapshot(small)
    big = grow.gstack(small, 3)
    assert big.config.n_layer == 6 and big.config.n_embd == small.config.n_embd
    for i, block in enumerate(big.blocks):  # layers 0,1,0,1,0,1
        src = small.blocks[i % 2].state_dict()
        for name, t in block.state_dict().items():
            assert torch.equal(t, src[name]), (i, name)
    for name in ["wte.weight", "lm_head.weight", "ln_f.weight"] + (["wpe.weight", "ln_f.bias"] if arch == "gpt2" else []):
        assert torch.equal(big.state_dict()[name], small.state_dict()[name]), name
    assert (big.lm_head.weight is big.wte.weight) == (arch == "gpt2")  # tying survives
    assert unchanged(small, snap)  # the input is never mutated
    assert isinstance(big, GPT) and big.config.arch == arch


def test_layer_map_interpolation_and_partial_stacking():
    small = trained("llama")
    assert grow.make_layer_map(3, 2) == [0, 1, 2, 0, 1, 2]
    assert grow.make_layer_map(3, 2, "interleave") == [0, 0, 1, 1, 2, 2]
    for lmap in ([0, 0, 1, 1], [0, 1, 1]):  # interpolation; partial stacking of the back layer
        big = grow.grow_depth(small, "direct", layer_map=lmap)
        assert big.config.n_layer == len(lmap)
        for i, j in enumerate(lmap):
            src = small.blocks[j].state_dict()
            assert all(torch.equal(t, src[n]) for n, t in big.blocks[i].state_dict().items())
    # layer_map overrides factor
    assert grow.grow_depth(small, "direct", factor=4, layer_map=[0, 1, 1]).config.n_layer == 3


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("op", ["zero", "random"])
def test_depth_zero_and_random_keep_function(arch, op):
    small = trained(arch)
    snap = snapshot(small)
    big = grow.grow_depth(small, op, factor=2).eval()
    assert big.config.n_layer == 4
    assert grow.logit_gap(small, big, IDX) < 1e-5
    # official interleaving: old 0, new, old 1, new; old layers are untouched copies
    for i, j in ((0, 0), (2, 1)):
        src = small.blocks[j].state_dict()
        assert all(torch.equal(t, src[n]) for n, t in big.blocks[i].state_dict().items())
    new = [big.blocks[1], big.blocks[3]]
    if op == "zero":
        for b, j in zip(new, (0, 1)):
            for lin in (b.attn.o_proj, b.mlp.down_proj):
                assert not lin.weight.any() and (lin.bias is None or not lin.bias.any())
            assert torch.equal(b.attn.q_proj.weight, small.blocks[j].attn.q_proj.weight)  # the rest copied
            assert torch.equal(b.ln_2.weight, small.blocks[j].ln_2.weight)
    else:
        assert grow.ramp_factors(big) == [1.0, 0.0, 1.0, 0.0]
        assert grow.ramps_active(big)
        grow.set_ramp(big, 1.0)
        assert not grow.ramps_active(big)
        assert grow.logit_gap(small, big, IDX) > 1e-3  # fully blended in, the random blocks change the function
    assert unchanged(small, snap)


def test_depth_zero_keeps_function_with_inverse_layer_idx_scaling():
    # GPT-2 with attention logits / (layer_idx + 1) (Inheritune's setting): moved layers get q rescaled
    torch.manual_seed(0)
    small = make("gpt2", scale_attn_by_inverse_layer_idx=True).eval()
    for lmap in ([0, 0, 1, 1], [0, 1, 0, 1]):
        big = grow.grow_depth(small, "zero", layer_map=lmap).eval()
        assert grow.logit_gap(small, big, IDX) < 1e-5
    # Gstack: every copied block computes what its source block does
    big = grow.gstack(small, 2).eval()
    x = torch.randn(2, T, 32)
    with torch.no_grad():
        for i, block in enumerate(big.blocks):
            assert torch.allclose(block(x), small.blocks[i % 2](x), atol=1e-6)


def test_ramp_value_and_set_ramp():
    assert grow.ramp_value(0, 100) == 0.0
    assert grow.ramp_value(50, 100) == 0.5
    assert grow.ramp_value(500, 100) == 1.0
    assert grow.ramp_value(3, 0) == 1.0
    small = trained("gpt2")
    big = grow.grow_depth(small, "random", factor=2).eval()
    grow.set_ramp(big, 0.25)
    assert grow.ramp_factors(big) == [1.0, 0.25, 1.0, 0.25]  # old blocks untouched
    # the factor is a buffer in the state dict: a checkpoint mid-ramp reloads exactly, still ramping
    assert sorted(k for k in big.state_dict() if "ramp" in k) == ["blocks.1.ramp", "blocks.3.ramp"]
    fresh = grow.load_state(GPT(big.config), grow.fold_ramps(big).state_dict()).eval()
    assert grow.fold_ramps(big) is big  # nothing to fold depthwise
    assert grow.logit_gap(fresh, big, IDX) == 0.0 and grow.ramp_factors(fresh) == [1.0, 0.25, 1.0, 0.25]
    grow.set_ramp(big, 1.0)
    assert grow.ramp_factors(big) == [1.0] * 4 and not grow.ramps_active(big)
    # fully in: a plain GPT again, no hook, no buffer, the same function as the hook computed at m = 1
    assert not any(b._forward_hooks for b in big.blocks) and not any("ramp" in k for k in big.state_dict())
    grow.set_ramp(fresh, 1.0)
    assert grow.logit_gap(fresh, big, IDX) == 0.0
    grow.set_ramp(big, 0.0)  # a finished ramp stays finished
    assert grow.ramp_factors(big) == [1.0] * 4


def test_checkpoints_with_a_ramp_in_every_block_still_load():
    """Before the blend moved out of model.py every Block had a `ramp` buffer (1.0 unless ramping), so old
    checkpoints carry blocks.<i>.ramp for every block: 1.0 is dropped, a factor below 1 ramps on."""
    small = trained("gpt2")
    state = {**small.state_dict(), "blocks.0.ramp": torch.tensor(1.0), "blocks.1.ramp": torch.tensor(0.5)}
    model = grow.load_state(GPT(small.config), state).eval()
    assert grow.ramp_factors(model) == [1.0, 0.5]
    x = small.wte(IDX) + small.wpe(torch.arange(IDX.shape[1]))
    h = small.blocks[0](x)
    torch.testing.assert_close(model.blocks[1](h), h + 0.5 * (small.blocks[1](h) - h))


def test_depth_noise():
    small = trained("llama")
    a = 0.2
    torch.manual_seed(0)
    big = grow.grow_depth(small, "direct", factor=2, noise=a)
    for i, block in enumerate(big.blocks):
        src = small.blocks[i % 2]
        eps = (block.attn.q_proj.weight - (1 - a) * src.attn.q_proj.weight) / a  # should be N(0, 0.02^2)
        assert abs(eps.std().item() - 0.02) < 0.003 and abs(eps.mean().item()) < 0.003
        assert torch.equal(block.ln_1.weight, src.ln_1.weight)  # norms are left alone
    assert torch.equal(big.wte.weight, small.wte.weight)


@pytest.mark.parametrize("arch", ARCHS)
def test_learn_depth_starts_at_gstack_and_improves(arch):
    small = trained(arch)
    snap = snapshot(small)
    stacked = grow.gstack(small, 2).eval()
    start = grow.grow_depth(small, "learn", factor=2, steps=0).eval()
    assert grow.logit_gap(stacked, start, IDX) == 0.0  # D initialised to the stacking layout
    train, val = synthetic_batches(30, seed=2), synthetic_batches(4, seed=3)
    learned = grow.grow_depth(small, "learn", factor=2, batches=train, steps=30, lr=1e-2).eval()
    assert type(learned) is GPT and learned.config.n_layer == 4
    GPT(learned.config).load_state_dict(learned.state_dict())  # a plain GPT
    assert held_out_loss(learned, val) < held_out_loss(start, val)  # trained maps: not worse (here: better)
    assert unchanged(small, snap)


# -------------------------------------------------------------------------------------------------------------
# widthwise

def test_width_zero_llama_keeps_logits():
    small = trained("llama")
    snap = snapshot(small)
    for n_embd in (64, 48):  # 2x and an uneven 1.5x: RMSNorm's sqrt(d/D) is undone either way
        big = grow.grow_width(small, n_embd, "zero").eval()
        c = big.config
        assert (c.n_embd, c.n_head, c.n_kv_head, c.head_dim) == (n_embd, n_embd // 8, n_embd // 16, 8)
        assert c.intermediate_size == small.config.intermediate_size * n_embd // 32
        assert math.isclose(c.norm_eps, small.config.norm_eps * 32 / n_embd)
        assert grow.logit_gap(small, big, IDX) < 1e-5
        # [[W, A], [0, C]]: old block in the corner; new neurons' fan-out zero, fan-in random
        o = big.blocks[0].attn.o_proj.weight
        assert torch.equal(o[:32, :32], small.blocks[0].attn.o_proj.weight)
        assert not o[:, 32:].any() and not o[32:, :].any()
        assert big.blocks[0].attn.q_proj.weight[32:, :32].abs().sum() > 0
    assert unchanged(small, snap)


def test_width_zero_gpt2_duplicate_keeps_logits_and_zero_hidden_does_not():
    small = trained("gpt2")
    snap = snapshot(small)
    big = grow.grow_width(small, 64, "zero").eval()  # gpt2 default at 2x: hidden dims duplicated, heads/MLP new
    assert grow.logit_gap(small, big, IDX) < 1e-5
    assert torch.equal(big.wte.weight, small.wte.weight.repeat(1, 2))
    assert big.lm_head.weight is big.wte.weight
    # hidden="zero": the new residual dims stay exactly zero all the way up, but LayerNorm's mean and variance over
    # 64 dims differ from those over 32, so the function changes (documented)
    big = grow.grow_width(small, 64, "zero", hidden="zero").eval()
    seen = []
    big.ln_f.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    gap = grow.logit_gap(small, big, IDX)
    assert not seen[0][..., 32:].any()
    assert gap > 1e-3
    assert unchanged(small, snap)


def _hidden_map(small, big):
    """The old dim each new hidden dim copies, read off the embedding (G_direct copies wte columns exactly)."""
    E, E2 = small.wte.weight, big.wte.weight
    g = [next(j for j in range(E.shape[1]) if torch.equal(E2[:, i], E[:, j])) for i in range(E2.shape[1])]
    return torch.tensor(g)


@pytest.mark.parametrize("arch", ARCHS)
def test_width_direct_splits_neurons_and_changes_only_the_norms(arch):
    small = trained(arch)
    snap = snapshot(small)
    torch.manual_seed(0)
    big = grow.grow_width(small, 48, "direct").eval()  # 32 -> 48: 16 dims copy random old ones
    g = _hidden_map(small, big)
    assert torch.equal(g[:32], torch.arange(32))
    counts = torch.bincount(g, minlength=32)
    assert counts.max() > 1 and counts.min() == 1  # uneven copies
    x = torch.randn(2, T, 32)
    xb = x[..., g]  # the same residual stream, duplicated like the hidden dims
    rope = None if arch == "gpt2" else (small.rope_cos, small.rope_sin)
    with torch.no_grad():
        for sb, bb in zip(small.blocks, big.blocks):
            # MLP: duplicated neurons with their fan-out split 1/count keep the sum exactly
            assert torch.allclose(bb.mlp(xb), sb.mlp(x)[..., g], atol=1e-5)
            # attention: whole heads copied (head_dim kept), o_proj columns split: kept exactly
            assert torch.allclose(bb.attn(xb, rope), sb.attn(x, rope)[..., g], atol=1e-5)
            # the norms are where the function changes: statistics over unevenly duplicated dims
            assert not torch.allclose(bb.ln_1(xb), sb.ln_1(x)[..., g], atol=1e-3)
    assert grow.logit_gap(small, big, IDX) > 1e-4
    # every dim copied equally often (2x, hidden="duplicate"): the norms are kept too, so the whole function is
    big = grow.grow_width(small, 64, "direct", hidden="duplicate").eval()
    assert grow.logit_gap(small, big, IDX) < 1e-5
    assert unchanged(small, snap)


@pytest.mark.parametrize("arch", ARCHS)
def test_width_random_ramp_fold_and_plain_state_dict(arch):
    small = trained(arch)
    snap = snapshot(small)
    torch.manual_seed(0)
    big = grow.grow_width(small, 64, "random").eval()
    assert isinstance(big, GPT) and grow.ramps_active(big)
    assert grow.logit_gap(small, big, IDX) < 1e-5  # masks at 0: the small model's function
    grow.set_ramp(big, 0.5)
    half = grow.logit_gap(small, big, IDX)
    assert half > 1e-4
    # mid-ramp checkpoint: fold_ramps gives a plain GPT computing the same function; the original keeps ramping
    plain = grow.fold_ramps(big)
    assert plain is not big and not grow.ramps_active(plain) and grow.ramps_active(big)
    fresh = GPT(big.config).eval()
    fresh.load_state_dict(plain.state_dict())
    assert grow.logit_gap(fresh, big, IDX) < 1e-6
    # the ramp reaching 1 folds the masks away in place, keeping Parameter identity (the optimizer stays valid)
    params = {id(p) for p in big.parameters()}
    grow.set_ramp(big, 1.0)
    assert not grow.ramps_active(big) and {id(p) for p in big.parameters()} == params
    assert type(big.wte) is torch.nn.Embedding and type(big.blocks[0].attn.o_proj) is torch.nn.Linear
    assert (big.lm_head.weight is big.wte.weight) == (arch == "gpt2")
    fresh.load_state_dict(big.state_dict())
    assert grow.logit_gap(fresh, big, IDX) == 0.0
    assert grow.logit_gap(small, big, IDX) > half / 2
    assert unchanged(small, snap)


def test_width_random_new_weights_get_gradients():
    big = grow.grow_width(trained("llama"), 64, "random")
    grow.set_ramp(big, 0.1)
    x, y = synthetic_batches(1)[0]
    big.train()
    big(x, y)[1].backward()
    o = big.blocks[0].attn.o_proj
    grad = o.parametrizations.weight.original.grad
    assert grad[:, 32:].abs().sum() > 0  # new heads' fan-out learns
    assert big.blocks[0].attn.q_proj.weight.grad[32:].abs().sum() > 0  # new heads' fan-in learns


@pytest.mark.parametrize("arch", ARCHS)
def test_learn_width_trains_and_folds(arch):
    small = trained(arch)
    snap = snapshot(small)
    train, val = synthetic_batches(30, seed=2), synthetic_batches(4, seed=3)
    torch.manual_seed(0)
    start = grow.grow_width(small, 64, "learn", steps=0).eval()
    torch.manual_seed(0)
    learned = grow.grow_width(small, 64, "learn", batches=train, steps=30, lr=1e-2).eval()
    assert type(learned) is GPT and learned.config.n_embd == 64
    GPT(learned.config).load_state_dict(learned.state_dict())
    assert (learned.lm_head.weight is learned.wte.weight) == (arch == "gpt2")
    # B = [I; ...]: the old corner of every matrix is the small model's at init
    assert torch.allclose(start.blocks[0].mlp.up_proj.weight[:small.config.intermediate_size, :32],
                          small.blocks[0].mlp.up_proj.weight)
    assert held_out_loss(learned, val) < held_out_loss(start, val)
    assert unchanged(small, snap)


# -------------------------------------------------------------------------------------------------------------
# guidelines and accounting

@pytest.mark.parametrize("N, tokens, d_billions", [(7e9, 2e12, 11.11), (8e9, 15e12, 6.58), (13e9, 2e12, 15.84),
                                                   (70e9, 2e12, 42.48)])
def test_growth_timing_reproduces_the_paper(N, tokens, d_billions):
    assert round(grow.growth_timing(N, grow.training_flops(N, tokens)) / 1e9, 2) == d_billions


def test_growth_factor_fit_and_speedup_accounting():
    g = grow.growth_factor_fit(7e9, grow.training_flops(7e9, 2e12))
    assert g > 8  # the tentative fit extrapolates far beyond the 2..4 the sweeps support
    assert grow.growth_flops(10.0, 5, 40.0, 3) == 170.0
    assert math.isclose(grow.speedup(300.0, 194.0), 0.5464, abs_tol=1e-4)  # the paper's 7B headline
    flops = np.array([1.0, 2.0, 3.0, 4.0])
    assert grow.flops_to_loss(flops, [4.0, 3.0, 2.0, 1.0], 2.5) == 2.5
    assert grow.flops_to_loss(flops, [4.0, 3.0, 2.0, 1.0], 5.0) == 1.0
    assert grow.flops_to_loss(flops, [4.0, 3.0, 2.0, 1.5], 1.0) == np.inf
    f_s, f_g, sp = grow.speedup_at_loss((flops * 2, [4.0, 3.0, 2.0, 1.0]), (flops, [4.0, 3.0, 2.0, 1.0]), 2.0)
    assert (f_s, f_g, sp) == (6.0, 3.0, 1.0)
    assert math.isnan(grow.speedup_at_loss((flops, [4, 3, 2, 1]), (flops, [4, 4, 4, 4]), 2.0)[2])


# -------------------------------------------------------------------------------------------------------------
# bad inputs

def test_bad_depth_inputs():
    small = trained("gpt2")
    with pytest.raises(ValueError, match="unknown op 'stack'"):
        grow.grow_depth(small, "stack", factor=2)
    with pytest.raises(ValueError, match="must be >= 1"):
        grow.grow_depth(small, "direct", factor=0)
    with pytest.raises(ValueError, match="whole number"):
        grow.grow_depth(small, "direct", factor=1.5)
    with pytest.raises(ValueError, match="give factor"):
        grow.grow_depth(small, "direct")
    with pytest.raises(ValueError, match=r"layer_map\[2\]=5 names a layer that does not exist; the model has 2"):
        grow.grow_depth(small, "direct", layer_map=[0, 1, 5])
    with pytest.raises(ValueError, match="first occurrences in order"):
        grow.grow_depth(small, "zero", layer_map=[1, 0, 1])
    with pytest.raises(ValueError, match="needs batches"):
        grow.grow_depth(small, "learn", factor=2, steps=5)
    with pytest.raises(ValueError, match="batches ran out after 2 steps"):
        grow.grow_depth(small, "learn", factor=2, steps=5, batches=(b for b in synthetic_batches(2)))
    with pytest.raises(TypeError, match="unexpected option"):
        grow.grow_depth(small, "direct", factor=2, steps=5)
    with pytest.raises(ValueError, match="noise"):
        grow.grow_depth(small, "direct", factor=2, noise=1.5)
    ramping = grow.grow_depth(small, "random", factor=2)
    with pytest.raises(ValueError, match="still ramping"):
        grow.gstack(ramping, 2)


def test_bad_width_inputs():
    small, llama = trained("gpt2"), trained("llama")
    with pytest.raises(ValueError, match="unknown op 'split'"):
        grow.grow_width(small, 64, "split")
    with pytest.raises(ValueError, match="smaller than the current n_embd=32"):
        grow.grow_width(small, 16, "zero")
    with pytest.raises(ValueError, match="not a multiple of head_dim=8"):
        grow.grow_width(small, 36, "zero")
    with pytest.raises(ValueError, match="would change head_dim from 8 to 16"):
        grow.grow_width(small, 64, "zero", n_head=4)
    with pytest.raises(ValueError, match="not divisible by n_head=5"):
        grow.grow_width(small, 64, "zero", n_head=5)
    with pytest.raises(ValueError, match="needs n_embd=48 to be a multiple"):
        grow.grow_width(small, 48, "zero", hidden="duplicate")
    with pytest.raises(ValueError, match="q heads per kv head"):
        grow.grow_width(llama, 40, "zero")  # 5 heads cannot be grouped 2 per kv head
    with pytest.raises(ValueError, match="pass intermediate_size"):
        grow.grow_width(make("gpt2", intermediate_size=90), 40, "direct")
    with pytest.raises(ValueError, match="intermediate_size=64 is smaller"):
        grow.grow_width(small, 64, "direct", intermediate_size=64)
    with pytest.raises(ValueError, match="hidden='copy'"):
        grow.grow_width(small, 64, "zero", hidden="copy")
    with pytest.raises(TypeError, match="unexpected option"):
        grow.grow_width(small, 64, "learn", hidden="zero")
    with pytest.raises(ValueError, match="mismatched architectures"):
        grow.logit_gap(small, llama, IDX)
