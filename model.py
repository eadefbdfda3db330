"""
The model: one file, two architectures.

  arch="gpt2"  : learned position embeddings, LayerNorm, GELU MLP, tied embedding / LM head (GPT-2)
  arch="llama" : RoPE, RMSNorm, SwiGLU MLP, grouped-query attention, untied head by default (Llama)

Both share one module layout, so that growth (grow.py) and inheritance (inherit.py) are plain operations on
`model.blocks` (an nn.ModuleList) and on state dicts:

  wte, [wpe], blocks[i].{ln_1, attn.{q_proj,k_proj,v_proj,o_proj}, ln_2, mlp.{up_proj,[gate_proj],down_proj}},
  ln_f, lm_head

Hugging Face import and export are in hf.py; checkpoints and run folders in runs.py.
"""

import math
from dataclasses import dataclass

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
    gelu_approximate: str = "none"  # gpt2: "none" = exact GELU (nanoGPT's), "tanh" = GPT-2's own (HF's gelu_new)
    rope_theta: float = 10000.0     # llama
    rope_scaling: dict = None       # llama: Hugging Face's rope_scaling, rope_type "linear" or "llama3" (Llama 3.x)
    head_size: int = None           # llama: each head's size when it is not n_embd / n_head (HF head_dim)
    mlp_bias: bool = None           # llama: biases in the MLP; None = as `bias` (HF attention_bias / mlp_bias)
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
        self._check()

    @property
    def head_dim(self):
        return self.head_size or self.n_embd // self.n_head

    def _check(self):
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "intermediate_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GPTConfig.{name}={getattr(self, name)}: must be a positive integer")
        if self.arch == "gpt2" and (self.rope_scaling, self.head_size, self.mlp_bias) != (None, None, None):
            raise ValueError("GPTConfig: rope_scaling, head_size and mlp_bias are llama settings")
        if (self.rope_scaling or {}).get("rope_type", (self.rope_scaling or {}).get("type")) not in (None, "default",
                                                                                                   "linear", "llama3"):
            raise ValueError(f"GPTConfig.rope_scaling={self.rope_scaling}: rope_type must be 'linear' or 'llama3'")
        if self.head_size is None and self.n_embd % self.n_head != 0:
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} is not divisible by n_head={self.n_head}; "
                             f"pick n_head among the divisors of n_embd")
        if self.n_head % self.n_kv_head != 0:
            raise ValueError(f"GPTConfig: n_head={self.n_head} is not a multiple of n_kv_head={self.n_kv_head}")
        if self.arch == "llama" and self.head_dim % 2 != 0:
            raise ValueError(f"GPTConfig: RoPE needs an even head size, got n_embd/n_head={self.head_dim}")
        if self.gelu_approximate not in ("none", "tanh"):
            raise ValueError(f"GPTConfig.gelu_approximate={self.gelu_approximate!r}: must be 'none' (exact GELU) or "
                             f"'tanh' (GPT-2's approximation)")
        if self.arch == "llama" and self.gelu_approximate != "none":
            raise ValueError("GPTConfig: gelu_approximate is a gpt2 setting; llama's MLP is SwiGLU (no GELU)")
        if self.arch == "gpt2" and self.n_kv_head != self.n_head:
            raise ValueError("GPTConfig: grouped-query attention (n_kv_head != n_head) is a llama feature")


def norm_layer(config):
    if config.arch == "gpt2":
        return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)
    return nn.RMSNorm(config.n_embd, eps=config.norm_eps)


def rope_cache(config):
    """cos, sin of shape (block_size, head_dim) for the 'rotate half' RoPE layout used by HF Llama."""
    hd = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))  # (hd/2,)
    inv_freq = scale_rope(inv_freq, config.rope_scaling or {})
    angles = torch.outer(torch.arange(config.block_size, dtype=torch.float32), inv_freq)      # (T, hd/2)
    angles = torch.cat([angles, angles], dim=-1)                                               # (T, hd)
    return angles.cos(), angles.sin()


def scale_rope(inv_freq, s):
    """HF's rope_scaling, for a context longer than the one trained: "linear" slows every frequency by `factor`;
    "llama3" (Llama 3.1) slows the low ones (wavelength above original_max_position_embeddings / low_freq_factor) by
    `factor`, keeps the high ones (below original_max_position_embeddings / high_freq_factor), blends in between."""
    kind = s.get("rope_type", s.get("type", "default"))
    if kind == "linear":
        return inv_freq / s["factor"]
    if kind != "llama3":
        return inv_freq
    factor, lo, hi = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    ctx = s["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    smooth = (ctx / wavelen - lo) / (hi - lo)  # 0 at wavelength ctx / lo, 1 at ctx / hi
    blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    return torch.where(wavelen > ctx / lo, inv_freq / factor, torch.where(wavelen < ctx / hi, inv_freq, blended))


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
        B, T, _ = x.shape
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
        y = y.transpose(1, 2).contiguous().view(B, T, -1)                             # (B, T, nh * hd)
        return self.o_proj(y)

    def project_qkv(self, x):
        """q, k, v of x (B, T, C) in one matmul against the three weights stacked, as nanoGPT's c_attn (one large
        matmul is faster than three small ones). The weights stay three modules, so that growth, inheritance and
        the HF mapping name them; one that is more than its matmul (a hook: grow.py's masks; a subclass: LoRA) is
        called as a module, so nothing of it is skipped."""
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
        d, h = config.n_embd, config.intermediate_size
        bias = config.bias if config.mlp_bias is None else config.mlp_bias
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

    def num_params(self, non_embedding=True):
        """Parameter count. non_embedding=True counts the transformer body only (blocks and final norm): the N of
        scaling laws (Kaplan et al.), whose ratio is the Gstack growth factor g."""
        n = sum(p.numel() for p in self.parameters())  # a tied head is the same tensor as wte: counted once
        if non_embedding:
            n -= self.wte.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.lm_head.weight.numel()
            if self.config.arch == "gpt2":
                n -= self.wpe.weight.numel()
        return n

    def flops_per_token(self, seq_len=None):
        """Training FLOPs per token, forward + backward: 6N + 12*L*C*T (PaLM appendix B; C = n_head * head_dim),
        where N counts every matmul weight: the body and the LM head (an embedding lookup is no matmul)."""
        c = self.config
        T = seq_len or c.block_size
        attn = 12 * c.n_layer * c.n_head * c.head_dim * T  # q @ k^T and scores @ v, forward and backward
        return 6 * (self.num_params(non_embedding=True) + c.n_embd * c.vocab_size) + attn

    def estimate_mfu(self, tokens_per_iter, dt, peak_flops=None, seq_len=None):
        """Model FLOPs utilisation: achieved FLOP/s over the device's dense bf16 peak (None when unknown, e.g. CPU)."""
        peak = peak_flops or device_peak_flops()
        if not peak:
            return None
        return self.flops_per_token(seq_len) * tokens_per_iter / dt / peak

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """AdamW; weight decay on 2-D weights (matmuls, embeddings) only, never on norms or biases. The fused kernel
        (one pass over each tensor) on CUDA and CPU; elsewhere (mps) the multi-tensor (foreach) one."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
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
