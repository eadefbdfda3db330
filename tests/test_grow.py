"""Tests for grow.py: the growth operators of "Stacking Your Transformers" (Du et al. 2024), depthwise and widthwise,
for both architectures; the ramps of G_random; the paper's guidelines and speedup accounting. CPU, fast."""

import functools
import math
from dataclasses import asdict, replace

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


def ramp_factors(model):
    """G_random's depthwise blend factor m of every block (1.0 for a block that is fully in)."""
    return [float(b.ramp) if "ramp" in b._buffers else 1.0 for b in model.blocks]


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


def test_midas_repeats_the_middle_block_at_each_stage():
    # MIDAS (Saunshi et al. 2024): a block of b layers at the middle is copied, the copy right after it
    assert grow.midas_layer_maps(2, 2, 3) == [[0, 1, 0, 1], [0, 1, 2, 1, 2, 3], [0, 1, 2, 3, 2, 3, 4, 5]]
    assert grow.midas_layer_maps(3, 1, 2) == [[0, 1, 1, 2], [0, 1, 1, 2, 3]]  # of 4 layers, 1 and 2 are both middle
    for L, b in ((4, 2), (8, 2), (12, 4), (9, 3)):
        m = grow.midas_layer_map(L, b)
        twice = [j for j in range(L) if m.count(j) == 2]
        assert len(m) == L + b and len(twice) == b and all(m.count(j) == 1 for j in range(L) if j not in twice)
        assert twice == list(range(twice[0], twice[0] + b))  # one contiguous block ...
        assert abs(twice[0] - (L - twice[-1] - 1)) <= 1  # ... at the middle: as many layers below as above (+-1)
        assert m[twice[-1] + 1: twice[-1] + 1 + b] == twice  # the copy right after the original
    with pytest.raises(ValueError, match="block=3 is more than"):
        grow.midas_layer_maps(2, 3, 1)


def test_each_midas_stage_keeps_what_its_operator_promises():
    """Three MIDAS stages 2 -> 4 -> 6 -> 8: G_direct's model is the small blocks run in the map's order; G_zero's
    and G_random's (ramp 0) compute the same function as the model before the stage."""
    model = trained("llama")
    for lmap in grow.midas_layer_maps(2, 2, 3):
        direct = grow.grow_depth(model, "direct", layer_map=lmap).eval()
        grown = {op: grow.grow_depth(model, op, layer_map=lmap).eval() for op in ("zero", "random")}
        with torch.no_grad():
            x, rope = model.wte(IDX), (model.rope_cos, model.rope_sin)
            for j in lmap:
                x = model.blocks[j](x, rope)
            torch.testing.assert_close(direct(IDX)[0], model.lm_head(model.ln_f(x)), rtol=0, atol=1e-5)
            for op in ("zero", "random"):
                torch.testing.assert_close(grown[op](IDX)[0], model(IDX)[0], rtol=0, atol=1e-5)
        model = direct


def test_paper_tokens_of_several_growths():
    # 2 -> 4 layers at 100 tokens, 4 -> 8 at 300: a token on 2 layers counts 1/4, on 4 layers 1/2
    tokens = [0, 50, 100, 200, 300, 400]
    assert grow.paper_tokens(tokens, [100, 300], [2, 2]).tolist() == [0, 12.5, 25, 75, 125, 225]
    assert grow.paper_tokens(tokens, [100], [4]).tolist() == grow.paper_tokens(tokens, 100, 4).tolist()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("op", ["zero", "random"])
def test_depth_zero_and_random_keep_function(arch, op):
    small = trained(arch)
    snap = snapshot(small)
    big = grow.grow_depth(small, op, factor=2).eval()
    assert big.config.n_layer == 4
    assert grow.logit_gap(small, big, IDX) < 1e-5
    # the official layouts: G_zero interleaves (old 0, new, old 1, new: G_zero_depthwise.py), G_random puts the new
    # blocks on top (old 0, old 1, new, new: msg.py); the old layers are untouched copies
    old, new = ((0, 2), (1, 3)) if op == "zero" else ((0, 1), (2, 3))
    for i, j in zip(old, (0, 1)):
        src = small.blocks[j].state_dict()
        assert all(torch.equal(t, src[n]) for n, t in big.blocks[i].state_dict().items())
    if op == "zero":
        for i, j in zip(new, (0, 1)):
            b = big.blocks[i]
            for lin in (b.attn.o_proj, b.mlp.down_proj):
                assert not lin.weight.any() and (lin.bias is None or not lin.bias.any())
            assert torch.equal(b.attn.q_proj.weight, small.blocks[j].attn.q_proj.weight)  # the rest copied
            assert torch.equal(b.ln_2.weight, small.blocks[j].ln_2.weight)
    else:
        assert ramp_factors(big) == [1.0, 1.0, 0.0, 0.0]
        assert grow.ramps_active(big)
        grow.set_ramp(big, 1.0)
        assert not grow.ramps_active(big)
        assert grow.logit_gap(small, big, IDX) > 1e-3  # fully blended in, the random blocks change the function
        # the interleaved layout stays one layer_map away
        mixed = grow.grow_depth(small, "random", layer_map=grow.make_layer_map(2, 2, "interleave")).eval()
        assert ramp_factors(mixed) == [1.0, 0.0, 1.0, 0.0] and grow.logit_gap(small, mixed, IDX) < 1e-5
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
    assert ramp_factors(big) == [1.0, 1.0, 0.25, 0.25]  # old blocks untouched
    # the factor is a buffer in the state dict: a checkpoint mid-ramp reloads exactly, still ramping
    assert sorted(k for k in big.state_dict() if "ramp" in k) == ["blocks.2.ramp", "blocks.3.ramp"]
    fresh = grow.load_state(GPT(big.config), big.state_dict()).eval()
    assert grow.logit_gap(fresh, big, IDX) == 0.0 and ramp_factors(fresh) == [1.0, 1.0, 0.25, 0.25]
    grow.set_ramp(big, 1.0)
    assert ramp_factors(big) == [1.0] * 4 and not grow.ramps_active(big)
    # fully in: a plain GPT again, no hook, no buffer, the same function as the hook computed at m = 1
    assert not any(b._forward_hooks for b in big.blocks) and not any("ramp" in k for k in big.state_dict())
    grow.set_ramp(fresh, 1.0)
    assert grow.logit_gap(fresh, big, IDX) == 0.0
    grow.set_ramp(big, 0.0)  # a finished ramp stays finished
    assert ramp_factors(big) == [1.0] * 4


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
        # the official layout (prts zero.py), W' = [[W, R], [0, R]]: old block in the corner, new rows read the old
        # inputs through 0, new columns (new inputs) random; new embedding columns and new norm entries 0
        b0, s0 = big.blocks[0], small.blocks[0]
        for new, old in ((b0.attn.o_proj, s0.attn.o_proj), (b0.attn.q_proj, s0.attn.q_proj),
                         (b0.mlp.up_proj, s0.mlp.up_proj), (b0.mlp.down_proj, s0.mlp.down_proj)):
            W, (o, i) = new.weight, old.weight.shape
            assert torch.equal(W[:o, :i], old.weight)
            assert not W[o:, :i].any() and W[:, i:].abs().min() > 0
        assert not big.wte.weight[:, 32:].any() and not b0.ln_1.weight[32:].any()
        assert big.lm_head.weight[:, 32:].abs().min() > 0
    # the other way round (new neurons' fan-in random, fan-out zero) keeps the function as well
    big = grow.grow_width(small, 64, "zero", layout="fan_out_zero").eval()
    assert grow.logit_gap(small, big, IDX) < 1e-5
    o = big.blocks[0].attn.o_proj.weight
    assert not o[:, 32:].any() and not o[32:, :].any() and big.blocks[0].attn.q_proj.weight[32:, :32].abs().min() > 0
    # without the norm rescaling (as zero.py does it) the wider RMS changes the function
    big = grow.grow_width(small, 64, "zero", rescale_norms=False).eval()
    assert big.config.norm_eps == small.config.norm_eps and grow.logit_gap(small, big, IDX) > 1e-3
    assert unchanged(small, snap)


def test_width_zero_gpt2_duplicate_keeps_logits_and_zero_hidden_does_not():
    small = trained("gpt2")
    snap = snapshot(small)
    big = grow.grow_width(small, 64, "zero").eval()  # gpt2 default at 2x: hidden dims duplicated, heads/MLP new
    assert grow.logit_gap(small, big, IDX) < 1e-5
    assert torch.equal(big.wte.weight, small.wte.weight.repeat(1, 2))
    assert big.lm_head.weight is big.wte.weight
    # official layout on the new neurons: they read nothing (zero rows and biases), their outputs enter randomly
    up, down, n = big.blocks[0].mlp.up_proj, big.blocks[0].mlp.down_proj, small.config.intermediate_size
    assert not up.weight[n:].any() and not up.bias[n:].any() and down.weight[:, n:].abs().min() > 0
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


def _new_parts(big):
    """Hooks recording, on every forward, the largest |value| of each part MSG masks in: the new MLP neurons'
    up_proj outputs, the new heads' q and v outputs (block 0) and the new residual dims (ln_f's input). Registered
    after growth, so they see the masked outputs. Old widths are half the new ones here."""
    seen, b, c = {}, big.blocks[0], big.config

    def record(key, lo, output=True):
        def hook(mod, args, out):
            seen[key] = (out if output else args[0])[..., lo:].abs().max().item()
        return hook

    b.mlp.up_proj.register_forward_hook(record("mlp", c.intermediate_size // 2))
    b.attn.q_proj.register_forward_hook(record("heads", c.n_head // 2 * c.head_dim))
    b.attn.v_proj.register_forward_hook(record("v", c.n_kv_head // 2 * c.head_dim))
    big.ln_f.register_forward_hook(record("hidden", c.n_embd // 2, output=False))
    return seen


@pytest.mark.parametrize("arch", ARCHS)
def test_width_random_msg_keeps_function_and_ramps_in_three_phases(arch):
    small = trained(arch)
    snap = snapshot(small)
    torch.manual_seed(0)
    big = grow.grow_width(small, 64, "random").eval()
    assert isinstance(big, GPT) and grow.ramps_active(big) and big.config.norm_eps == small.config.norm_eps
    seen = _new_parts(big)
    assert grow.logit_gap(small, big, IDX) < 1e-5  # every mask at 0: the small model's function
    assert seen == {"mlp": 0.0, "heads": 0.0, "v": 0.0, "hidden": 0.0}
    # MSG's order, a third of the ramp each: MLP neurons, then hidden dims, then attention heads
    for m, live in ((1 / 6, {"mlp"}), (1 / 2, {"mlp", "hidden"}), (5 / 6, {"mlp", "hidden", "heads", "v"})):
        grow.set_ramp(big, m)
        assert grow.logit_gap(small, big, IDX) > 1e-4
        assert {k for k, v in seen.items() if v > 0} == live, (m, seen)
    # "single": everything at once
    torch.manual_seed(0)
    single = grow.grow_width(small, 64, "random", schedule="single").eval()
    seen = _new_parts(single)
    grow.set_ramp(single, 1 / 6)
    grow.logit_gap(small, single, IDX)
    assert all(v > 0 for v in seen.values()), seen
    assert unchanged(small, snap)


@pytest.mark.parametrize("arch", ARCHS)
def test_width_random_checkpoint_mid_ramp_resumes_exactly(arch):
    small = trained(arch)
    torch.manual_seed(0)
    big = grow.grow_width(small, 64, "random").eval()
    grow.set_ramp(big, 0.5)
    # the ramp's state is in the state dict: a fresh GPT loaded with load_state computes the same and ramps on
    fresh = grow.load_state(GPT(big.config), big.state_dict()).eval()
    assert grow.ramps_active(fresh) and grow.logit_gap(fresh, big, IDX) == 0.0
    for m in (0.9, 1.0):
        grow.set_ramp(big, m)
        grow.set_ramp(fresh, m)
        assert grow.logit_gap(fresh, big, IDX) == 0.0
    # at 1 every hook and buffer is gone, keeping Parameter identity (the optimizer stays valid): a plain GPT
    params = {id(p) for p in big.parameters()}
    assert not grow.ramps_active(big) and {id(p) for p in big.parameters()} == params
    assert not any(m._forward_hooks for m in big.modules())
    assert (big.lm_head.weight is big.wte.weight) == (arch == "gpt2")
    plain = GPT(big.config).eval()
    plain.load_state_dict(big.state_dict())
    assert grow.logit_gap(plain, big, IDX) == 0.0


def test_width_random_new_weights_learn_in_their_phase():
    big = grow.grow_width(trained("llama"), 64, "random")
    x, y = synthetic_batches(1)[0]
    big.train()
    for m, heads_learn in ((0.1, False), (0.9, True)):
        big.zero_grad()
        grow.set_ramp(big, m)
        big(x, y)[1].backward()
        b = big.blocks[0]
        assert b.mlp.up_proj.weight.grad[128:].abs().sum() > 0  # new MLP neurons' fan-in learns from phase 1
        assert b.mlp.down_proj.weight.grad[:, 128:].abs().sum() > 0  # and their fan-out
        assert (b.attn.q_proj.weight.grad[32:].abs().sum() > 0) == heads_learn  # new heads only in phase 3


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


def test_speedup_accounting():
    assert math.isclose(grow.speedup(300.0, 194.0), 0.5464, abs_tol=1e-4)  # the paper's 7B headline
    flops = np.array([1.0, 2.0, 3.0, 4.0])
    assert grow.flops_to_loss(flops, [4.0, 3.0, 2.0, 1.0], 2.5) == 2.5
    assert grow.flops_to_loss(flops, [4.0, 3.0, 2.0, 1.0], 5.0) == 1.0
    assert grow.flops_to_loss(flops, [4.0, 3.0, 2.0, 1.5], 1.0) == np.inf


def test_growth_factor_and_both_speedup_conventions():
    import eval as E
    small = GPTConfig(arch="llama", block_size=T, vocab_size=V, n_layer=2, n_head=4, n_embd=32)
    assert grow.growth_factor(small, grow.gstack(make("llama", n_kv_head=4), 4).config) == 4.0  # the layer ratio
    wide = grow.grow_width(make("llama", n_kv_head=4), 64, "zero").config  # every width doubled
    assert grow.growth_factor(asdict(small), asdict(wide)) == pytest.approx(4, rel=0.02)  # ~4x the block parameters
    # a grown run: 100 small-model tokens at 1 FLOP each, then large-model tokens at 10 FLOPs (g = 4 by parameters,
    # but the head and attention make a small token cost 1/10 here); scratch costs 10 per token throughout
    tokens = [0.0, 100.0, 200.0, 300.0]
    grown_flops, grown_loss = [0.0, 100.0, 1100.0, 2100.0], [5.0, 4.0, 3.0, 2.0]
    scratch_loss = [5.0, 4.0, 3.0, 2.5]
    scratch_f, grown_f = list(zip([t * 10 for t in tokens], scratch_loss)), list(zip(grown_flops, grown_loss))
    assert (E.tokens_to_reach(scratch_f, 2.5), E.tokens_to_reach(grown_f, 2.5)) == (3000.0, 1600.0)
    assert E.speedup(scratch_f, grown_f, 2.5) == pytest.approx(3000 / 1600 - 1)
    event = {"event": "grow", "tokens": 100, "before": asdict(small), "after": asdict(replace(small, n_layer=8))}
    paper = E.paper_curve(list(zip(tokens, grown_loss)), [event])  # 100 small tokens count 25
    assert E.tokens_to_reach(paper, 2.5) == 25.0 + 150.0
    assert E.speedup(list(zip(tokens, scratch_loss)), paper, 2.5) == pytest.approx(300 / 175 - 1)
    assert E.speedup(list(zip(tokens, scratch_loss)), paper, 1.0) is None


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
    with pytest.raises(TypeError, match="unexpected option"):
        grow.grow_width(small, 64, "random", hidden="zero")  # MSG's new hidden dims are always fresh and masked
    with pytest.raises(ValueError, match="layout='fan_in'; expected 'official' or 'fan_out_zero'"):
        grow.grow_width(llama, 64, "zero", layout="fan_in")
    with pytest.raises(ValueError, match="schedule='phased'; expected 'msg' or 'single'"):
        grow.grow_width(llama, 64, "random", schedule="phased")
    with pytest.raises(ValueError, match="mismatched architectures"):
        grow.logit_gap(small, llama, IDX)
