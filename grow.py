"""
Model growth: a trained small GPT in, a new larger GPT out (Du et al. 2024, "Stacking Your Transformers",
arXiv 2405.15319; the facts in docs/papers.md sec. 1). The paper sorts growth methods into four atomic operators,
each depthwise or widthwise, and its official code (github tongxuluo/prts) implements each one. We build every
operator the way that code builds it; where we differ, the difference is a named option whose default is the
official behaviour, or it is listed below with the reason.

              depthwise: grow_depth(model, op, factor)             widthwise: grow_width(model, n_embd, op)
  "direct"    Gstack: the whole model stacked g times               Net2Net / bert2BERT neuron splitting
  "zero"      copies with zeroed output projections, each right     W' = [[W, R], [0, R]]: new outputs read nothing
              after its source (0,0,1,1,..)                         from old inputs, new inputs enter randomly
  "random"    random layers on top of the old ones, blended in      random weights, masked in by MSG's three phases:
              from the identity over the ramp                       MLP neurons, then hidden dims, then heads
  "learn"     LiGO: each new layer a learned mix of the old ones    LiGO: learned width-expansion matrices

Named options (default = the official code): grow_width(..., "zero", layout="official" | "fan_out_zero",
rescale_norms=True | False), grow_width(..., "random", schedule="msg" | "single"), grow_depth(..., layer_map=...)
for any other placement of the new layers (e.g. make_layer_map(L, g, "interleave") for G_random).

Where we differ from the official code, and why:
- G_zero widthwise keeps the function exactly, as the paper states: the RMSNorm weights are scaled by sqrt(d/D) and
  norm_eps by d/D, so the zero new dims do not change any norm. prts' zero.py leaves the norms as they are (the
  RMS over D dims is sqrt(d/D) of the old one, so its grown model is not the small one); rescale_norms=False.
- G_random widthwise: one ramp m in [0, 1] over grow_ramp_steps drives everything (train.py's set_ramp), so MSG's
  three phases are its thirds; the official grow_step of each phase is grow_ramp_steps / 3. MSG's masked norm
  divides by the number of dims present, M, and keeps eps as it is (msg.py's algebra leaves eps * D / M), so the
  function is kept exactly at m = 0.
- GPT-2 (the official code is Llama only): G_zero widthwise defaults to duplicating the hidden dims, and G_random's
  masked norm is a LayerNorm over the dims present, because LayerNorm's mean and variance shift with zero dims.
- New weights take this model's own init (GPT._init_weights, N(0, 0.02)), not TinyLlama's _init_weights.

Every grow function returns a NEW GPT (a new GPTConfig, weights built from the old ones) and leaves its input
untouched. G_random's ramps (forward hooks with their state in buffers, so a checkpoint mid-ramp resumes exactly),
the paper's guidelines for when and how much to grow (Eq. 2) and the compute accounting used to report speedups
follow; the argument checks are gathered at the end of the file.

Conventions: Linear weights are (out_features, in_features); "fan-in" of a neuron is its row in the matrix that
computes it, "fan-out" its column in the matrix that reads it. The residual stream (n_embd wide) is written by
wte, wpe, attn.o_proj and mlp.down_proj ("writers") and read, through a norm, by q/k/v, up/gate and lm_head.
Randomness (new neurons, Net2Net choices, noise) comes from torch's global RNG: seed it for reproducible growth.
"""

import math
import numbers

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call

from model import GPT, GPTConfig, config_dict

INIT_STD = 0.02  # the model's init scale (GPT._init_weights); also the scale of the growth noise eps
DEPTH_OPS = ("direct", "zero", "random", "learn")
WIDTH_OPS = ("direct", "zero", "random", "learn")


# -------------------------------------------------------------------------------------------------------------
# small helpers

def _grown_config(config, **changes):
    return GPTConfig(**{**config_dict(config), **changes})


def _new_model(config, like):
    """A freshly initialised GPT(config) on the device, in the dtype and train/eval mode of `like`."""
    p = next(like.parameters())
    with torch.device(p.device):
        model = GPT(config)
    return model.to(p.dtype).train(like.training)


@torch.no_grad()
def _add_noise(w, a):
    """W <- (1 - a) W + a * eps, eps ~ N(0, 0.02^2): the growth noise of the paper's appendix I (in place)."""
    w.mul_(1 - a).add_(torch.randn_like(w), alpha=a * INIT_STD)


def _leaf(name):
    """'blocks.3.attn.q_proj.weight' -> 'attn.q_proj.weight', 'blocks.3.ln_1' -> 'ln_1'; other names unchanged."""
    parts = name.split(".", 2)
    return parts[2] if parts[0] == "blocks" and len(parts) == 3 else name


# -------------------------------------------------------------------------------------------------------------
# Depthwise growth (paper sec. 3; docs/papers.md sec. 1)

# Where the new layers go when only `factor` is given: as the official code places them. Gstack's stacking_list
# repeats the whole model (0..L-1, 0..L-1, ..); G_zero_depthwise.py puts each zeroed copy right after its source
# (0,0,1,1,..); msg.py puts the new random layers on top of the old ones (MsgBlock wraps layers L..L'-1); LiGO's
# depth maps start from the stacking layout.
DEFAULT_LAYOUT = {"direct": "stack", "zero": "interleave", "random": "stack", "learn": "stack"}


def make_layer_map(n_layer, factor, layout="stack"):
    """Source layer of each new layer when every layer is used `factor` times.
    layout="stack":      0..L-1, 0..L-1, ...  (Gstack: the whole model repeated; the paper's best)
    layout="interleave": 0,0,..,1,1,..       (the paper's "interpolation" ablation; the official G_zero layout)
    Partial stacking is any other list, e.g. for L=6 stacking the back half: [0,1,2,3,4,5,3,4,5]."""
    _check_make_layer_map_args(factor, layout)
    factor = int(factor)
    if layout == "stack":
        return list(range(n_layer)) * factor
    return [j for j in range(n_layer) for _ in range(factor)]


def grow_depth(model, op, factor=None, layer_map=None, noise=0.0, **opts):
    """Depthwise growth: a GPT with more layers, built from `model`'s layers (Du et al. 2024, sec. 3).

    op="direct"  G_direct, depthwise = Gstack: new layer i is a copy of old layer layer_map[i]; by default the
                 whole model stacked `factor` times (0..L-1, 0..L-1, ...). Embeddings, final norm, LM head
                 copied once; nothing rescaled. Not function preserving (and need not be: the paper's point).
                 As the official code (stacking_list).
    op="zero"    G_zero, depthwise: function preserving. The old layers keep their order; after each old layer
                 come its factor-1 new copies (0,0,1,1,...). A new block is a copy of its source layer with
                 attn.o_proj and mlp.down_proj (weights and biases) zeroed, so it adds nothing to the residual
                 stream: an identity. The other weights are copied, so the new block's attention and MLP already
                 compute useful features and the zeroed projections get a real gradient from the first step.
                 As the official code (G_zero_depthwise.py with lemon=True).
    op="random"  G_random, depthwise: the old layers first, the new freshly initialised blocks (the model's own
                 init) on top of them, as msg.py stacks them. Each new block is blended in as
                 x + m * (block(x) - x), m = 0 at first (an identity, so the function is the small model's);
                 set_ramp / ramp_value raise m to 1 over the ramp (MSG). The blend is a forward hook on the new
                 blocks (block.ramp holds m), removed at m = 1. The interleaved layout of G_zero is
                 layer_map=make_layer_map(L, factor, "interleave").
    op="learn"   G_learn, depthwise (LiGO): new layer l's weights W'_l = sum_j D[l, j] W_j, a separate D
                 (L_new x L_old) per weight kind, initialised to the stacking layout (so with steps=0 it is exactly
                 Gstack), trained on the LM loss with the small model's weights frozen, then folded into a plain
                 GPT. opts: batches (iterable of (x, y) LongTensors, on the model's device), steps=100, lr=1e-3.

    factor:    whole number of times each layer is used (g when the width is unchanged); layer_map overrides it.
    layer_map: explicit source layer per new layer. "direct"/"learn": any indices (interpolation [0,0,1,1,..],
               partial stacking). "zero"/"random": the first occurrence of each layer is the old layer itself and
               later occurrences are new blocks, so [0,1,0,1] puts the new blocks on top, [0,0,1,1] interleaves.
    noise:     a in W <- (1-a) W + a*eps, eps ~ N(0, 0.02^2) (appendix I), applied to every block matrix copied
               from the small model (not to random or zeroed ones; norms and biases untouched). noise > 0 gives up
               function preservation on purpose.
    """
    _check_grow_depth_args(model, op, factor, layer_map, noise, opts)
    small = model.config
    lmap = ([int(j) for j in layer_map] if layer_map is not None
            else make_layer_map(small.n_layer, factor, DEFAULT_LAYOUT[op]))
    config = _grown_config(small, n_layer=len(lmap))
    if op == "learn":
        big = _learn_depth(model, config, lmap, **opts)
        copied = [(i, n) for i in range(len(lmap)) for n, p in big.blocks[i].named_parameters() if p.dim() == 2]
    else:
        big, copied = _map_layers(model, config, lmap, op)
    if noise:  # appendix I: only on weights that came from the small model
        for i, name in copied:
            _add_noise(big.blocks[i].get_parameter(name), noise)
    return big


def gstack(model, g):
    """Gstack (Du et al. 2024): the whole model stacked g times, G_direct depthwise. = grow_depth(model, "direct", g)."""
    return grow_depth(model, "direct", factor=g)


def _map_layers(model, config, lmap, op):
    """direct / zero / random: new block i from old block lmap[i]. Returns the grown GPT and the (block, name) of
    every matrix copied from the small model (the ones growth noise applies to)."""
    big = _new_model(config, model)  # random init: the weights of G_random's new blocks
    state = big.state_dict()
    state.update({k: v for k, v in model.state_dict().items() if not k.startswith("blocks.")})  # wte, wpe, ln_f, head
    seen, copied, ramped = set(), [], []
    for i, j in enumerate(lmap):
        is_new = op != "direct" and j in seen  # zero / random: the first occurrence of layer j is layer j itself
        seen.add(j)
        if op == "random" and is_new:
            ramped.append(i)  # keeps its random init; blended in from m = 0 (an identity) below
            continue
        for name, t in model.blocks[j].state_dict().items():
            if name.startswith("attn.q_proj."):
                t = t * _q_scale(model.config, j, i)
            if op == "zero" and is_new and name.startswith(("attn.o_proj.", "mlp.down_proj.")):
                t = torch.zeros_like(t)  # the new block writes nothing into the residual stream: an identity
            elif t.dim() == 2:
                copied.append((i, name))
            state[f"blocks.{i}.{name}"] = t
    big.load_state_dict(state)
    for i in ramped:
        _blend_in(big.blocks[i], 0.0)
    return big, copied


def _q_scale(config, src, dst):
    """GPT-2 with scale_attn_by_inverse_layer_idx divides layer i's attention logits by (i + 1). A layer copied
    from position src to position dst gets its q_proj multiplied by (dst + 1) / (src + 1), so the copy computes
    exactly what its source did. 1.0 for every other model (nothing is rescaled, as in the paper)."""
    return (dst + 1) / (src + 1) if config.scale_attn_by_inverse_layer_idx else 1.0


def _learn_depth(model, config, lmap, batches=None, steps=100, lr=1e-3):
    """G_learn depthwise (LiGO's depth operator). For every block parameter kind n (ln_1.weight, attn.q_proj.weight,
    ..., biases included): D[n] is (L_new, L_old) and W'_l[n] = sum_j D[n][l, j] W_j[n]."""
    small, L = model.config, model.config.n_layer
    big = _new_model(config, model)
    dtype, device = next(model.parameters()).dtype, next(model.parameters()).device
    kinds = [n for n, _ in model.blocks[0].named_parameters()]
    # W[n]: (L_old, *shape), the small model's weights of kind n stacked over layers; frozen (detached)
    W = {n: torch.stack([b.get_parameter(n).detach().float() for b in model.blocks]) for n in kinds}
    D = {}
    for n in kinds:
        d = torch.zeros(len(lmap), L, device=device)
        for i, j in enumerate(lmap):  # stacking layout: new layer i = old layer lmap[i] (D one-hot in each row)
            d[i, j] = _q_scale(small, j, i) if n.startswith("attn.q_proj.") else 1.0
        D[n] = d.requires_grad_()
    # everything outside the blocks is the small model's, frozen; named_parameters lists a tied head once
    fixed = {k: v.detach() for k, v in model.named_parameters() if not k.startswith("blocks.")}

    def params():
        out = dict(fixed)
        for n in kinds:
            Wn = torch.einsum("lj,j...->l...", D[n], W[n]).to(dtype)  # (L_new, *shape)
            out.update({f"blocks.{l}.{n}": Wn[l] for l in range(len(lmap))})
        return out

    _fit_maps(big, params, list(D.values()), batches, steps, lr, "grow_depth(op='learn')")
    with torch.no_grad():  # fold the maps into plain weights
        state = big.state_dict()
        state.update({k: v for k, v in model.state_dict().items() if not k.startswith("blocks.")})
        state.update(params())
        big.load_state_dict(state)
    return big


def _fit_maps(big, make_params, maps, batches, steps, lr, who):
    """Train the growth maps (and nothing else) for `steps` steps of Adam on the LM loss of `big` evaluated with
    the parameters make_params() builds from them (torch.func.functional_call: big's own weights are not used)."""
    opt = torch.optim.Adam(maps, lr=lr)
    it = iter(batches) if int(steps) > 0 else None
    for step in range(int(steps)):
        it, (x, y) = _next_batch(it, batches, step, who)
        _, loss = functional_call(big, make_params(), (x, y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _next_batch(it, batches, step, who):
    try:
        return it, next(it)
    except StopIteration:
        it = iter(batches)  # a list or another re-iterable starts over; an exhausted generator stays empty
        try:
            return it, next(it)
        except StopIteration:
            raise ValueError(f"{who}: batches ran out after {step} steps; pass at least `steps` batches "
                             f"or a re-iterable such as a list") from None


# -------------------------------------------------------------------------------------------------------------
# G_random's ramps (MSG; docs/papers.md sec. 1). One ramp value m goes 0 -> 1 over grow_ramp_steps: the trainer
# calls set_ramp(model, ramp_value(steps_since_growth, ramp_steps)) before every step.
# Depthwise: a forward hook on each new block blends it in, out = x + m (block(x) - x) (msg.py's MsgBlock).
# Widthwise: forward hooks multiply every new output by its mask (msg.py's MsgLayer) and normalise over the dims
# present (MsgNorm). The state of both is in buffers, so a checkpoint mid-ramp resumes exactly (load_state), and
# a model that is not ramping runs no growth code: model.py's modules stay the textbook ones.

def ramp_value(step, ramp_steps):
    """Blend factor m after `step` steps of a ramp lasting ramp_steps: min(1, step / ramp_steps); 1 if ramp_steps <= 0."""
    if ramp_steps <= 0:
        return 1.0
    return min(1.0, max(0.0, step / ramp_steps))


def set_ramp(model, m):
    """Set G_random's ramp to m (clipped to [0, 1]) in place, for everything still ramping in: every new block
    (depthwise: its blend factor is m) and every width mask (widthwise: a mask rises 0 -> 1 inside its window of
    the ramp, e.g. the MLP neurons' in m in [0, 1/3] under MSG). At m = 1 the hooks and buffers are removed, so the
    model is a plain GPT again whose state_dict loads into a fresh GPT(model.config). The trainer calls
    set_ramp(model, ramp_value(steps_since_growth, ramp_steps))."""
    m = float(min(max(m, 0.0), 1.0))
    for block in _blended(model):
        block.ramp.fill_(m)
        if m >= 1.0:
            _blend_done(block)
    for module in _masked(model):
        a, b = module.ramp_window  # on the buffers' device: no host sync per module per step
        module.ramp.copy_(((m - a) / (b - a)).clamp(0.0, 1.0))
        if m >= 1.0:
            _mask_done(module)
    return model


def ramps_active(model):
    """True while anything grown with op='random' is still being blended in."""
    return bool(_blended(model) or _masked(model))


def ramp_factors(model):
    """G_random's depthwise blend factor m of every block (1.0 for a block that is fully in)."""
    return [float(b.ramp) if "ramp" in b._buffers else 1.0 for b in model.blocks]


def load_state(model, state):
    """model.load_state_dict(state) for a state dict that may carry G_random ramps: a checkpoint saved mid-ramp
    (depthwise blocks.<i>.ramp; widthwise <module>.ramp, .ramp_new, .ramp_window), or a checkpoint written before
    the depthwise blend moved out of model.py (every block had a ramp, 1.0 unless ramping). Whatever was ramping
    ramps again from where it was; depthwise factors of 1 are dropped."""
    state = dict(state)
    for i, block in enumerate(model.blocks):
        m = state.get(f"blocks.{i}.ramp")
        if m is not None and float(m) < 1:
            _blend_in(block, float(m))  # the buffer's value comes with the rest of the state below
        elif m is not None:
            del state[f"blocks.{i}.ramp"]
    for key in [k for k in state if k.endswith(".ramp_new")]:
        path = key[:-len(".ramp_new")]
        _mask_in(model.get_submodule(path), state[key], state[f"{path}.ramp_window"], float(state[f"{path}.ramp"]))
    model.load_state_dict(state)
    return model


def plain_state_dict(model):
    """The state dict a checkpoint stores: model.state_dict(), with the buffers of any G_random ramp still running,
    so that load_state(GPT(model.config), state) continues the ramp exactly. A model that is not ramping gives
    exactly a plain GPT's keys."""
    return model.state_dict()


def _blend(block, args, out):
    """Forward hook of a block being ramped in: x + m * (block(x) - x), with m = block.ramp (0: the identity)."""
    x = args[0]  # (B, T, C), the block's input
    return x + block.ramp * (out - x)


def _blend_in(block, m):
    """Start blending `block` in at m: a buffer `ramp` (saved in the state dict as blocks.<i>.ramp) and the hook."""
    block.register_buffer("ramp", torch.full((), float(m), device=next(block.parameters()).device))
    block.register_forward_hook(_blend)


def _blend_done(block):
    """The block is fully in (m = 1): remove the hook and the buffer, leaving a plain Block."""
    _remove_hooks(block, (_blend,))
    del block.ramp


def _blended(model):
    return [b for b in model.blocks if "ramp" in b._buffers]


def _mask_in(module, new, window, m=0.0):
    """Start masking `module`'s new outputs: buffers ramp_new (bool over the output's last dim, True for a new
    entry), ramp_window ((2,): the part [a, b] of the ramp over which this mask rises 0 -> 1) and ramp (the mask's
    value now), and the hook: MSG's MsgNorm for a norm, MsgLayer for any other module."""
    device = next(module.parameters()).device
    module.register_buffer("ramp_new", torch.as_tensor(new).to(device=device, dtype=torch.bool).clone())
    module.register_buffer("ramp_window", torch.as_tensor(window).to(device=device, dtype=torch.float32).clone())
    module.register_buffer("ramp", torch.full((), float(m), device=device))
    module.register_forward_hook(_masked_norm if isinstance(module, (nn.LayerNorm, nn.RMSNorm)) else _masked_output)


def _mask(module):
    """(C,) float32: 1 on the old entries of the output's last dim, the mask value on the new ones."""
    return torch.where(module.ramp_new, module.ramp, 1.0)


def _masked_output(module, args, out):
    """MSG's MsgLayer: the output (..., C) of a Linear or Embedding times the mask (C,)."""
    return out * _mask(module).to(out.dtype)


def _masked_norm(module, args, out):
    """MSG's MsgNorm: normalise over the dims present only, then mask. With mask m (C,) and M = sum(m) dims present,
    RMSNorm: y = w * (m x) / sqrt(sum((m x)^2) / M + eps); LayerNorm the same after centring m x on its mean over
    the present dims, plus the bias. At m in {0, 1} this is exactly the small model's norm over its old dims (new
    dims out); at m = 1 everywhere, the plain norm. The norm's own output `out` is recomputed here."""
    m = _mask(module)                                                   # (C,)
    xm = args[0].float() * m                                            # (B, T, C), new dims scaled by their mask
    count = m.sum()                                                     # M
    if isinstance(module, nn.LayerNorm):
        xm = xm - m * (xm.sum(-1, keepdim=True) / count)               # centred over the present dims
    y = xm * torch.rsqrt(xm.pow(2).sum(-1, keepdim=True) / count + module.eps) * module.weight.float()
    if getattr(module, "bias", None) is not None:
        y = y + module.bias.float()
    return (y * m).to(out.dtype)


def _mask_done(module):
    """The module's new outputs are fully in (every mask 1): remove the hook and the buffers."""
    _remove_hooks(module, (_masked_output, _masked_norm))
    for name in ("ramp", "ramp_new", "ramp_window"):
        delattr(module, name)


def _masked(model):
    return [m for m in model.modules() if "ramp_new" in m._buffers]


def _remove_hooks(module, fns):
    for key, hook in list(module._forward_hooks.items()):  # what a RemovableHandle.remove() would do
        if hook in fns:
            del module._forward_hooks[key]


# -------------------------------------------------------------------------------------------------------------
# Widthwise growth (paper sec. 3; docs/papers.md sec. 1)
#
# Each axis of a parameter lives in a width "space": 'hidden' (n_embd, the residual stream), 'mlp'
# (intermediate_size), 'q' (n_head * head_dim), 'kv' (n_kv_head * head_dim), or None (vocabulary, positions:
# not grown). Width growth keeps head_dim and adds whole heads (RoPE's frequencies and the 1/sqrt(head_dim) scale
# depend on head_dim), keeping the number of q heads per kv head.

_AXES = {
    "wte.weight": (None, "hidden"), "wpe.weight": (None, "hidden"), "lm_head.weight": (None, "hidden"),
    "ln_f.weight": ("hidden",), "ln_f.bias": ("hidden",),
    "ln_1.weight": ("hidden",), "ln_1.bias": ("hidden",), "ln_2.weight": ("hidden",), "ln_2.bias": ("hidden",),
    "attn.q_proj.weight": ("q", "hidden"), "attn.q_proj.bias": ("q",),
    "attn.k_proj.weight": ("kv", "hidden"), "attn.k_proj.bias": ("kv",),
    "attn.v_proj.weight": ("kv", "hidden"), "attn.v_proj.bias": ("kv",),
    "attn.o_proj.weight": ("hidden", "q"), "attn.o_proj.bias": ("hidden",),
    "mlp.up_proj.weight": ("mlp", "hidden"), "mlp.up_proj.bias": ("mlp",),
    "mlp.gate_proj.weight": ("mlp", "hidden"), "mlp.gate_proj.bias": ("mlp",),
    "mlp.down_proj.weight": ("hidden", "mlp"), "mlp.down_proj.bias": ("hidden",),
}
# parameters that write into the residual stream
_WRITERS = ("wte.weight", "wpe.weight", "attn.o_proj.weight", "attn.o_proj.bias",
            "mlp.down_proj.weight", "mlp.down_proj.bias")
# G_random: the modules msg.py masks (MsgLayer on every Linear and Embedding but the LM head, MsgNorm on every
# norm), with the space of their output's last dim
_MASKED_OUTPUTS = {"wte": "hidden", "wpe": "hidden", "attn.q_proj": "q", "attn.k_proj": "kv", "attn.v_proj": "kv",
                   "attn.o_proj": "hidden", "mlp.up_proj": "mlp", "mlp.gate_proj": "mlp", "mlp.down_proj": "hidden",
                   "ln_1": "hidden", "ln_2": "hidden", "ln_f": "hidden"}
# ... and the part of the ramp m over which each space's mask rises 0 -> 1. "msg": msg.py's MsgMask, one phase
# after the other (MLP neurons, hidden dims, attention heads), each a third of the ramp; "single": all together.
_RAMP_WINDOWS = {"msg": {"mlp": (0.0, 1 / 3), "hidden": (1 / 3, 2 / 3), "q": (2 / 3, 1.0), "kv": (2 / 3, 1.0)},
                 "single": {"mlp": (0.0, 1.0), "hidden": (0.0, 1.0), "q": (0.0, 1.0), "kv": (0.0, 1.0)}}


def grow_width(model, n_embd, op, intermediate_size=None, n_head=None, noise=0.0, **opts):
    """Widthwise growth: a GPT with a larger hidden size n_embd, more heads (head_dim kept) and a wider MLP
    (intermediate_size scales with n_embd unless given), built from `model` (Du et al. 2024, sec. 3).

    op="direct"  G_direct, widthwise: Net2Net / bert2BERT neuron splitting. New MLP neurons and new heads (a new kv
                 head brings its group of q heads) copy randomly chosen old ones (fan-in rows copied); the matrix
                 reading a duplicated neuron divides its column by the number of copies (1/count), so every
                 sum is kept. New hidden dims copy random old dims: embeddings, norm weights and the rows of
                 o_proj / down_proj are copied, q/k/v/up/gate/lm_head columns split (tied GPT-2 head: wte is
                 copied, and ln_f's weight and bias carry the 1/count instead).
                 What is kept exactly: every linear map, every MLP (SwiGLU/GELU act neuron by neuron) and every
                 attention head (whole heads are copied, head_dim unchanged): given x' = x duplicated, attn and mlp
                 return their old output duplicated. What changes: every LayerNorm / RMSNorm (2L+1 of them), whose
                 mean / variance / RMS over D dims weight each old dim by its number of copies, so the function
                 changes at the norms unless every dim has the same number of copies: hidden="duplicate" with
                 n_embd a multiple of the old one makes growth exactly function preserving.
    op="zero"    G_zero, widthwise: function preserving. layout="official" (default; prts zero.py): every Linear
                 weight (out, in) grows as W' = [[W, R], [0, R]]: the new outputs (rows) read nothing from the old
                 inputs, every new input (column) enters through random weights R (the model's init); the new
                 columns of wte/wpe and the new entries of norm weights and biases are 0. So the residual stream is
                 [x; 0], the new heads' q, k, v and the new MLP neurons' inputs are 0 (their outputs too), and
                 nothing old changes. The new parts come alive through the random blocks: the new heads' v first
                 (o_proj reads them through R), then the new hidden dims (o_proj's new rows read the new heads).
                 layout="fan_out_zero": the other way round: new neurons' fan-in random, fan-out zero (every writer's
                 new entries 0, every reader's random), new norm entries the mean of the old ones.
                 The zero hidden dims change only the norms: RMSNorm's RMS over D dims is sqrt(d/D) of the old one,
                 which rescale_norms=True (default) undoes by scaling the norm weights by sqrt(d/D) and norm_eps by
                 d/D (new config), so Llama's logits are kept exactly; rescale_norms=False is prts' zero.py, which
                 does not (its grown model computes a different function). LayerNorm (GPT-2) cannot be kept with
                 zero dims (its mean and variance shift in an input-dependent way), so GPT-2 defaults to
                 hidden="duplicate" when n_embd is a multiple of the old one: every hidden dim is duplicated equally
                 (mean and variance kept) and only heads / MLP neurons are new: exact. With hidden="zero" on GPT-2
                 the new dims stay exactly zero but the LayerNorms change the function.
    op="random"  G_random, widthwise (MSG; prts msg.py): the old weights in the top-left corner of every matrix,
                 every other entry random (the model's init; new norm weights 1). Every module writing a grown
                 output (wte, wpe, q/k/v, o_proj, up/gate, down_proj, the norms; not lm_head) multiplies its new
                 outputs by a mask that set_ramp raises 0 -> 1, and the norms normalise over the dims present
                 (_masked_norm). At ramp 0 every mask is 0 and the function is the small model's, exactly.
                 schedule="msg" (default, msg.py): the masks rise one phase after the other, each over a third of
                 the ramp: the MLP neurons (m in [0, 1/3]), then the hidden dims ([1/3, 2/3]), then the attention
                 heads ([2/3, 1]); msg.py's grow_step (5000) is a phase, so grow_ramp_steps = 3 * grow_step.
                 schedule="single": every mask rises together over the whole ramp. The masks are forward hooks with
                 their state in buffers (saved in the state dict; load_state restores them); at ramp 1 they are
                 removed and the model is a plain GPT.
    op="learn"   G_learn, widthwise (LiGO): expansion maps B_emb (D x d), B_mlp, B_q, B_k, B_v (and B_o for grouped-
                 query attention; otherwise o_proj uses B_v as in the paper), shared by all layers, initialised
                 [I; N(0, 1/new_size)]: W'_q = B_q W_q B_emb^T, W'_o = B_emb W_o B_v^T, W'_up/gate = B_mlp W B_emb^T,
                 W'_down = B_emb W B_mlp^T, norm' = B_emb norm, E' = E B_emb^T (biases: B b). Trained for `steps`
                 steps on the LM loss with the small weights frozen, then folded into a plain GPT. Not function
                 preserving at init. opts: batches, steps=100, lr=1e-3.

    hidden ("direct" and "zero"): how new hidden dims are made: "random" (copy random old dims; default for
    "direct"), "duplicate" (dim i copies dim i mod d; needs n_embd a multiple of d), "zero" (fresh: the operator's
    own rule above; default for "zero" except GPT-2, which defaults to "duplicate" when it can).
    noise: as in grow_depth, on the block-matrix entries that came from the small model (all block matrices for
    "learn").
    """
    _check_grow_width_args(model, n_embd, op, intermediate_size, n_head, noise, opts)
    small = model.config
    config = _width_config(small, n_embd, n_head, intermediate_size)
    if op == "learn":
        big, fresh = _learn_width(model, config, **opts), {}
    elif op == "random":
        big, fresh = _msg_width(model, config, opts.get("schedule", "msg"))
    else:
        hidden = opts.get("hidden") or _default_hidden(small, config, op)
        layout, rescale = opts.get("layout", "official"), opts.get("rescale_norms", True)
        if op == "zero" and hidden == "zero" and small.arch == "llama" and rescale:
            # RMS over [x; 0] is sqrt(d/D) * RMS(x) only if eps shrinks too: mean(x'^2) + eps' = d/D (mean(x^2) + eps)
            config = _grown_config(config, norm_eps=small.norm_eps * small.n_embd / config.n_embd)
        big, fresh = _grow_width_mapped(model, config, op, hidden, layout, rescale)
    if noise:
        _width_noise(big, fresh, noise)
    return big


def _default_hidden(small, config, op):
    if op == "direct":
        return "random"
    return "duplicate" if small.arch == "gpt2" and config.n_embd % small.n_embd == 0 else "zero"


def _width_config(c, n_embd, n_head, intermediate_size):
    """The grown config: head_dim kept (n_head = n_embd / head_dim), q heads per kv head kept, intermediate_size
    scaled with n_embd unless given (the arguments are checked by _check_width_config)."""
    if n_head is None:
        n_head = n_embd // c.head_dim
    if intermediate_size is None:
        intermediate_size = c.intermediate_size * n_embd // c.n_embd
    group = c.n_head // c.n_kv_head
    return _grown_config(c, n_embd=n_embd, n_head=n_head, n_kv_head=n_head // group,
                         intermediate_size=int(intermediate_size))


def _width_maps(small, config, op, hidden):
    """For each space: a LongTensor over the new indices giving the old index each one copies, or -1 for a new
    ("fresh") one. Old indices come first and map to themselves, so the old model sits in the top-left corner."""
    def grow(old, new, how):
        if how == "copy":          # Net2Net / bert2BERT: each new neuron copies a randomly chosen old one
            extra = torch.randint(old, (new - old,))
        elif how == "duplicate":   # new index i copies i mod old: every old index used equally often
            extra = torch.arange(old, new) % old
        else:                      # fresh
            extra = torch.full((new - old,), -1)
        return torch.cat([torch.arange(old), extra])

    neurons = "copy" if op == "direct" else "fresh"
    hd, group = small.head_dim, small.n_head // small.n_kv_head
    kv_heads = grow(small.n_kv_head, config.n_kv_head, neurons)                            # (n_kv_head',)
    # q head h reads kv head h // group; a copied kv head brings its whole group of q heads along
    q_heads = torch.tensor([int(kv_heads[h // group]) * group + h % group if kv_heads[h // group] >= 0 else -1
                            for h in range(config.n_head)], dtype=torch.long)             # (n_head',)

    def head_dims(heads):  # head index -> dims of that head (head_dim each), -1 stays -1
        return torch.where(heads[:, None] >= 0, heads[:, None] * hd + torch.arange(hd), -1).flatten()

    return {"hidden": grow(small.n_embd, config.n_embd, {"random": "copy", "duplicate": "duplicate",
                                                         "zero": "fresh"}[hidden]),
            "mlp": grow(small.intermediate_size, config.intermediate_size, neurons),
            "q": head_dims(q_heads), "kv": head_dims(kv_heads)}


def _expand(w, axes, maps, counts, split_cols, fresh):
    """Grow one parameter. Along each grown axis, entry i takes old entry maps[space][i]; along a matrix's input
    axis (columns, split_cols=True) copied entries are divided by how many copies their source has, so W' x' = W x
    for x' = x duplicated (Net2Net's fan-out split). Entries with a fresh (-1) index on any axis take `fresh`
    (a tensor of the grown shape). Returns (new tensor, bool mask of the fresh entries)."""
    out = w
    mask = torch.zeros((), dtype=torch.bool, device=w.device)
    for axis, space in enumerate(axes):
        if space is None:
            continue
        src = maps[space].to(w.device)
        out = out.index_select(axis, src.clamp(min=0))
        shape = [1] * w.dim()
        shape[axis] = -1
        if split_cols and axis == 1:
            out = out / counts[space].to(w.device)[src.clamp(min=0)].view(shape).to(out.dtype)
        mask = mask | (src < 0).view(shape)
    mask = mask.expand(out.shape)
    return torch.where(mask, fresh, out), mask


def _fresh_values(leaf, init, maps, op, layout):
    """What the fresh entries of parameter `leaf` hold (a tensor of its grown shape); init is the model's random
    init of it. G_direct (fresh only with hidden="zero"): the init."""
    if op != "zero":
        return init
    if layout == "fan_out_zero":  # new neurons' fan-out zero: every writer's new entries 0, every reader's random
        return torch.zeros_like(init) if leaf in _WRITERS else init
    # official (prts zero.py): a Linear weight (out, in) grows as [[W, R], [0, R]]: its new columns (new inputs)
    # keep the init, its new rows read the old inputs through 0; embeddings' new columns, norms, biases: 0
    if leaf.endswith("_proj.weight") or leaf == "lm_head.weight":
        new_inputs = maps[_AXES[leaf][1]] < 0                                      # (in,)
        return torch.where(new_inputs.to(init.device), init, torch.zeros_like(init))
    return torch.zeros_like(init)


def _grow_width_mapped(model, config, op, hidden, layout="official", rescale_norms=True):
    """direct / zero: every new entry is either a copy of an old one (via _width_maps) or fresh (_fresh_values).
    Returns the grown GPT and {parameter name: bool mask of its fresh entries}."""
    small = model.config
    d, D = small.n_embd, config.n_embd
    maps = _width_maps(small, config, op, hidden)
    sizes = {"hidden": d, "mlp": small.intermediate_size, "q": small.n_head * small.head_dim,
             "kv": small.n_kv_head * small.head_dim}
    counts = {k: torch.bincount(v[v >= 0], minlength=sizes[k]).clamp(min=1) for k, v in maps.items()}
    big = _new_model(config, model)
    state = big.state_dict()  # the model's random init: the R of the layouts
    fresh_masks = {}
    with torch.no_grad():
        for name, w in model.state_dict().items():
            leaf = _leaf(name)
            if name == "lm_head.weight" and small.tie_embeddings:
                continue  # the same tensor as wte.weight; set below
            fresh = _fresh_values(leaf, state[name], maps, op, layout)
            split = leaf.endswith("_proj.weight") or leaf == "lm_head.weight"  # Linear inputs: split copied columns
            new, mask = _expand(w, _AXES[leaf], maps, counts, split, fresh)
            if op == "zero" and leaf.startswith("ln_") and hidden == "zero" and D > d:
                new = _zero_dims_norm(new[:d], D, leaf, small.arch == "llama" and rescale_norms, layout)
                mask = torch.zeros_like(mask)
            state[name] = new
            if mask.any():
                fresh_masks[name] = mask
        if small.tie_embeddings:
            # tied head = wte, whose hidden columns are copied (not split); the 1/count moves into ln_f, whose
            # output only feeds the head: logits = sum_i E[v, g(i)] ln_f(x)_g(i) / count(g(i)) = the old logits
            state["lm_head.weight"] = state["wte.weight"]
            div = counts["hidden"][maps["hidden"].clamp(min=0)].to(state["ln_f.weight"])
            state["ln_f.weight"] = state["ln_f.weight"] / div
            if "ln_f.bias" in state:
                state["ln_f.bias"] = state["ln_f.bias"] / div
            if "wte.weight" in fresh_masks:
                fresh_masks["lm_head.weight"] = fresh_masks["wte.weight"]
    big.load_state_dict(state)
    return big, fresh_masks


def _zero_dims_norm(old, D, leaf, rescale, layout):
    """A norm's weight or bias (d,) -> (D,) when the D - d new dims of the residual stream are zero (G_zero).
    rescale: RMSNorm weights times sqrt(d/D), which with norm_eps times d/D undoes the RMS shrink over [x; 0].
    The new entries multiply zero dims, so the function does not depend on them: 0 as prts' zero.py ("official"),
    or the mean of the old weights ("fan_out_zero", so the new dims are normalised like the old ones later)."""
    d = len(old)
    if rescale and leaf.endswith(".weight"):
        old = old * math.sqrt(d / D)
    fill = old.mean() if layout == "fan_out_zero" and leaf.endswith(".weight") else torch.zeros((), dtype=old.dtype,
                                                                                                device=old.device)
    return torch.cat([old, fill.expand(D - d)])


def _msg_width(model, config, schedule):
    """G_random widthwise (MSG, prts msg.py): the old weights in the top-left corner of the new ones, everything
    else the model's init, and a mask on every new output (_mask_in), all at 0. Returns the grown GPT and
    {parameter name: bool mask of its fresh entries}."""
    small = model.config
    maps = _width_maps(small, config, "random", "zero")  # every new index fresh (-1): nothing is copied twice
    big = _new_model(config, model)
    state = big.state_dict()  # the model's init; msg.py keeps its target model's init outside the old corner
    fresh_masks = {}
    with torch.no_grad():
        for name, w in model.state_dict().items():
            if name == "lm_head.weight" and small.tie_embeddings:
                continue  # the same tensor as wte.weight
            state[name], mask = _expand(w, _AXES[_leaf(name)], maps, None, False, state[name])
            if mask.any():
                fresh_masks[name] = mask
        if small.tie_embeddings:
            state["lm_head.weight"] = state["wte.weight"]
    big.load_state_dict(state)
    for name, module in big.named_modules():
        space = _MASKED_OUTPUTS.get(_leaf(name))
        if space is not None and (maps[space] < 0).any():
            _mask_in(module, maps[space] < 0, _RAMP_WINDOWS[schedule][space])
    return big, fresh_masks


@torch.no_grad()
def _width_noise(big, fresh, a):
    """Growth noise (appendix I) on the block matrices, only on the entries that came from the small model."""
    for name, p in big.named_parameters():
        if name.startswith("blocks.") and p.dim() == 2:
            old = p.detach().clone()
            _add_noise(p, a)
            if name in fresh:
                p.copy_(torch.where(fresh[name], old, p))


def _learn_width(model, config, batches=None, steps=100, lr=1e-3):
    """G_learn widthwise (LiGO's width operator): every grown axis is multiplied by its expansion map B."""
    small, hd = model.config, model.config.head_dim
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    sizes = {"hidden": (config.n_embd, small.n_embd),
             "mlp": (config.intermediate_size, small.intermediate_size),
             "q": (config.n_head * hd, small.n_head * hd),
             "k": (config.n_kv_head * hd, small.n_kv_head * hd),
             "v": (config.n_kv_head * hd, small.n_kv_head * hd)}
    if small.n_kv_head != small.n_head:
        sizes["o"] = sizes["q"]  # GQA: o_proj reads n_head outputs, not n_kv_head-sized v: it needs its own map
    # B = [I; N(0, 1/new)]: the old entries map to themselves, the new ones are random mixes of old ones
    B = {k: torch.cat([torch.eye(old, device=device), torch.randn(new - old, old, device=device) / math.sqrt(new)])
         .requires_grad_() for k, (new, old) in sizes.items()}
    old = {k: v.detach().float() for k, v in model.named_parameters()}  # frozen; a tied head appears once (wte)

    def space(leaf, s):
        if s == "kv":
            return leaf.split(".")[1][0]  # "attn.k_proj.weight" -> "k"
        if s == "q" and leaf.startswith("attn.o_proj"):
            return "o" if "o" in B else "v"
        return s

    def params():
        out = {}
        for name, w in old.items():
            leaf = _leaf(name)
            for axis, s in enumerate(_AXES[leaf]):
                if s is not None:  # contract axis with B[s]: (new, old) x (..., old, ...) -> (..., new, ...)
                    w = torch.movedim(torch.tensordot(B[space(leaf, s)], w, dims=([1], [axis])), 0, axis)
            out[name] = w.to(dtype)
        return out

    big = _new_model(config, model)
    _fit_maps(big, params, list(B.values()), batches, steps, lr, "grow_width(op='learn')")
    with torch.no_grad():
        state = big.state_dict()
        state.update(params())
        if small.tie_embeddings:
            state["lm_head.weight"] = state["wte.weight"]
        big.load_state_dict(state)
    return big


# -------------------------------------------------------------------------------------------------------------
# Checks

@torch.no_grad()
def logit_gap(a, b, idx):
    """Largest |logits_a - logits_b| on the token batch idx (B, T): 0 (up to float error) when growth kept the
    function. Both models must share architecture and vocabulary."""
    _check_logit_gap_args(a, b)
    return (a(idx)[0].float() - b(idx)[0].float()).abs().max().item()


# -------------------------------------------------------------------------------------------------------------
# The paper's guidelines and compute accounting (Du et al. 2024, sec. 5-6; docs/papers.md sec. 1). Pure math.
#
# Two ways to count a grown run's compute, and the tables report both (speedups_at_loss):
#   exact FLOPs  what train.py logs: GPT.flops_per_token (6N with N counting the LM head, plus 12 L C T for
#                attention) per token, the small model's tokens at the small model's cost (growth_flops);
#   the paper's  tokens in large-model units: a small-model token counts 1/g of a large-model token (paper_tokens),
#                i.e. compute proportional to the non-embedding parameters only. It ignores the LM head and
#                attention, which cost the same per token before and after depthwise growth, so at small widths
#                (where the head is a large share of a token's cost) it reports a larger speedup than exact FLOPs.

def training_flops(n_params, tokens):
    """C ~ 6 N D, the compute the guidelines take as input (N: parameters, D: tokens)."""
    return 6.0 * n_params * tokens


def growth_timing(N, C):
    """Growth timing d (tokens to train the small model before stacking), the paper's Eq. 2 (fitted at g = 4):
        log10(d) = 0.88 log10(N) + 163.27 / log10(C) - 5.74
    N: parameters of the target (large) model, C: its training compute in FLOPs. The paper's check values use
    nominal sizes and C = 6 N D: growth_timing(7e9, training_flops(7e9, 2e12)) = 11.11e9 (Llama2-7B on 2T),
    8e9 / 15T -> 6.58e9 (Llama3-8B), 13e9 / 2T -> 15.84e9, 70e9 / 2T -> 42.48e9."""
    return 10.0 ** (0.88 * math.log10(N) + 163.27 / math.log10(C) - 5.74)


def growth_factor_fit(N, C):
    """The paper's tentative fit for the growth factor g: log10(g) = 1.01 log10(N) - 29.88 / log10(C) - 7.36.
    It extrapolates badly (about 19 for 7B on 2T tokens, where the sweeps put the optimum between 2 and 4):
    the paper itself falls back to g = 4. Reported for completeness, not a recommendation."""
    return 10.0 ** (1.01 * math.log10(N) - 29.88 / math.log10(C) - 7.36)


def growth_factor(before, after):
    """The growth factor g of one growth as the paper defines it: the ratio of non-embedding parameters, here of the
    transformer blocks (GPT.num_params without the final norm), so depthwise it is exactly the layer ratio (6 -> 24
    layers: 4.0). before, after: GPTConfigs or their dicts (config_dict; a metrics.jsonl grow event's `before` and
    `after`). The g that paper_tokens needs."""
    def block_params(c):
        with torch.device("meta"):  # shapes only: no memory, no init cost
            return sum(p.numel() for p in GPT(c if isinstance(c, GPTConfig) else GPTConfig(**c)).blocks.parameters())
    return block_params(after) / block_params(before)


def growth_flops(small_flops_per_token, d, large_flops_per_token, D_large):
    """Exact compute of a grown run, C = C_small + C_large: d tokens on the small model, then D_large on the large
    one, each at its own flops_per_token (GPT.flops_per_token: LM head and attention included). The paper's
    convention instead counts a small-model token as 1/g of a large one: paper_tokens."""
    return small_flops_per_token * d + large_flops_per_token * D_large


def paper_tokens(tokens, grow_tokens, g):
    """The Gstack paper's compute convention, in large-model tokens: each of the first grow_tokens tokens (trained
    on the small model) counts 1/g of a large-model token, every later token counts 1. tokens: a number or an
    array of token counts along a run (a run that never grew: grow_tokens=0). Exact FLOPs (growth_flops) differ
    from this most at small widths, where the head is a large share of a token's cost."""
    tokens = np.asarray(tokens, dtype=float)
    return np.minimum(tokens, grow_tokens) / g + np.maximum(tokens - grow_tokens, 0.0)


def speedup(flops_scratch, flops_grown):
    """The paper's speedup at equal loss: sp = C_scratch / C_grown - 1 (0.546 = 54.6%). C in either convention, the
    same for both runs: exact FLOPs (growth_flops, what train.py logs) or the paper's tokens (paper_tokens)."""
    return flops_scratch / flops_grown - 1.0


def flops_to_loss(flops, losses, target):
    """FLOPs (or tokens: any increasing x) at which a loss curve first reaches `target`, linearly interpolated
    between the two points around the crossing; np.inf if the curve never gets there."""
    flops, losses = np.asarray(flops, dtype=float), np.asarray(losses, dtype=float)
    _check_curve(flops, losses)
    hit = np.flatnonzero(losses <= target)
    if len(hit) == 0:
        return np.inf
    i = hit[0]
    if i == 0:
        return float(flops[0])
    f0, f1, l0, l1 = flops[i - 1], flops[i], losses[i - 1], losses[i]
    return float(f0 + (f1 - f0) * (l0 - target) / (l0 - l1))


def speedup_at_loss(scratch, grown, target):
    """scratch, grown: (flops, losses) curves. Returns (FLOPs scratch needs, FLOPs grown needs, speedup) to reach
    the target loss; speedup is nan when either curve never reaches it. A grown curve's FLOPs must include the
    small model's (growth_flops). Any cost works in place of FLOPs, e.g. paper_tokens."""
    f_scratch, f_grown = flops_to_loss(*scratch, target), flops_to_loss(*grown, target)
    sp = speedup(f_scratch, f_grown) if np.isfinite(f_scratch) and np.isfinite(f_grown) else float("nan")
    return f_scratch, f_grown, sp


def speedups_at_loss(scratch, grown, target, grow_tokens, g):
    """The speedup of a grown run over scratch at equal loss in both conventions, for tables that report them side
    by side. scratch, grown: (tokens, flops, losses) along each run, in training order (metrics.jsonl evaluation
    lines; the grown run's tokens and flops include the small phase, as train.py logs them). grow_tokens: tokens the
    small model trained (the grow event's tokens; 0 for a run that never grew); g: growth_factor(before, after).
    Returns {"flops_scratch", "flops_grown", "speedup_flops": exact FLOPs, "tokens_scratch", "paper_tokens_grown",
    "speedup_paper": the paper's convention}; a speedup is nan when either run never reaches the target."""
    (t_s, f_s, l_s), (t_g, f_g, l_g) = scratch, grown
    flops_s, flops_g, sp_flops = speedup_at_loss((f_s, l_s), (f_g, l_g), target)
    tok_s, tok_g, sp_paper = speedup_at_loss((t_s, l_s), (paper_tokens(t_g, grow_tokens, g), l_g), target)
    return {"flops_scratch": flops_s, "flops_grown": flops_g, "speedup_flops": sp_flops,
            "tokens_scratch": tok_s, "paper_tokens_grown": tok_g, "speedup_paper": sp_paper}


# -------------------------------------------------------------------------------------------------------------
# Argument checks: every public function above calls one guard first, so the algorithms read without them.
# Each raises ValueError (TypeError for an unknown option) saying what is wrong and what to do instead.

def validate_growth(config, dim, op, factor=None, layer_map=None, n_embd=None, opts=None):
    """Check growth settings against a model's config without growing anything, so a trainer can refuse bad
    settings before it trains for hours and only then reaches the growth step. Raises ValueError (TypeError for an
    unknown option) like the growth. opts: the operator's extra options, without the G_learn batches."""
    opts = {k: v for k, v in (opts or {}).items()}
    if op == "learn":
        opts.setdefault("batches", ())  # the trainer supplies them at the growth step
    if dim == "depth":
        _check_op("grow_depth", op, DEPTH_OPS)
        _check_opts("grow_depth", op, opts, ("batches", "steps", "lr") if op == "learn" else ())
        _check_layer_map(config.n_layer, op, factor, layer_map)
    elif dim == "width":
        _check_op("grow_width", op, WIDTH_OPS)
        _check_width_config(config, n_embd, None, None, "grow_width")
        _check_width_opts("grow_width", op, opts, config, n_embd)
    else:
        raise ValueError(f"growth dim={dim!r}: expected 'depth' or 'width'")


def _check_grow_depth_args(model, op, factor, layer_map, noise, opts):
    who = "grow_depth"
    _check_op(who, op, DEPTH_OPS)
    _check_opts(who, op, opts, ("batches", "steps", "lr") if op == "learn" else ())
    _check_growable(model, who)
    _check_noise(who, noise)
    _check_layer_map(model.config.n_layer, op, factor, layer_map)
    if op == "learn":
        _check_learn_opts("grow_depth(op='learn')", opts)


def _check_make_layer_map_args(factor, layout):
    _whole(factor, "factor", "make_layer_map")
    if layout not in ("stack", "interleave"):
        raise ValueError(f"make_layer_map: unknown layout {layout!r}; expected 'stack' or 'interleave'")


def _check_layer_map(n_layer, op, factor, layer_map):
    who = "grow_depth"
    if layer_map is None:
        if factor is None:
            raise ValueError(f"{who}: give factor (e.g. factor=4, the paper's recommended g) or an explicit layer_map")
        _whole(factor, "factor", who)
        return
    if isinstance(layer_map, (str, bytes)) or not hasattr(layer_map, "__iter__"):
        raise ValueError(f"{who}: layer_map={layer_map!r} must be a list of source layer indices, e.g. [0, 0, 1, 1]")
    layer_map = list(layer_map)
    if not layer_map:
        raise ValueError(f"{who}: layer_map is empty; it needs one source layer index per new layer")
    for i, j in enumerate(layer_map):
        if isinstance(j, bool) or not isinstance(j, numbers.Integral):
            raise ValueError(f"{who}: layer_map[{i}]={j!r} is not a layer index (an int)")
        if not 0 <= j < n_layer:
            raise ValueError(f"{who}: layer_map[{i}]={j} names a layer that does not exist; "
                             f"the model has {n_layer} layers (0..{n_layer - 1})")
    if op in ("zero", "random") and list(dict.fromkeys(int(j) for j in layer_map)) != list(range(n_layer)):
        # The first occurrence of each source layer is that layer itself; later occurrences are the new blocks.
        # The function is kept only if the originals appear, all of them, in their old order.
        raise ValueError(f"{who}: layer_map {layer_map} for op={op!r} must contain every layer 0..{n_layer - 1}, "
                         f"their first occurrences in order (those are the old layers; repeats are the new blocks), "
                         f"e.g. [0, 0, 1, 1] or [0, 1, 0, 1]")


def _check_grow_width_args(model, n_embd, op, intermediate_size, n_head, noise, opts):
    who = "grow_width"
    _check_op(who, op, WIDTH_OPS)
    _check_growable(model, who)
    _check_noise(who, noise)
    _check_width_config(model.config, n_embd, n_head, intermediate_size, who)
    _check_width_opts(who, op, opts, model.config, n_embd)
    if op == "learn":
        _check_learn_opts("grow_width(op='learn')", opts)


def _check_width_opts(who, op, opts, small, n_embd):
    allowed = {"direct": ("hidden",), "zero": ("hidden", "layout", "rescale_norms"), "random": ("schedule",),
               "learn": ("batches", "steps", "lr")}[op]
    _check_opts(who, op, opts, allowed)
    hidden = opts.get("hidden")
    if hidden is not None and hidden not in ("random", "duplicate", "zero"):
        raise ValueError(f"{who}: hidden={hidden!r}; expected 'random', 'duplicate' or 'zero'")
    if hidden == "duplicate" and n_embd % small.n_embd:
        raise ValueError(f"{who}: hidden='duplicate' needs n_embd={n_embd} to be a multiple of the current "
                         f"n_embd={small.n_embd} (every dim copied equally often)")
    for opt, values in (("layout", ("official", "fan_out_zero")), ("schedule", ("msg", "single")),
                        ("rescale_norms", (True, False))):
        if opt in opts and not any(opts[opt] is v or (isinstance(v, str) and opts[opt] == v) for v in values):
            raise ValueError(f"{who}: {opt}={opts[opt]!r}; expected {' or '.join(map(repr, values))}")


def _check_width_config(config, n_embd, n_head, intermediate_size, who):
    """The widths _width_config would build: clear errors for anything that does not divide or would shrink."""
    c, hd = config, config.head_dim
    if isinstance(n_embd, bool) or not isinstance(n_embd, numbers.Integral):
        raise ValueError(f"{who}: n_embd={n_embd!r} must be an int")
    if n_embd < c.n_embd:
        raise ValueError(f"{who}: n_embd={n_embd} is smaller than the current n_embd={c.n_embd}; growth only widens")
    if n_head is None:
        if n_embd % hd:
            raise ValueError(f"{who}: n_embd={n_embd} is not a multiple of head_dim={hd}; width growth adds whole "
                             f"attention heads and keeps head_dim, so pick n_embd among multiples of {hd}")
        n_head = n_embd // hd
    elif isinstance(n_head, bool) or not isinstance(n_head, numbers.Integral) or n_head < 1:
        raise ValueError(f"{who}: n_head={n_head!r} must be a positive int")
    elif n_embd % n_head:
        raise ValueError(f"{who}: n_embd={n_embd} is not divisible by n_head={n_head}")
    elif n_embd // n_head != hd:
        raise ValueError(f"{who}: n_head={n_head} would change head_dim from {hd} to {n_embd // n_head}; width growth "
                         f"keeps head_dim (RoPE and the attention scale depend on it), so n_head must be {n_embd // hd}"
                         if n_embd % hd == 0 else
                         f"{who}: n_head={n_head} would change head_dim from {hd} to {n_embd // n_head}; width growth "
                         f"keeps head_dim, so n_embd must be a multiple of {hd}")
    group = c.n_head // c.n_kv_head
    if n_head % group:
        raise ValueError(f"{who}: n_head={n_head} is not a multiple of {group}, the number of q heads per kv head "
                         f"(n_head={c.n_head}, n_kv_head={c.n_kv_head}), which growth keeps")
    if intermediate_size is None:
        if (c.intermediate_size * n_embd) % c.n_embd:
            raise ValueError(f"{who}: intermediate_size={c.intermediate_size} scaled by {n_embd}/{c.n_embd} is not an "
                             f"integer; pass intermediate_size= explicitly")
    elif intermediate_size < c.intermediate_size:
        raise ValueError(f"{who}: intermediate_size={intermediate_size} is smaller than the current "
                         f"{c.intermediate_size}; growth only widens")


def _check_learn_opts(who, opts):
    steps = opts.get("steps", 100)
    if int(steps) < 0:
        raise ValueError(f"{who}: steps={steps} must be >= 0")
    if int(steps) > 0 and opts.get("batches") is None:
        raise ValueError(f"{who}: op='learn' needs batches=... (an iterable of (x, y) token batches) to train "
                         f"its growth maps for steps={steps} steps")


def _whole(x, what, who):
    """x must be a whole number >= 1 (2.0 is accepted, 1.5 and 0 are not)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x) or x != int(x):
        raise ValueError(f"{who}: {what}={x!r} must be a whole number (the number of copies of each layer); "
                         f"use an explicit layer_map for anything else, e.g. partial stacking")
    if int(x) < 1:
        raise ValueError(f"{who}: {what}={x} must be >= 1: growth makes the model larger")


def _check_op(who, op, ops):
    if op not in ops:
        raise ValueError(f"{who}: unknown op {op!r}; expected one of {', '.join(map(repr, ops))}")


def _check_opts(who, op, opts, allowed):
    extra = sorted(set(opts) - set(allowed))
    if extra:
        raise TypeError(f"{who}: unexpected option(s) {extra} for op={op!r} "
                        f"(it takes {sorted(allowed) if allowed else 'no extra options'})")


def _check_growable(model, who):
    if not isinstance(model, GPT):
        raise TypeError(f"{who}: expected a model.GPT, got {type(model).__name__}")
    if ramps_active(model):
        raise ValueError(f"{who}: the model is still ramping in weights from an earlier G_random growth (ramp < 1); "
                         f"finish the ramp with set_ramp(model, 1) before growing again")


def _check_noise(who, noise):
    if not (isinstance(noise, numbers.Real) and 0.0 <= noise <= 1.0):
        raise ValueError(f"{who}: noise={noise!r} must be a fraction in [0, 1] (the paper finds 0.2 slightly "
                         f"better than none, more than 0.2 hurts)")


def _check_logit_gap_args(a, b):
    if a.config.arch != b.config.arch:
        raise ValueError(f"logit_gap: mismatched architectures: {a.config.arch!r} vs {b.config.arch!r}")
    if a.config.vocab_size != b.config.vocab_size:
        raise ValueError(f"logit_gap: mismatched vocabularies: {a.config.vocab_size} vs {b.config.vocab_size}")


def _check_curve(flops, losses):
    if flops.shape != losses.shape or flops.ndim != 1 or len(flops) == 0:
        raise ValueError(f"flops_to_loss: flops and losses must be 1-D and of equal length, got "
                         f"{flops.shape} and {losses.shape}")
    if np.any(np.diff(flops) < 0):
        raise ValueError("flops_to_loss: flops must be non-decreasing (a curve in training order)")
