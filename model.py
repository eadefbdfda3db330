"""
nanogrow model: one file, two architectures.

  arch="gpt2"  : learned position embeddings, LayerNorm, GELU MLP, tied embedding / LM head (GPT-2)
  arch="llama" : RoPE, RMSNorm, SwiGLU MLP, grouped-query attention, untied head by default (Llama)

Both share one module layout so that growth (grow.py) and inheritance (inherit.py) are plain operations
on `model.blocks` (an nn.ModuleList) and on state dicts:

  wte, [wpe], blocks[i].{ln_1, attn.{q_proj,k_proj,v_proj,o_proj}, ln_2, mlp.{up_proj,[gate_proj],down_proj}},
  ln_f, lm_head

The bottom of the file has the Hugging Face import/export (key mapping). Checkpoints and run folders are
runs.py's.
"""

import json
import math
import os
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    arch: str = "gpt2"              # "gpt2" or "llama"
    block_size: int = 1024          # longest sequence (context length)
    vocab_size: int = 50304         # GPT-2's 50257 padded up to a multiple of 64 for fast matmuls
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int = None           # grouped-query attention (llama); None = n_head
    n_embd: int = 768
    intermediate_size: int = None   # MLP hidden size; None = 4*n_embd (gpt2) or ~8/3*n_embd (llama)
    dropout: float = 0.0
    bias: bool = False              # biases in Linear and LayerNorm (gpt2; HF GPT-2 has them)
    tie_embeddings: bool = None     # share wte and lm_head; None = True for gpt2, False for llama
    scale_attn_by_inverse_layer_idx: bool = False  # gpt2: attention logits / (layer_idx+1) (Inheritune)
    gelu_approximate: str = "none"  # gpt2's GELU (llama: "none"): "none" = exact (erf; nanoGPT's; faster on a CPU) or
                                    # "tanh" = GPT-2's own approximation (Hugging Face's "gelu_new")
    rope_theta: float = 10000.0     # llama
    norm_eps: float = 1e-5

    def __post_init__(self):
        if self.arch not in ("gpt2", "llama"):
            raise ValueError(f"GPTConfig.arch={self.arch!r}: must be 'gpt2' or 'llama'")
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.tie_embeddings is None:
            self.tie_embeddings = self.arch == "gpt2"
        if self.intermediate_size is None:
            # llama: 2/3 of 4*d keeps SwiGLU's three matrices at the cost of GPT's two; round up to 64
            self.intermediate_size = 4 * self.n_embd if self.arch == "gpt2" else 64 * math.ceil(8 * self.n_embd / 3 / 64)
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "intermediate_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GPTConfig.{name}={getattr(self, name)}: must be a positive integer")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} is not divisible by n_head={self.n_head}; "
                             f"pick n_head among the divisors of n_embd")
        if self.n_head % self.n_kv_head != 0:
            raise ValueError(f"GPTConfig: n_head={self.n_head} is not a multiple of n_kv_head={self.n_kv_head}")
        if self.arch == "llama" and (self.n_embd // self.n_head) % 2 != 0:
            raise ValueError(f"GPTConfig: RoPE needs an even head size, got n_embd/n_head={self.n_embd // self.n_head}")
        if self.gelu_approximate not in ("none", "tanh"):
            raise ValueError(f"GPTConfig.gelu_approximate={self.gelu_approximate!r}: must be 'none' (exact GELU) or "
                             f"'tanh' (GPT-2's approximation)")
        if self.arch == "llama" and self.gelu_approximate != "none":
            raise ValueError("GPTConfig: gelu_approximate is a gpt2 setting; llama's MLP is SwiGLU (no GELU)")
        if self.arch == "gpt2" and self.n_kv_head != self.n_head:
            raise ValueError("GPTConfig: grouped-query attention (n_kv_head != n_head) is a llama feature")

    @property
    def head_dim(self):
        return self.n_embd // self.n_head


# -------------------------------------------------------------------------------------------------------------
# Modules

def norm_layer(config):
    if config.arch == "gpt2":
        return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)
    return nn.RMSNorm(config.n_embd, eps=config.norm_eps)


def rope_cache(config):
    """cos, sin of shape (block_size, head_dim) for the 'rotate half' RoPE layout used by HF Llama."""
    hd = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))  # (hd/2,)
    angles = torch.outer(torch.arange(config.block_size, dtype=torch.float32), inv_freq)      # (T, hd/2)
    angles = torch.cat([angles, angles], dim=-1)                                               # (T, hd)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    # x: (B, nh, T, hd); cos, sin: (T, hd). Rotates pairs (i, i + hd/2) by position-dependent angles.
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        hd, bias = config.head_dim, config.bias
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, hd
        self.q_proj = nn.Linear(config.n_embd, config.n_head * hd, bias=bias)
        self.k_proj = nn.Linear(config.n_embd, config.n_kv_head * hd, bias=bias)
        self.v_proj = nn.Linear(config.n_embd, config.n_kv_head * hd, bias=bias)
        self.o_proj = nn.Linear(config.n_head * hd, config.n_embd, bias=bias)
        self.qkv_sizes = (config.n_head * hd, config.n_kv_head * hd, config.n_kv_head * hd)
        self.dropout = config.dropout
        self.scale = 1.0 / math.sqrt(hd)
        if config.scale_attn_by_inverse_layer_idx:  # GPT-2 option used by Inheritune: deeper layers, softer logits
            self.scale /= layer_idx + 1

    def forward(self, x, rope=None):
        B, T, C = x.shape
        q, k, v = self.project_qkv(x)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)     # (B, nh, T, hd)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        if rope is not None:
            cos, sin = rope
            q, k = apply_rope(q, cos[:T], sin[:T]), apply_rope(k, cos[:T], sin[:T])
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale,
                                           dropout_p=self.dropout if self.training else 0.0,
                                           enable_gqa=self.n_kv_head != self.n_head)
        y = y.transpose(1, 2).contiguous().view(B, T, C)                              # (B, T, C)
        return self.o_proj(y)

    def project_qkv(self, x):
        """q, k, v of x (B, T, C) in one matmul against the three weights stacked, ((nh + 2 nkv) hd, C), as
        nanoGPT's c_attn does: one large matmul runs faster than three small ones on a CPU. The weights stay three
        modules so that growth, inheritance and the Hugging Face mapping address q, k and v by name. Where any of
        them is more than its matmul (a hook on it, as grow.py's masks on new outputs; a subclass such as LoRA or
        a quantized Linear), the three are called as modules, so that nothing of theirs is skipped."""
        projs = (self.q_proj, self.k_proj, self.v_proj)
        if not all(is_plain_linear(p) for p in projs):
            return tuple(p(x) for p in projs)
        w = torch.cat([p.weight for p in projs])                                     # ((nh + 2 nkv) hd, C)
        b = None if self.q_proj.bias is None else torch.cat([p.bias for p in projs])
        return F.linear(x, w, b).split(self.qkv_sizes, dim=-1)                       # 3 x (B, T, n hd)


def is_plain_linear(m):
    """An nn.Linear whose call is exactly F.linear(x, weight, bias): not a subclass, no hook on it or on every module."""
    g = nn.modules.module
    return (type(m) is nn.Linear and not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                                          or m._backward_pre_hooks)
            and not (g._global_forward_hooks or g._global_forward_pre_hooks or g._global_backward_hooks
                     or g._global_backward_pre_hooks))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        d, h, bias = config.n_embd, config.intermediate_size, config.bias
        self.llama = config.arch == "llama"
        self.gelu_approximate = config.gelu_approximate
        self.up_proj = nn.Linear(d, h, bias=bias)
        if self.llama:
            self.gate_proj = nn.Linear(d, h, bias=bias)
        self.down_proj = nn.Linear(h, d, bias=bias)

    def forward(self, x):
        if self.llama:
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # SwiGLU
        return self.down_proj(F.gelu(self.up_proj(x), approximate=self.gelu_approximate))


class Block(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln_1 = norm_layer(config)
        self.attn = Attention(config, layer_idx)
        self.ln_2 = norm_layer(config)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, rope=None):
        x = x + self.dropout(self.attn(self.ln_1(x), rope))
        return x + self.dropout(self.mlp(self.ln_2(x)))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        if config.arch == "gpt2":
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
        else:
            cos, sin = rope_cache(config)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = norm_layer(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                # residual-stream projections: std 0.02/sqrt(2L) so the residual variance does not grow with depth
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        """idx: (B, T) token ids; targets: (B, T) or None (-1 is ignored). Returns logits (B, T, V), loss."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size={self.config.block_size}")
        x = self.wte(idx)                                                            # (B, T, C)
        rope = None
        if self.config.arch == "gpt2":
            x = x + self.wpe(torch.arange(T, device=idx.device))
        else:
            rope = (self.rope_cos, self.rope_sin)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, rope)
        logits = self.lm_head(self.ln_f(x))                                          # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    # --- accounting -------------------------------------------------------------------------------------------
    def num_params(self, non_embedding=True):
        """Parameter count. non_embedding=True counts the transformer body only: blocks and final norm, without
        token and position embeddings and LM head (tied or not). That is the N of scaling laws (Kaplan et al.)
        and the quantity whose ratio is the Gstack growth factor g."""
        n = sum(p.numel() for p in self.parameters())  # a tied head is the same tensor as wte: counted once
        if non_embedding:
            n -= self.wte.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.lm_head.weight.numel()
            if self.config.arch == "gpt2":
                n -= self.wpe.weight.numel()
        return n

    def flops_per_token(self, seq_len=None):
        """Training FLOPs per token, forward + backward: 6N + 12*L*C*T (PaLM appendix B), where N counts every
        matmul weight: the body and the LM head (an embedding lookup is no matmul)."""
        c = self.config
        T = seq_len or c.block_size
        return 6 * (self.num_params(non_embedding=True) + c.n_embd * c.vocab_size) + 12 * c.n_layer * c.n_embd * T

    def estimate_mfu(self, tokens_per_iter, dt, peak_flops=None, seq_len=None):
        """Model FLOPs utilisation: achieved FLOP/s over the device's dense bf16 peak (None when unknown, e.g. CPU)."""
        peak = peak_flops or device_peak_flops()
        if not peak:
            return None
        return self.flops_per_token(seq_len) * tokens_per_iter / dt / peak

    # --- training and sampling --------------------------------------------------------------------------------
    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """AdamW; weight decay on 2-D weights (matmuls, embeddings) only, never on norms or biases. The fused kernel
        (one pass over each tensor) on CUDA and CPU; elsewhere (mps) the multi-tensor (foreach) one."""
        params = {n: p for n, p in self.named_parameters() if p.requires_grad}
        decay = [p for p in params.values() if p.dim() >= 2]
        no_decay = [p for p in params.values() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        fused = device_type in ("cuda", "cpu")
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=fused, foreach=not fused)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Sample max_new_tokens continuing idx (B, T); the context is cropped to block_size."""
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size:])
            logits = logits[:, -1, :] / max(temperature, 1e-6)
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            idx = torch.cat([idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)], dim=1)
        return idx


# dense bf16 tensor-core peaks (FLOP/s) by device name (NVIDIA datasheets); override with peak_flops=
PEAK_BF16_FLOPS = {"H100": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12, "H200": 989e12, "A100": 312e12,
                   "A10G": 125e12, "L4": 121e12, "L40": 181e12, "L40S": 362e12, "4090": 165e12}


def device_peak_flops(name=None):
    """The peak of the longest key found in the device's name ("NVIDIA L40S" is an L40S, not an L4)."""
    if name is None:
        if not torch.cuda.is_available():
            return None
        name = torch.cuda.get_device_name()
    keys = [k for k in PEAK_BF16_FLOPS if k in name]
    return PEAK_BF16_FLOPS[max(keys, key=len)] if keys else None


def config_dict(config):
    return {f.name: getattr(config, f.name) for f in fields(config)}


def config_from_dict(model_args):
    """The GPTConfig of a checkpoint's model_args. GPT-2 checkpoints written before gelu_approximate existed (up
    to commit 2b070c9) computed GPT-2's tanh GELU, so that is what their missing entry means."""
    old_gelu = "tanh" if model_args.get("arch", "gpt2") == "gpt2" else "none"
    return GPTConfig(**{"gelu_approximate": old_gelu, **model_args})


# -------------------------------------------------------------------------------------------------------------
# Hugging Face checkpoints (local directories only): config.json + model.safetensors / pytorch_model.bin,
# sharded or not. GPT-2 stores its projections as Conv1D, i.e. transposed, with q, k, v fused in c_attn.

def _hf_read_weights(path):
    def read(file):
        if file.endswith(".safetensors"):
            try:
                from safetensors.torch import load_file
            except ImportError:
                raise ImportError(f"{file} is a safetensors file: pip install safetensors") from None
            return load_file(os.path.join(path, file))
        return torch.load(os.path.join(path, file), map_location="cpu", weights_only=True)

    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if os.path.isfile(os.path.join(path, index)):
            with open(os.path.join(path, index)) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
            return {k: v for file in files for k, v in read(file).items()}
        if os.path.isfile(os.path.join(path, single)):
            return read(single)
    raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin (sharded or not) found")


def from_hf(path):
    """Load a local Hugging Face GPT-2 or Llama checkpoint directory into a GPT."""
    cfg_file = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_file):
        raise FileNotFoundError(f"{cfg_file} not found: init_from must be a local Hugging Face model directory")
    with open(cfg_file) as f:
        hf = json.load(f)
    sd = _hf_read_weights(path)
    kind = hf.get("model_type")
    if kind == "gpt2":
        act, scaled = hf.get("activation_function", "gelu_new"), hf.get("scale_attn_weights", True)
        gelus = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}  # transformers' ACT2FN names
        if act not in gelus or not scaled:
            raise ValueError(f"{cfg_file}: this GPT-2 variant is not supported (activation_function={act!r}, "
                             f"scale_attn_weights={scaled}); nanogrow's gpt2 is a GELU ({', '.join(gelus)}) with "
                             f"attention logits scaled by 1/sqrt(head_dim)")
        config = GPTConfig(arch="gpt2", block_size=hf["n_positions"], vocab_size=hf["vocab_size"],
                           n_layer=hf["n_layer"], n_head=hf["n_head"], n_embd=hf["n_embd"],
                           intermediate_size=hf.get("n_inner") or 4 * hf["n_embd"], bias=True,
                           tie_embeddings=hf.get("tie_word_embeddings", True),
                           norm_eps=hf.get("layer_norm_epsilon", 1e-5),
                           scale_attn_by_inverse_layer_idx=hf.get("scale_attn_by_inverse_layer_idx", False),
                           gelu_approximate=gelus[act])
        ours = _gpt2_from_hf_state(sd, config)
        if not config.tie_embeddings:  # an untied GPT-2 saves its head as lm_head.weight (transformers does too)
            if "lm_head.weight" not in sd:
                raise ValueError(f"{cfg_file}: tie_word_embeddings is false but {path} has no lm_head.weight")
            ours["lm_head.weight"] = sd["lm_head.weight"]
    elif kind == "llama":
        rope = {**(hf.get("rope_parameters") or {}), **(hf.get("rope_scaling") or {})}  # transformers 4.x / 5.x
        unsupported = {"rope type": rope.get("rope_type", rope.get("type", "default")),
                       "hidden_act": hf.get("hidden_act", "silu"),
                       "head_dim": hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]}
        if (unsupported["rope type"] not in (None, "default") or unsupported["hidden_act"] != "silu"
                or unsupported["head_dim"] != hf["hidden_size"] // hf["num_attention_heads"]):
            raise ValueError(f"{cfg_file}: this Llama variant is not supported ({unsupported}); nanogrow's llama is "
                             f"plain RoPE, SiLU and head_dim = hidden_size / num_attention_heads")
        config = GPTConfig(arch="llama", block_size=hf["max_position_embeddings"], vocab_size=hf["vocab_size"],
                           n_layer=hf["num_hidden_layers"], n_head=hf["num_attention_heads"],
                           n_kv_head=hf.get("num_key_value_heads") or hf["num_attention_heads"],
                           n_embd=hf["hidden_size"], intermediate_size=hf["intermediate_size"],
                           bias=_llama_bias(hf, cfg_file),
                           tie_embeddings=hf.get("tie_word_embeddings", False),
                           norm_eps=hf.get("rms_norm_eps", 1e-6),
                           rope_theta=hf.get("rope_theta") or rope.get("rope_theta", 10000.0))
        ours = {_llama_key_from_hf(k): v for k, v in sd.items() if "rotary_emb" not in k}
        if config.tie_embeddings:
            ours.pop("lm_head.weight", None)
    else:
        raise ValueError(f"{cfg_file}: model_type={kind!r} is not supported (only 'gpt2' and 'llama')")
    model = GPT(config)
    missing, unexpected = model.load_state_dict(ours, strict=False)
    missing = [k for k in missing if not (config.tie_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def _llama_bias(hf, cfg_file):
    """HF Llama has two bias settings, attention_bias (q, k, v, o projections) and mlp_bias (gate, up, down);
    nanogrow's one GPTConfig.bias puts biases in all seven, so it can express only the two being equal."""
    attn, mlp = bool(hf.get("attention_bias", False)), bool(hf.get("mlp_bias", False))
    if attn != mlp:
        raise ValueError(f"{cfg_file}: attention_bias={attn} and mlp_bias={mlp} are not supported: nanogrow's llama "
                         f"has one bias setting for the attention and MLP projections alike, so it loads only a "
                         f"Llama whose attention_bias and mlp_bias are equal")
    return attn


def _gpt2_from_hf_state(sd, config):
    sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
    C = config.n_embd
    out = {"wte.weight": sd["wte.weight"], "wpe.weight": sd["wpe.weight"],
           "ln_f.weight": sd["ln_f.weight"], "ln_f.bias": sd["ln_f.bias"]}
    for i in range(config.n_layer):
        p, q = f"h.{i}.", f"blocks.{i}."
        for n in ("ln_1", "ln_2"):
            out[q + n + ".weight"], out[q + n + ".bias"] = sd[p + n + ".weight"], sd[p + n + ".bias"]
        w, b = sd[p + "attn.c_attn.weight"].t(), sd[p + "attn.c_attn.bias"]  # Conv1D (C, 3C) -> Linear (3C, C)
        for j, n in enumerate(("q_proj", "k_proj", "v_proj")):
            out[q + f"attn.{n}.weight"], out[q + f"attn.{n}.bias"] = w[j * C:(j + 1) * C], b[j * C:(j + 1) * C]
        for src, dst in (("attn.c_proj", "attn.o_proj"), ("mlp.c_fc", "mlp.up_proj"), ("mlp.c_proj", "mlp.down_proj")):
            out[q + dst + ".weight"], out[q + dst + ".bias"] = sd[p + src + ".weight"].t(), sd[p + src + ".bias"]
    return {k: v.contiguous() for k, v in out.items()}


_LLAMA_RENAMES = [("model.embed_tokens.", "wte."), ("model.norm.", "ln_f."), ("model.layers.", "blocks."),
                  (".self_attn.", ".attn."), (".input_layernorm.", ".ln_1."), (".post_attention_layernorm.", ".ln_2.")]


def _llama_key_from_hf(k):
    for a, b in _LLAMA_RENAMES:
        k = k.replace(a, b)
    return k


def _llama_key_to_hf(k):
    for a, b in _LLAMA_RENAMES:
        k = k.replace(b, a)
    return k


def to_hf(model, path, tokenizer=None):
    """Write a GPT as a Hugging Face directory (config.json + model.safetensors, or pytorch_model.bin when
    safetensors is not installed) with the official key names, loadable by transformers' AutoModelForCausalLM.

    tokenizer: the one the model was trained with (data.prepare.get_tokenizer's, or any object with eot, n_vocab
    and save_pretrained(path, model_max_length)): its Hugging Face files go in the folder too, so that
    AutoTokenizer loads it, and its end-of-text id is the config's bos and eos id. Without one, the folder holds
    no tokenizer and bos/eos are null (not transformers' defaults, which belong to other vocabularies)."""
    c = model.config
    if tokenizer is not None and tokenizer.n_vocab > c.vocab_size:
        raise ValueError(f"to_hf: the tokenizer has {tokenizer.n_vocab} ids but the model's vocab_size is "
                         f"{c.vocab_size}: the model was trained with another tokenizer")
    eot = None if tokenizer is None else int(tokenizer.eot)
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with torch.device("meta"):
        extra = sorted(set(sd) - set(GPT(c).state_dict()))
    if extra:  # e.g. a G_random growth still blending in its new weights (grow.py)
        raise ValueError(f"to_hf: the model holds state that a plain GPT has not ({', '.join(extra[:3])}): finish "
                         f"the growth that is still blending in new weights first")
    os.makedirs(path, exist_ok=True)
    if c.arch == "gpt2":
        hf_cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": c.vocab_size,
                  "n_positions": c.block_size, "n_ctx": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer,
                  "n_head": c.n_head, "n_inner": c.intermediate_size,
                  "activation_function": {"tanh": "gelu_new", "none": "gelu"}[c.gelu_approximate],
                  "layer_norm_epsilon": c.norm_eps, "scale_attn_by_inverse_layer_idx": c.scale_attn_by_inverse_layer_idx,
                  "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "tie_word_embeddings": c.tie_embeddings}
        out = _gpt2_to_hf_state(sd, c)
        if not c.tie_embeddings:  # transformers' GPT2LMHeadModel with tie_word_embeddings=False reads it back
            out["lm_head.weight"] = sd["lm_head.weight"]
    else:
        hf_cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": c.vocab_size,
                  "hidden_size": c.n_embd, "intermediate_size": c.intermediate_size, "num_hidden_layers": c.n_layer,
                  "num_attention_heads": c.n_head, "num_key_value_heads": c.n_kv_head, "hidden_act": "silu",
                  "max_position_embeddings": c.block_size, "rms_norm_eps": c.norm_eps, "rope_theta": c.rope_theta,
                  "tie_word_embeddings": c.tie_embeddings, "attention_bias": c.bias, "mlp_bias": c.bias}
        if c.scale_attn_by_inverse_layer_idx:
            raise ValueError("to_hf: this Llama model has scale_attn_by_inverse_layer_idx, which Hugging Face Llama "
                             "cannot express")
        out = {_llama_key_to_hf(k): v for k, v in sd.items()}
        if c.tie_embeddings:
            out.pop("lm_head.weight", None)
    hf_cfg["bos_token_id"] = hf_cfg["eos_token_id"] = eot
    hf_cfg["torch_dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=2)
    if tokenizer is not None:
        tokenizer.save_pretrained(path, model_max_length=c.block_size)
    out = {k: v.contiguous().clone() for k, v in out.items()}
    try:
        from safetensors.torch import save_file
        save_file(out, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    except ImportError:
        torch.save(out, os.path.join(path, "pytorch_model.bin"))


def _gpt2_to_hf_state(sd, c):
    C = c.n_embd

    def bias(key, n):  # our bias-free GPT-2 writes zero biases: HF GPT-2 always has them
        return sd.get(key, torch.zeros(n))
    out = {"transformer.wte.weight": sd["wte.weight"], "transformer.wpe.weight": sd["wpe.weight"],
           "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": bias("ln_f.bias", C)}
    for i in range(c.n_layer):
        p, q = f"transformer.h.{i}.", f"blocks.{i}."
        for n in ("ln_1", "ln_2"):
            out[p + n + ".weight"], out[p + n + ".bias"] = sd[q + n + ".weight"], bias(q + n + ".bias", C)
        qkv = ("q_proj", "k_proj", "v_proj")
        out[p + "attn.c_attn.weight"] = torch.cat([sd[q + f"attn.{n}.weight"] for n in qkv]).t()
        out[p + "attn.c_attn.bias"] = torch.cat([bias(q + f"attn.{n}.bias", C) for n in qkv])
        for src, dst, n in (("attn.c_proj", "attn.o_proj", C), ("mlp.c_fc", "mlp.up_proj", c.intermediate_size),
                            ("mlp.c_proj", "mlp.down_proj", C)):
            out[p + src + ".weight"] = sd[q + dst + ".weight"].t()
            out[p + src + ".bias"] = bias(q + dst + ".bias", n)
    return out
