import json
import os

import pytest
import torch

from hf import from_hf, to_hf
from model import GPT, GPTConfig


def tiny(arch, **kw):
    base = dict(arch=arch, block_size=32, vocab_size=101, n_layer=2, n_head=4, n_embd=32)
    if arch == "llama":
        base.update(n_kv_head=2)
    base.update(kw)
    torch.manual_seed(0)
    return GPT(GPTConfig(**base))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_forward_backward_shapes(arch):
    m = tiny(arch)
    x = torch.randint(0, 101, (3, 17))
    logits, loss = m(x, x)
    assert logits.shape == (3, 17, 101)
    assert loss.ndim == 0 and abs(loss.item() - torch.log(torch.tensor(101.0)).item()) < 0.5  # ~uniform at init
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert torch.isfinite(p.grad).all(), name
    assert m(x)[1] is None


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_causality(arch):
    """A position's logits depend only on it and earlier tokens."""
    m = tiny(arch).eval()
    x = torch.randint(0, 101, (2, 20))
    y = x.clone()
    y[:, 12:] = torch.randint(0, 101, (2, 8))
    lx, ly = m(x)[0], m(y)[0]
    torch.testing.assert_close(lx[:, :12], ly[:, :12], rtol=0, atol=1e-6)
    assert (lx[:, 12:] - ly[:, 12:]).abs().max() > 1e-3


def test_architectures_differ_as_specified():
    g, l = tiny("gpt2"), tiny("llama", tie_embeddings=False)
    assert g.lm_head.weight is g.wte.weight and l.lm_head.weight is not l.wte.weight
    assert isinstance(g.blocks[0].ln_1, torch.nn.LayerNorm) and isinstance(l.blocks[0].ln_1, torch.nn.RMSNorm)
    assert hasattr(g, "wpe") and not hasattr(l, "wpe")
    assert hasattr(l.blocks[0].mlp, "gate_proj") and not hasattr(g.blocks[0].mlp, "gate_proj")
    assert l.blocks[0].attn.k_proj.weight.shape == (2 * 8, 32)  # GQA: 2 kv heads of size 8
    assert l.config.intermediate_size == 128  # ~8/3 * 32 rounded up to 64


def count_matmuls(fn):
    """How many matrix products fn() runs (aten mm / addmm / bmm), seen below autograd."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.bmm)
            return func(*args, **(kwargs or {}))
    with Count():
        fn()
    return Count.n


@pytest.mark.parametrize("arch,kw", [("gpt2", {"bias": True}), ("llama", {"n_kv_head": 2, "bias": True})])
def test_one_qkv_matmul_computes_what_the_three_projections_do(arch, kw):
    """Attention.project_qkv multiplies by q, k and v stacked (one matmul, nanoGPT's c_attn) and gives the logits
    and gradients of the three modules called one by one; a forward hook on one of them (grow.py masks new outputs
    that way) makes it call each module, so the hook runs."""
    m = tiny(arch, **kw)
    x = torch.randint(0, 101, (2, 24))

    def run():
        m.zero_grad()
        logits, loss = m(x, x)
        loss.backward()
        return logits, {n: p.grad.clone() for n, p in m.named_parameters()}
    fused = count_matmuls(lambda: m(x))
    logits, grads = run()
    seen = []
    for b in m.blocks:
        b.attn.v_proj.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    assert count_matmuls(lambda: m(x)) == fused + 2 * m.config.n_layer  # three matmuls a layer instead of one
    assert len(seen) == m.config.n_layer
    hooked_logits, hooked_grads = run()
    torch.testing.assert_close(hooked_logits, logits)
    for n, g in grads.items():
        torch.testing.assert_close(hooked_grads[n], g, msg=n)


def test_a_projection_that_is_more_than_its_matmul_is_called_as_a_module():
    """A subclass of nn.Linear (LoRA, quantized, ...) in place of v_proj: its own forward runs, not the stacked
    matmul that would skip it; here one that doubles its output equals a plain v_proj with doubled weights."""
    class Doubled(torch.nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)
    m, ref = tiny("gpt2", bias=True), tiny("gpt2", bias=True)
    for b, r in zip(m.blocks, ref.blocks):
        old = b.attn.v_proj
        b.attn.v_proj = Doubled(old.in_features, old.out_features)
        b.attn.v_proj.load_state_dict(old.state_dict())
        with torch.no_grad():
            r.attn.v_proj.weight.mul_(2)
            r.attn.v_proj.bias.mul_(2)
    x = torch.randint(0, 101, (2, 24))
    torch.testing.assert_close(m(x)[0], ref(x)[0])


def test_gelu_is_exact_by_default_and_tanh_on_request():
    """gelu_approximate='none' (nanoGPT's exact GELU) for new models; 'tanh' is GPT-2's own."""
    exact, tanh = tiny("gpt2"), tiny("gpt2", gelu_approximate="tanh")
    assert exact.config.gelu_approximate == "none"
    x = torch.randint(0, 101, (2, 24))
    assert (exact(x)[0] - tanh(x)[0]).abs().max() > 1e-6  # same weights (same seed), other activation
    with pytest.raises(ValueError, match="gelu_approximate='erf'.*'none'.*'tanh'"):
        GPTConfig(gelu_approximate="erf")
    with pytest.raises(ValueError, match="gelu_approximate is a gpt2 setting"):
        GPTConfig(arch="llama", gelu_approximate="tanh")


def test_inverse_layer_idx_scaling_changes_deeper_layers_only():
    a, b = tiny("gpt2"), tiny("gpt2", scale_attn_by_inverse_layer_idx=True)
    assert a.blocks[0].attn.scale == b.blocks[0].attn.scale
    assert b.blocks[1].attn.scale == pytest.approx(a.blocks[1].attn.scale / 2)


HF_GPT2_BLOCK_KEYS = {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                      "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                      "mlp.c_proj.weight", "mlp.c_proj.bias"}
HF_LLAMA_BLOCK_KEYS = {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                       "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                       "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"}


def exported_keys(path):
    f = os.path.join(path, "model.safetensors")
    if os.path.exists(f):
        from safetensors.torch import load_file
        return load_file(f)
    return torch.load(os.path.join(path, "pytorch_model.bin"), weights_only=True)


@pytest.mark.parametrize("arch,kw", [("gpt2", {"bias": True}), ("gpt2", {}), ("llama", {}),
                                     ("llama", {"tie_embeddings": True}), ("gpt2", {"scale_attn_by_inverse_layer_idx": True}),
                                     ("gpt2", {"tie_embeddings": False}), ("gpt2", {"tie_embeddings": False, "bias": True}),
                                     ("llama", {"bias": True}), ("llama", {"bias": True, "tie_embeddings": True})])
def test_hf_round_trip_identical_logits_and_official_keys(tmp_path, arch, kw):
    m = tiny(arch, **kw).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a dropped or transposed tensor would show
        for n, p in m.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    to_hf(m, str(tmp_path))
    sd = exported_keys(str(tmp_path))
    cfg = json.load(open(tmp_path / "config.json"))
    if arch == "gpt2":
        assert cfg["model_type"] == "gpt2" and sd["transformer.h.0.attn.c_attn.weight"].shape == (32, 96)  # Conv1D
        want = {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "transformer.ln_f.bias"}
        want |= {f"transformer.h.{i}.{k}" for i in range(2) for k in HF_GPT2_BLOCK_KEYS}
    else:
        assert cfg["model_type"] == "llama" and cfg["num_key_value_heads"] == 2
        assert cfg["attention_bias"] is cfg["mlp_bias"] is m.config.bias
        want = {"model.embed_tokens.weight", "model.norm.weight"} | {f"model.layers.{i}.{k}" for i in range(2) for k in HF_LLAMA_BLOCK_KEYS}
        if m.config.bias:
            want |= {f"model.layers.{i}.{k.replace('.weight', '.bias')}" for i in range(2) for k in HF_LLAMA_BLOCK_KEYS
                     if "layernorm" not in k}
    if not m.config.tie_embeddings:  # an untied head is saved as lm_head.weight, GPT-2 or Llama
        want.add("lm_head.weight")
    assert cfg["tie_word_embeddings"] is m.config.tie_embeddings
    assert cfg["bos_token_id"] is None and cfg["eos_token_id"] is None  # no tokenizer given: no ids to claim
    assert set(sd) == want
    m2 = from_hf(str(tmp_path)).eval()
    x = torch.randint(0, 101, (2, 16))
    torch.testing.assert_close(m2(x)[0], m(x)[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_hf_export_matches_transformers(tmp_path, arch):
    """Where transformers is installed, its own model on our export gives our logits."""
    transformers = pytest.importorskip("transformers")
    m = tiny(arch, **({"bias": True} if arch == "gpt2" else {})).eval()
    to_hf(m, str(tmp_path))
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    x = torch.randint(0, 101, (2, 16))
    torch.testing.assert_close(hf(x).logits, m(x)[0], rtol=1e-4, atol=1e-4)


def test_hf_import_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_hf(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type='bert' is not supported"):  # refused before reading weights
        from_hf(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 8, "vocab_size": 16,
                                                      "n_layer": 1, "n_head": 2, "n_embd": 8}))
    with pytest.raises(FileNotFoundError, match="model.safetensors or pytorch_model.bin"):
        from_hf(str(tmp_path))


@pytest.mark.parametrize("bad,msg", [(dict(n_embd=30, n_head=4), "not divisible by n_head"),
                                     (dict(arch="bert"), "must be 'gpt2' or 'llama'"),
                                     (dict(arch="llama", n_head=4, n_kv_head=3), "not a multiple of n_kv_head"),
                                     (dict(n_layer=0), "n_layer=0")])
def test_config_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        GPTConfig(**bad)


def test_sequence_too_long_is_named():
    with pytest.raises(ValueError, match="longer than block_size=32"):
        tiny("gpt2")(torch.zeros(1, 33, dtype=torch.long))


def test_generate_and_accounting():
    m = tiny("llama").eval()
    out = m.generate(torch.zeros(2, 3, dtype=torch.long), 40, top_k=5)  # longer than block_size: context crops
    assert out.shape == (2, 43)
    c = m.config
    per_layer = 2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * c.intermediate_size + 2 * 32  # q,o + k,v + mlp + norms
    want = c.n_layer * per_layer + 32  # + final norm; embeddings and head are not "non-embedding"
    assert m.num_params() == want and m.num_params(non_embedding=False) == want + 2 * 101 * 32
    assert m.flops_per_token(16) == 6 * (want + 101 * 32) + 12 * 2 * 32 * 16  # the head is a matmul


def test_mfu_uses_the_devices_own_peak():
    from model import device_peak_flops
    assert device_peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and device_peak_flops("NVIDIA H100 PCIe") == 756e12
    assert device_peak_flops("NVIDIA L40S") == 362e12 and device_peak_flops("NVIDIA L4") == 121e12  # not a prefix match
    assert device_peak_flops("Some Other GPU") is None
    m = tiny("gpt2")
    assert m.estimate_mfu(1000, 1.0, peak_flops=1e12, seq_len=16) == pytest.approx(m.flops_per_token(16) * 1000 / 1e12)


def test_hf_llama_rope_settings_read_from_either_config_layout(tmp_path):
    """transformers 5 keeps rope_theta inside rope_parameters; RoPE variants the model lacks are refused, not
    misread."""
    m = tiny("llama", rope_theta=500000.0).eval()
    to_hf(m, str(tmp_path))
    cfg = json.load(open(tmp_path / "config.json"))
    cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": cfg.pop("rope_theta")}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    x = torch.randint(0, 101, (1, 16))
    torch.testing.assert_close(from_hf(str(tmp_path))(x)[0], m(x)[0], rtol=0, atol=1e-6)
    for kind in ("dynamic", "yarn"):
        cfg["rope_parameters"]["rope_type"] = kind
        (tmp_path / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(ValueError, match=f"this Llama variant is not supported.*'{kind}'"):
            from_hf(str(tmp_path))


def test_hf_settings_nanogrow_cannot_express_are_refused(tmp_path):
    """Either direction: a setting the other side has no place for is an error, never silently dropped."""
    with pytest.raises(ValueError, match="Llama model has scale_attn_by_inverse_layer_idx"):
        to_hf(tiny("llama", scale_attn_by_inverse_layer_idx=True), str(tmp_path / "llama"))
    x = torch.randint(0, 101, (1, 16))
    for kw in ({"bias": True, "mlp_bias": False}, {"mlp_bias": True}, {"head_size": 16}):  # HF's settings, read back
        m = tiny("llama", **kw).eval()
        to_hf(m, str(tmp_path / "llama"))
        cfg = json.load(open(tmp_path / "llama" / "config.json"))
        assert (cfg["attention_bias"], cfg["mlp_bias"], cfg["head_dim"]) == (
            m.config.bias, m.config.mlp_bias if m.config.mlp_bias is not None else m.config.bias, m.config.head_dim)
        torch.testing.assert_close(from_hf(str(tmp_path / "llama"))(x)[0], m(x)[0], rtol=0, atol=0)
    to_hf(tiny("gpt2"), str(tmp_path / "gpt2"))
    cfg = json.load(open(tmp_path / "gpt2" / "config.json"))
    for key, value in (("activation_function", "relu"), ("scale_attn_weights", False)):
        (tmp_path / "gpt2" / "config.json").write_text(json.dumps(dict(cfg, **{key: value})))
        with pytest.raises(ValueError, match=f"this GPT-2 variant is not supported.*{value!r}"):
            from_hf(str(tmp_path / "gpt2"))


def test_llama3_and_linear_rope_scaling_give_transformers_frequencies():
    """Inverse frequencies for head_dim 8, theta 1e4, as transformers 5.25 computes them (its
    _compute_llama3_parameters, printed): the fastest one (wavelength 6.3, between 8/4 and 8/1) blended, the
    three slower ones divided by the factor 8; linear divides all of them."""
    from model import scale_rope
    base = 1.0 / (10000 ** (torch.arange(0, 8, 2, dtype=torch.float32) / 8))  # 1, 0.1, 0.01, 0.001
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 8}
    torch.testing.assert_close(scale_rope(base, llama3), torch.tensor([0.204694852, 0.0125, 0.00125, 0.000125]),
                               rtol=1e-7, atol=0)
    torch.testing.assert_close(scale_rope(base, {"rope_type": "linear", "factor": 4.0}), base / 4, rtol=0, atol=0)
    assert scale_rope(base, {}) is base
