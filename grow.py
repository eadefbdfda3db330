"""
Model growth (Du et al. 2024, "Stacking Your Transformers", arXiv 2405.15319; docs/papers.md sec. 1): a trained
small GPT in, a new larger GPT out. The paper sorts growth methods into four operators, each depthwise or
widthwise; we build each as the official code (github tongxuluo/prts) does. docs/papers.md has the operators
next to that code, with every difference and its reason.

              depthwise: grow_depth(model, op, factor)         widthwise: grow_width(model, n_embd, op)
  "direct"    Gstack: the whole model stacked g times           Net2Net neuron splitting
  "zero"      copies with zeroed output projections             W' = [[W, R], [0, R]]: new outputs read nothing
  "random"    random layers blended in over a ramp (MSG)        random weights masked in over a ramp (MSG)
  "learn"     LiGO: each new layer a learned mix of old ones    LiGO: learned width-expansion matrices

Every grow function returns a NEW GPT and leaves its input untouched; randomness (new weights, Net2Net choices,
noise) comes from torch's global RNG. After the operators: G_random's ramps, the paper's guidelines (Eq. 2) and
compute accounting, and the argument checks, one guard per public function, at the end of the file.
Conventions: Linear weights are (out, in). The residual stream (n_embd wide) is written by wte, wpe, o_proj and
down_proj ("writers") and read, through a norm, by q/k/v, up/gate and lm_head.
"""

import math
import numbers
from dataclasses import replace

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call

from model import GPT, GPTConfig

INIT_STD = 0.02  # the model's init scale (GPT._init_weights); also the scale of the growth noise eps
OPS = ("direct", "zero", "random", "learn")


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
    """'blocks.3.attn.q_proj.weight' -> 'attn.q_proj.weight'; names outside the blocks unchanged."""
    parts = name.split(".", 2)
    return parts[2] if parts[0] == "blocks" and len(parts) == 3 else name


# -------------------------------------------------------------------------------------------------------------
# Depthwise growth

# where the new layers go when only `factor` is given, as the official code places them: Gstack repeats the whole
# model (0..L-1, 0..L-1, ..); G_zero puts each zeroed copy right after its source (0,0,1,1,..); G_random puts the
# new layers on top of the old ones; LiGO starts from the stacking layout
DEFAULT_LAYOUT = {"direct": "stack", "zero": "interleave", "random": "stack", "learn": "stack"}


def make_layer_map(n_layer, factor, layout="stack"):
    """Source layer of each new layer when every layer is used `factor` times.
    layout="stack":      0..L-1, 0..L-1, ...  (Gstack: the whole model repeated; the paper's best)
    layout="interleave": 0,0,..,1,1,..       (the paper's "interpolation" ablation; the official G_zero layout)
    Partial stacking is any other list, e.g. for L=6 stacking the back half: [0,1,2,3,4,5,3,4,5]."""
    _whole(factor, "factor", "make_layer_map")
    if layout not in ("stack", "interleave"):
        raise ValueError(f"make_layer_map: unknown layout {layout!r}; expected 'stack' or 'interleave'")
    if layout == "stack":
        return list(range(n_layer)) * int(factor)
    return [j for j in range(n_layer) for _ in range(int(factor))]


def midas_layer_map(n_layer, block):
    """MIDAS (Saunshi et al. 2024, "On the Inductive Bias of Stacking Towards Improving Reasoning"): one stage of
    middle gradual stacking. The `block` layers at the middle of the model are repeated, the copy right after them:
    L = 6, block = 2 -> [0, 1, 2, 3, 2, 3, 4, 5]. (Gradual stacking before it copied the last block on top.)"""
    start = (n_layer - block) // 2  # the middle block is layers start .. start + block - 1
    return list(range(start + block)) + list(range(start, n_layer))


def midas_layer_maps(n_layer, block, stages):
    """The layer maps of `stages` MIDAS growths from n_layer layers, one block more each: for grow_layer_map.
    (2, 2, 3) -> [[0, 1, 0, 1], [0, 1, 2, 1, 2, 3], [0, 1, 2, 3, 2, 3, 4, 5]]: 2 -> 4 -> 6 -> 8 layers."""
    _whole(block, "block", "midas_layer_maps")
    if block > n_layer:
        raise ValueError(f"midas_layer_maps: block={block} is more than the model's {n_layer} layers")
    return [midas_layer_map(n_layer + k * block, block) for k in range(stages)]


def grow_depth(model, op, factor=None, layer_map=None, noise=0.0, **opts):
    """Depthwise growth (Du et al. 2024, sec. 3): a GPT whose new layer i is built from old layer layer_map[i]
    (default: make_layer_map(L, factor) in the operator's official layout).

    "direct"  Gstack: a copy of the old layer; embeddings, final norm and head copied once, nothing rescaled.
    "zero"    the first occurrence of a layer is the layer itself; later ones are copies with attn.o_proj and
              mlp.down_proj zeroed: they add nothing to the residual stream, so the function is kept.
    "random"  the first occurrence is the layer itself; later ones are fresh blocks, blended in as
              x + m (block(x) - x) with m raised 0 -> 1 by set_ramp (MSG): the function is kept at m = 0.
    "learn"   LiGO: W'_l = sum_j D[l, j] W_j, one D (L_new, L_old) per weight kind, started at the stacking
              layout, trained `steps` steps on `batches` with the small weights frozen, folded into plain weights.
    noise:    a in W <- (1-a) W + a eps (appendix I) on every block matrix copied from the small model.
    opts:     "learn" only: batches (an iterable of (x, y)), steps=100, lr=1e-3.
    """
    _check_growable(model, "grow_depth")
    _check_depth(model.config, op, factor, layer_map, noise, opts)
    small = model.config
    lmap = [int(j) for j in layer_map] if layer_map is not None else make_layer_map(small.n_layer, factor,
                                                                                    DEFAULT_LAYOUT[op])
    config = replace(small, n_layer=len(lmap))
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
    """Gstack (Du et al. 2024): the whole model stacked g times, G_direct depthwise."""
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
    """GPT-2 with scale_attn_by_inverse_layer_idx divides layer i's attention logits by i + 1: a layer copied from
    position src to dst gets q_proj times (dst + 1) / (src + 1), so it computes what its source did. Else 1."""
    return (dst + 1) / (src + 1) if config.scale_attn_by_inverse_layer_idx else 1.0


def _learn_depth(model, config, lmap, batches=None, steps=100, lr=1e-3):
    """G_learn depthwise (LiGO): for every block parameter kind n (biases and norms included), D[n] is
    (L_new, L_old) and W'_l[n] = sum_j D[n][l, j] W_j[n]."""
    small, L = model.config, model.config.n_layer
    big = _new_model(config, model)
    dtype, device = next(model.parameters()).dtype, next(model.parameters()).device
    kinds = [n for n, _ in model.blocks[0].named_parameters()]
    # W[n]: (L_old, *shape), the small model's weights of kind n stacked over layers; frozen
    W = {n: torch.stack([b.get_parameter(n).detach().float() for b in model.blocks]) for n in kinds}
    D = {}
    for n in kinds:
        d = torch.zeros(len(lmap), L, device=device)
        for i, j in enumerate(lmap):  # the stacking layout: row i is one-hot at lmap[i]
            d[i, j] = _q_scale(small, j, i) if n.startswith("attn.q_proj.") else 1.0
        D[n] = d.requires_grad_()
    fixed = {k: v.detach() for k, v in model.named_parameters() if not k.startswith("blocks.")}  # tied head once

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
    """Train the growth maps (and nothing else) for `steps` steps of Adam on the LM loss of `big` with the weights
    make_params() builds from them (functional_call: big's own weights are not used)."""
    opt = torch.optim.Adam(maps, lr=lr)
    it = iter(batches) if int(steps) > 0 else None
    for step in range(int(steps)):
        try:
            x, y = next(it)
        except StopIteration:  # a list starts over; an exhausted generator stays empty
            it = iter(batches)
            x, y = next(it, (None, None))
            if x is None:
                raise ValueError(f"{who}: batches ran out after {step} steps; pass at least `steps` batches "
                                 f"or a re-iterable such as a list") from None
        _, loss = functional_call(big, make_params(), (x, y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


# -------------------------------------------------------------------------------------------------------------
# G_random's ramps (MSG). One ramp value m goes 0 -> 1 over grow_ramp_steps: the trainer calls
# set_ramp(model, ramp_value(steps_since_growth, ramp_steps)) before every step.
# Depthwise: a forward hook on each new block blends it in, out = x + m (block(x) - x) (msg.py's MsgBlock).
# Widthwise: forward hooks multiply every new output by its mask (MsgLayer) and normalise over the dims present
# (MsgNorm). Their state is in buffers, so a checkpoint mid-ramp resumes exactly (load_state), and a model that
# is not ramping runs no growth code: model.py's modules stay the textbook ones.

def ramp_value(step, ramp_steps):
    """Blend factor m after `step` steps of a ramp of ramp_steps: min(1, step / ramp_steps); 1 if ramp_steps <= 0."""
    if ramp_steps <= 0:
        return 1.0
    return min(1.0, max(0.0, step / ramp_steps))


def set_ramp(model, m):
    """Set G_random's ramp to m (clipped to [0, 1]) in place: every new block's blend factor (depthwise) and every
    width mask, which rises 0 -> 1 inside its window of the ramp (widthwise). At m = 1 the hooks and buffers are
    removed, so the model is a plain GPT again."""
    m = float(min(max(m, 0.0), 1.0))
    for block in _blended(model):
        block.ramp.fill_(m)
        if m >= 1.0:
            _remove_hooks(block, (_blend,))
            del block.ramp
    for module in _masked(model):
        a, b = module.ramp_window  # on the buffers' device: no host sync per module per step
        module.ramp.copy_(((m - a) / (b - a)).clamp(0.0, 1.0))
        if m >= 1.0:
            _remove_hooks(module, (_masked_output, _masked_norm))
            for name in ("ramp", "ramp_new", "ramp_window"):
                delattr(module, name)
    return model


def ramps_active(model):
    """True while anything grown with op='random' is still being blended in."""
    return bool(_blended(model) or _masked(model))


def load_state(model, state):
    """model.load_state_dict(state) for a state dict that may carry G_random ramps (a checkpoint saved mid-ramp:
    depthwise blocks.<i>.ramp; widthwise <module>.ramp, .ramp_new, .ramp_window): they ramp on from where they were."""
    for i, block in enumerate(model.blocks):
        if f"blocks.{i}.ramp" in state:
            _blend_in(block, 0.0)  # the buffer's value comes with the rest of the state below
    for key in [k for k in state if k.endswith(".ramp_new")]:
        path = key[:-len(".ramp_new")]
        _mask_in(model.get_submodule(path), state[key], state[f"{path}.ramp_window"], float(state[f"{path}.ramp"]))
    model.load_state_dict(state)
    return model


def load_model(ckpt, device="cpu"):
    """The GPT stored in a checkpoint dict (runs.load_checkpoint), G_random ramps included, on `device`."""
    model = GPT(GPTConfig(**ckpt["model_args"]))
    load_state(model, {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})  # torch.compile's prefix
    return model.to(device)


def _blend(block, args, out):
    """Forward hook of a block being ramped in: x + m * (block(x) - x), with m = block.ramp (0: the identity)."""
    x = args[0]  # (B, T, C), the block's input
    return x + block.ramp * (out - x)


def _blend_in(block, m):
    block.register_buffer("ramp", torch.full((), float(m), device=next(block.parameters()).device))
    block.register_forward_hook(_blend)


def _blended(model):
    return [b for b in model.blocks if "ramp" in b._buffers]


def _mask_in(module, new, window, m=0.0):
    """Start masking `module`'s new outputs: buffers ramp_new (bool over the output's last dim, True for a new
    entry), ramp_window ((2,): the part [a, b] of the ramp over which this mask rises 0 -> 1) and ramp (its value
    now), and the hook: MSG's MsgNorm for a norm, MsgLayer for any other module."""
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
    the present dims, plus the bias. At m in {0, 1} this is the small model's norm over its old dims exactly."""
    m = _mask(module)                                                   # (C,)
    xm = args[0].float() * m                                            # (B, T, C), new dims scaled by their mask
    count = m.sum()                                                     # M
    if isinstance(module, nn.LayerNorm):
        xm = xm - m * (xm.sum(-1, keepdim=True) / count)               # centred over the present dims
    y = xm * torch.rsqrt(xm.pow(2).sum(-1, keepdim=True) / count + module.eps) * module.weight.float()
    if getattr(module, "bias", None) is not None:
        y = y + module.bias.float()
    return (y * m).to(out.dtype)


def _masked(model):
    return [m for m in model.modules() if "ramp_new" in m._buffers]


def _remove_hooks(module, fns):
    for key, hook in list(module._forward_hooks.items()):  # what a RemovableHandle.remove() would do
        if hook in fns:
            del module._forward_hooks[key]


# -------------------------------------------------------------------------------------------------------------
# Widthwise growth
#
# Each axis of a parameter lives in a width "space": 'hidden' (n_embd), 'mlp' (intermediate_size), 'q'
# (n_head * head_dim), 'kv' (n_kv_head * head_dim), or None (vocabulary, positions: not grown). Width growth keeps
# head_dim (RoPE and the 1/sqrt(head_dim) scale depend on it) and adds whole heads, keeping q heads per kv head.

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
_WRITERS = ("wte.weight", "wpe.weight", "attn.o_proj.weight", "attn.o_proj.bias",
            "mlp.down_proj.weight", "mlp.down_proj.bias")  # parameters that write into the residual stream
# G_random: the modules msg.py masks (every Linear and Embedding but the LM head, every norm), with the space of
# their output's last dim, and the part of the ramp over which each space's mask rises 0 -> 1: "msg" (msg.py) one
# phase after the other (MLP neurons, hidden dims, attention heads), a third of the ramp each; "single" together
_MASKED_OUTPUTS = {"wte": "hidden", "wpe": "hidden", "attn.q_proj": "q", "attn.k_proj": "kv", "attn.v_proj": "kv",
                   "attn.o_proj": "hidden", "mlp.up_proj": "mlp", "mlp.gate_proj": "mlp", "mlp.down_proj": "hidden",
                   "ln_1": "hidden", "ln_2": "hidden", "ln_f": "hidden"}
_RAMP_WINDOWS = {"msg": {"mlp": (0.0, 1 / 3), "hidden": (1 / 3, 2 / 3), "q": (2 / 3, 1.0), "kv": (2 / 3, 1.0)},
                 "single": {"mlp": (0.0, 1.0), "hidden": (0.0, 1.0), "q": (0.0, 1.0), "kv": (0.0, 1.0)}}


def grow_width(model, n_embd, op, intermediate_size=None, noise=0.0, **opts):
    """Widthwise growth (Du et al. 2024, sec. 3): hidden size n_embd, more heads (head_dim kept), a wider MLP
    (intermediate_size scales with n_embd unless given). docs/papers.md sec. 1 details each operator.

    "direct"  Net2Net / bert2BERT: new neurons, heads and hidden dims copy random old ones; the matrix reading a
              copied entry divides its column by the number of copies, so every linear map is kept.
    "zero"    W' = [[W, R], [0, R]] (prts zero.py; layout="fan_out_zero": fan-in random, fan-out zero): new
              outputs read nothing, new inputs enter through random R. Function-preserving: Llama's RMSNorms are
              rescaled (rescale_norms=True); GPT-2 duplicates its hidden dims (hidden="duplicate").
    "random"  MSG: old weights in the corner, the rest random, every new output masked 0 -> 1 by set_ramp
              (schedule="msg": MLP, hidden, heads in thirds of the ramp; "single": together).
    "learn"   LiGO: expansion maps B = [I; N(0, 1/new)] per width, trained `steps` steps on `batches`, folded.
    hidden:   "direct"/"zero": new hidden dims "random" (copied), "duplicate" (dim i copies i mod d) or "zero".
    noise:    as in grow_depth, on the block-matrix entries that came from the small model.
    """
    _check_growable(model, "grow_width")
    _check_width(model.config, n_embd, op, opts, intermediate_size, noise)
    small = model.config
    config = _width_config(small, n_embd, intermediate_size)
    if op == "learn":
        big, fresh = _learn_width(model, config, **opts), {}
    else:  # direct / zero / random: every new entry is a copy of an old one or fresh
        # new hidden dims: Net2Net copies random ones; G_zero's are zero, but GPT-2's LayerNorm (mean and variance)
        # keeps the function only when every dim is duplicated equally, so GPT-2 duplicates them when it can
        gpt2_dup = small.arch == "gpt2" and config.n_embd % small.n_embd == 0
        hidden = ("zero" if op == "random" else opts.get("hidden")
                  or ("random" if op == "direct" else "duplicate" if gpt2_dup else "zero"))
        layout, rescale = opts.get("layout", "official"), opts.get("rescale_norms", True)
        if op == "zero" and hidden == "zero" and small.arch == "llama" and rescale:
            # RMS over [x; 0] is sqrt(d/D) * RMS(x) only if eps shrinks too: mean(x'^2) + eps' = d/D (mean(x^2) + eps)
            config = replace(config, norm_eps=small.norm_eps * small.n_embd / config.n_embd)
        big, fresh = _grow_width_mapped(model, config, op, hidden, layout, rescale)
    if op == "random":  # MSG: the old weights in the corner, the rest the model's init, every new output masked
        maps = _width_maps(small, config, op, "zero")
        for name, module in big.named_modules():
            space = _MASKED_OUTPUTS.get(_leaf(name))
            if space is not None and (maps[space] < 0).any():
                _mask_in(module, maps[space] < 0, _RAMP_WINDOWS[opts.get("schedule", "msg")][space])
    if noise:
        _width_noise(big, fresh, noise)
    return big


def _width_config(c, n_embd, intermediate_size):
    """The grown config: head_dim kept, q heads per kv head kept, intermediate_size scaled with n_embd unless given."""
    n_head = n_embd // c.head_dim
    intermediate_size = intermediate_size or c.intermediate_size * n_embd // c.n_embd
    return replace(c, n_embd=n_embd, n_head=n_head, n_kv_head=n_head // (c.n_head // c.n_kv_head),
                   intermediate_size=int(intermediate_size))


def _width_maps(small, config, op, hidden):
    """Per space, a LongTensor over the new indices: the old index each one copies, or -1 for a new ("fresh")
    one. Old indices come first and map to themselves, so the old model sits in the top-left corner."""
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
    """Grow one parameter: along each grown axis entry i takes old entry maps[space][i]; along a matrix's input
    axis (split_cols) copies are divided by their source's number of copies, so W' x' = W x for x' = x duplicated
    (Net2Net's split). Entries with a fresh (-1) index take `fresh`. Returns (new tensor, bool mask of fresh)."""
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
    """What the fresh entries of parameter `leaf` hold (a tensor of its grown shape; init: the model's random init)."""
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
    """direct / zero / random: every new entry is a copy of an old one (_width_maps) or fresh (_fresh_values).
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
    """A norm's weight or bias (d,) -> (D,) when the new dims of the residual stream are zero (G_zero). rescale:
    RMSNorm weights times sqrt(d/D), which with norm_eps times d/D undoes the RMS shrink over [x; 0]. The new
    entries multiply zero dims: 0 ("official") or the mean of the old weights ("fan_out_zero")."""
    d = len(old)
    if rescale and leaf.endswith(".weight"):
        old = old * math.sqrt(d / D)
    fill = old.mean() if layout == "fan_out_zero" and leaf.endswith(".weight") else torch.zeros((), dtype=old.dtype,
                                                                                                device=old.device)
    return torch.cat([old, fill.expand(D - d)])


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
    """G_learn widthwise (LiGO): every grown axis of every weight is multiplied by its expansion map B (new, old):
    W'_q = B_q W_q B_emb^T, W'_o = B_emb W_o B_v^T (B_o with grouped-query attention), norm' = B_emb norm, ..."""
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


@torch.no_grad()
def logit_gap(a, b, idx):
    """Largest |logits_a - logits_b| on the token batch idx (B, T): 0 (up to float error) when growth kept the
    function. Both models must share architecture and vocabulary."""
    for what in ("arch", "vocab_size"):
        if getattr(a.config, what) != getattr(b.config, what):
            raise ValueError(f"logit_gap: mismatched {'architectures' if what == 'arch' else 'vocabularies'}: "
                             f"{getattr(a.config, what)!r} vs {getattr(b.config, what)!r}")
    return (a(idx)[0].float() - b(idx)[0].float()).abs().max().item()


# -------------------------------------------------------------------------------------------------------------
# The paper's guidelines and compute accounting (Du et al. 2024, sec. 5-6). A grown run's compute is counted two
# ways (eval.compare_runs reports both): exact FLOPs, what train.py logs (GPT.flops_per_token, the small phase at
# the small model's cost), and the paper's tokens, where a small-model token counts 1/g of a large-model token
# (paper_tokens). The second ignores the LM head and attention, so at small widths it reports larger speedups.

def training_flops(n_params, tokens):
    """C ~ 6 N D, the compute the guidelines take as input (N: parameters, D: tokens)."""
    return 6.0 * n_params * tokens


def growth_timing(N, C):
    """Growth timing d (tokens to train the small model before stacking), the paper's Eq. 2 (fitted at g = 4):
        log10(d) = 0.88 log10(N) + 163.27 / log10(C) - 5.74
    N: parameters of the target model, C: its training FLOPs. Check values (C = 6 N D): 7e9 on 2T tokens ->
    11.11e9; 8e9 / 15T -> 6.58e9; 13e9 / 2T -> 15.84e9; 70e9 / 2T -> 42.48e9."""
    return 10.0 ** (0.88 * math.log10(N) + 163.27 / math.log10(C) - 5.74)


def growth_factor(before, after):
    """g of one growth as the paper defines it: the ratio of the blocks' parameters (depthwise, the layer ratio).
    before, after: GPTConfigs or their dicts (a metrics.jsonl grow event's `before` and `after`)."""
    def block_params(c):
        with torch.device("meta"):  # shapes only: no memory, no init cost
            return sum(p.numel() for p in GPT(c if isinstance(c, GPTConfig) else GPTConfig(**c)).blocks.parameters())
    return block_params(after) / block_params(before)


def paper_tokens(tokens, grow_tokens, g):
    """The paper's compute convention, in large-model tokens: each of the first grow_tokens tokens (trained on the
    small model) counts 1/g, every later token 1. tokens: a number or an array along a run. Several growths
    (grow_tokens and g lists): a token trained before growth k counts 1/(g_k g_k+1 ...), its model's share."""
    tokens = np.asarray(tokens, dtype=float)
    if np.ndim(grow_tokens) == 0:
        return np.minimum(tokens, grow_tokens) / g + np.maximum(tokens - grow_tokens, 0.0)
    out, start, weight = np.zeros_like(tokens), 0.0, 1.0 / np.prod(g)
    for end, gk in zip(list(grow_tokens) + [np.inf], list(g) + [1.0]):  # phase k: [start, end) at its weight
        out += weight * np.clip(tokens - start, 0.0, end - start)
        start, weight = end, weight * gk
    return out


def speedup(cost_scratch, cost_grown):
    """The paper's speedup at equal loss: sp = C_scratch / C_grown - 1 (0.546 = 54.6%), C in either convention."""
    return cost_scratch / cost_grown - 1.0


def flops_to_loss(flops, losses, target):
    """FLOPs (or tokens: any increasing x) at which a loss curve first reaches `target`, linearly interpolated
    between the two points around the crossing; np.inf if the curve never gets there."""
    flops, losses = np.asarray(flops, dtype=float), np.asarray(losses, dtype=float)
    if flops.shape != losses.shape or flops.ndim != 1 or len(flops) == 0:
        raise ValueError(f"flops_to_loss: flops and losses must be 1-D and of equal length, got "
                         f"{flops.shape} and {losses.shape}")
    if np.any(np.diff(flops) < 0):
        raise ValueError("flops_to_loss: flops must be non-decreasing (a curve in training order)")
    hit = np.flatnonzero(losses <= target)
    if len(hit) == 0:
        return np.inf
    i = hit[0]
    if i == 0:
        return float(flops[0])
    f0, f1, l0, l1 = flops[i - 1], flops[i], losses[i - 1], losses[i]
    return float(f0 + (f1 - f0) * (l0 - target) / (l0 - l1))


# -------------------------------------------------------------------------------------------------------------
# Argument checks: ValueError (TypeError for an unknown option) saying what is wrong and what to do instead.
# validate_growth checks settings against a config alone, so train.py refuses them before it trains for hours.

def validate_growth(config, dim, op, factor=None, layer_map=None, n_embd=None, opts=None):
    """Check growth settings against a model's config without growing anything (G_learn's batches come later)."""
    opts = dict(opts or {})
    if op == "learn":
        opts.setdefault("batches", ())
    if dim == "depth":
        _check_depth(config, op, factor, layer_map, 0.0, opts)
    elif dim == "width":
        _check_width(config, n_embd, op, opts)
    else:
        raise ValueError(f"growth dim={dim!r}: expected 'depth' or 'width'")


def _check_growable(model, who):
    if not isinstance(model, GPT):
        raise TypeError(f"{who}: expected a model.GPT, got {type(model).__name__}")
    if ramps_active(model):
        raise ValueError(f"{who}: the model is still ramping in weights from an earlier G_random growth (ramp < 1); "
                         f"finish the ramp with set_ramp(model, 1) before growing again")


def _check_common(who, op, opts, allowed, noise):
    if op not in OPS:
        raise ValueError(f"{who}: unknown op {op!r}; expected one of {', '.join(map(repr, OPS))}")
    extra = sorted(set(opts) - set(allowed))
    if extra:
        raise TypeError(f"{who}: unexpected option(s) {extra} for op={op!r} "
                        f"(it takes {sorted(allowed) if allowed else 'no extra options'})")
    if not (isinstance(noise, numbers.Real) and 0.0 <= noise <= 1.0):
        raise ValueError(f"{who}: noise={noise!r} must be a fraction in [0, 1] (the paper finds 0.2 slightly "
                         f"better than none, more than 0.2 hurts)")
    steps = opts.get("steps", 100)
    if op == "learn" and int(steps) < 0:
        raise ValueError(f"{who}(op='learn'): steps={steps} must be >= 0")
    if op == "learn" and int(steps) > 0 and opts.get("batches") is None:
        raise ValueError(f"{who}(op='learn'): op='learn' needs batches=... (an iterable of (x, y) token batches) to "
                         f"train its growth maps for steps={steps} steps")


def _whole(x, what, who):
    """x must be a whole number >= 1 (2.0 is accepted, 1.5 and 0 are not)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x) or x != int(x):
        raise ValueError(f"{who}: {what}={x!r} must be a whole number (the number of copies of each layer); "
                         f"use an explicit layer_map for anything else, e.g. partial stacking")
    if int(x) < 1:
        raise ValueError(f"{who}: {what}={x} must be >= 1: growth makes the model larger")


def _check_depth(config, op, factor, layer_map, noise, opts):
    who, L = "grow_depth", config.n_layer
    _check_common(who, op, opts, ("batches", "steps", "lr") if op == "learn" else (), noise)
    if layer_map is None:
        if factor is None:
            raise ValueError(f"{who}: give factor (e.g. factor=4, the paper's recommended g) or an explicit layer_map")
        return _whole(factor, "factor", who)
    if isinstance(layer_map, (str, bytes)) or not hasattr(layer_map, "__iter__") or not list(layer_map):
        raise ValueError(f"{who}: layer_map={layer_map!r} must be a non-empty list of source layer indices, "
                         f"e.g. [0, 0, 1, 1]")
    for i, j in enumerate(layer_map):
        if isinstance(j, bool) or not isinstance(j, numbers.Integral):
            raise ValueError(f"{who}: layer_map[{i}]={j!r} is not a layer index (an int)")
        if not 0 <= j < L:
            raise ValueError(f"{who}: layer_map[{i}]={j} names a layer that does not exist; "
                             f"the model has {L} layers (0..{L - 1})")
    # zero / random: the first occurrence of each layer is that layer itself, so all of them must appear in order
    if op in ("zero", "random") and list(dict.fromkeys(int(j) for j in layer_map)) != list(range(L)):
        raise ValueError(f"{who}: layer_map {list(layer_map)} for op={op!r} must contain every layer 0..{L - 1}, "
                         f"their first occurrences in order (those are the old layers; repeats are the new blocks), "
                         f"e.g. [0, 0, 1, 1] or [0, 1, 0, 1]")


def _check_width(c, n_embd, op, opts, intermediate_size=None, noise=0.0):
    who, hd = "grow_width", c.head_dim
    allowed = {"direct": ("hidden",), "zero": ("hidden", "layout", "rescale_norms"), "random": ("schedule",),
               "learn": ("batches", "steps", "lr")}.get(op, ())
    _check_common(who, op, opts, allowed, noise)
    if isinstance(n_embd, bool) or not isinstance(n_embd, numbers.Integral):
        raise ValueError(f"{who}: n_embd={n_embd!r} must be an int")
    if n_embd < c.n_embd:
        raise ValueError(f"{who}: n_embd={n_embd} is smaller than the current n_embd={c.n_embd}; growth only widens")
    if n_embd % hd:
        raise ValueError(f"{who}: n_embd={n_embd} is not a multiple of head_dim={hd}; width growth adds whole "
                         f"attention heads and keeps head_dim (RoPE and the attention scale depend on it), so pick "
                         f"n_embd among multiples of {hd}")
    n_head = n_embd // hd
    group = c.n_head // c.n_kv_head
    if n_head % group:
        raise ValueError(f"{who}: n_head={n_head} is not a multiple of {group}, the number of q heads per kv head "
                         f"(n_head={c.n_head}, n_kv_head={c.n_kv_head}), which growth keeps")
    if intermediate_size is None and (c.intermediate_size * n_embd) % c.n_embd:
        raise ValueError(f"{who}: intermediate_size={c.intermediate_size} scaled by {n_embd}/{c.n_embd} is not an "
                         f"integer; pass intermediate_size= explicitly")
    if intermediate_size is not None and intermediate_size < c.intermediate_size:
        raise ValueError(f"{who}: intermediate_size={intermediate_size} is smaller than the current "
                         f"{c.intermediate_size}; growth only widens")
    hidden = opts.get("hidden")
    if hidden is not None and hidden not in ("random", "duplicate", "zero"):
        raise ValueError(f"{who}: hidden={hidden!r}; expected 'random', 'duplicate' or 'zero'")
    if hidden == "duplicate" and n_embd % c.n_embd:
        raise ValueError(f"{who}: hidden='duplicate' needs n_embd={n_embd} to be a multiple of the current "
                         f"n_embd={c.n_embd} (every dim copied equally often)")
    for opt, values in (("layout", ("official", "fan_out_zero")), ("schedule", ("msg", "single")),
                        ("rescale_norms", (True, False))):
        if opt in opts and not any(opts[opt] is v or (isinstance(v, str) and opts[opt] == v) for v in values):
            raise ValueError(f"{who}: {opt}={opts[opt]!r}; expected {' or '.join(map(repr, values))}")


if __name__ == "__main__":  # a library: a growth runs through train.py
    print(__doc__.strip() + "\n\nGrow a trained run and keep training, with train.py:\n"
          "  python train.py --init_from=grow --grow_from=out --grow_factor=2 --out_dir=out/grown --max_iters=50\n"
          "  python train.py config/gstack_tiny.py --dataset=pybytes    # growth inside one run\n"
          "Its settings (grow_*) are listed by python train.py --help.")
