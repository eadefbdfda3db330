"""
Model growth: a trained small GPT in, a new larger GPT out (Du et al. 2024, "Stacking Your Transformers",
arXiv 2405.15319). The paper sorts growth methods into four atomic operators, each depthwise or widthwise:

              depthwise: grow_depth(model, op, factor)           widthwise: grow_width(model, n_embd, op)
  "direct"    copy whole layers and stack them (Gstack)           Net2Net / bert2BERT neuron splitting
  "zero"      new layers with zeroed output projections           new neurons: fan-in random, fan-out zero
  "random"    new random layers, blended in over a ramp           new random weights, masked in over a ramp
  "learn"     LiGO: each new layer a learned mix of old layers    LiGO: learned width-expansion matrices

Every grow function returns a NEW GPT (a new GPTConfig, weights built from the old ones) and leaves its input
untouched. The paper's guidelines for when and how much to grow (Eq. 2) and the compute accounting used to
report speedups are at the bottom of the file, in plain math / numpy.

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
from torch.nn.utils import parametrize

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


def _whole(x, what, who):
    """x as an int >= 1, or a clear error (2.0 is accepted, 1.5 and 0 are not)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x) or x != int(x):
        raise ValueError(f"{who}: {what}={x!r} must be a whole number (the number of copies of each layer); "
                         f"use an explicit layer_map for anything else, e.g. partial stacking")
    if int(x) < 1:
        raise ValueError(f"{who}: {what}={x} must be >= 1: growth makes the model larger")
    return int(x)


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
                         f"finish the ramp with set_ramp(model, 1) (or fold_ramps(model)) before growing again")


def _check_noise(who, noise):
    if not (isinstance(noise, numbers.Real) and 0.0 <= noise <= 1.0):
        raise ValueError(f"{who}: noise={noise!r} must be a fraction in [0, 1] (the paper finds 0.2 slightly "
                         f"better than none, more than 0.2 hurts)")


@torch.no_grad()
def _add_noise(w, a):
    """W <- (1 - a) W + a * eps, eps ~ N(0, 0.02^2): the growth noise of the paper's appendix I (in place)."""
    w.mul_(1 - a).add_(torch.randn_like(w), alpha=a * INIT_STD)


def _leaf(name):
    """'blocks.3.attn.q_proj.weight' -> 'attn.q_proj.weight'; non-block names are returned as they are."""
    return name.split(".", 2)[2] if name.startswith("blocks.") else name


# -------------------------------------------------------------------------------------------------------------
# Depthwise growth

def make_layer_map(n_layer, factor, layout="stack"):
    """Source layer of each new layer when every layer is used `factor` times.
    layout="stack":      0..L-1, 0..L-1, ...  (Gstack: the whole model repeated; the paper's best)
    layout="interleave": 0,0,..,1,1,..       (the paper's "interpolation" ablation; the official G_zero layout)
    Partial stacking is any other list, e.g. for L=6 stacking the back half: [0,1,2,3,4,5,3,4,5]."""
    factor = _whole(factor, "factor", "make_layer_map")
    if layout == "stack":
        return list(range(n_layer)) * factor
    if layout == "interleave":
        return [j for j in range(n_layer) for _ in range(factor)]
    raise ValueError(f"make_layer_map: unknown layout {layout!r}; expected 'stack' or 'interleave'")


def _resolve_layer_map(n_layer, op, factor, layer_map):
    who = "grow_depth"
    if layer_map is None:
        if factor is None:
            raise ValueError(f"{who}: give factor (e.g. factor=4, the paper's recommended g) or an explicit layer_map")
        return make_layer_map(n_layer, _whole(factor, "factor", who),
                              "interleave" if op in ("zero", "random") else "stack")
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
    layer_map = [int(j) for j in layer_map]
    if op in ("zero", "random") and list(dict.fromkeys(layer_map)) != list(range(n_layer)):
        # The first occurrence of each source layer is that layer itself; later occurrences are the new blocks.
        # The function is kept only if the originals appear, all of them, in their old order.
        raise ValueError(f"{who}: layer_map {layer_map} for op={op!r} must contain every layer 0..{n_layer - 1}, "
                         f"their first occurrences in order (those are the old layers; repeats are the new blocks), "
                         f"e.g. [0, 0, 1, 1] or [0, 1, 0, 1]")
    return layer_map


def _q_scale(config, src, dst):
    """GPT-2 with scale_attn_by_inverse_layer_idx divides layer i's attention logits by (i + 1). A layer copied
    from position src to position dst gets its q_proj multiplied by (dst + 1) / (src + 1), so the copy computes
    exactly what its source did. 1.0 for every other model (nothing is rescaled, as in the paper)."""
    return (dst + 1) / (src + 1) if config.scale_attn_by_inverse_layer_idx else 1.0


def grow_depth(model, op, factor=None, layer_map=None, noise=0.0, **opts):
    """Depthwise growth: a GPT with more layers, built from `model`'s layers (Du et al. 2024, sec. 3).

    op="direct"  G_direct, depthwise = Gstack: new layer i is a copy of old layer layer_map[i]; by default the
                 whole model stacked `factor` times (0..L-1, 0..L-1, ...). Embeddings, final norm, LM head
                 copied once; nothing rescaled. Not function preserving (and need not be: the paper's point).
    op="zero"    G_zero, depthwise: function preserving. The old layers keep their order; after each old layer
                 come its factor-1 new copies (official interleaving 0,0,1,1,...). A new block is a copy of its
                 source layer with attn.o_proj and mlp.down_proj (weights and biases) zeroed, so it adds nothing to
                 the residual stream: an identity. We copy (rather than randomise) the other weights so the new
                 block's attention and MLP already compute useful features and the zeroed projections get a real
                 gradient from the first step.
    op="random"  G_random, depthwise: same layout as "zero", but new blocks are freshly initialised (the model's
                 own init) and are blended in as x + m * (block(x) - x) with m = 0 at first, i.e. as identities;
                 set_ramp / ramp_value raise m to 1 (MSG-style), so at ramp 0 the function equals the small
                 model's. The blend is a forward hook on the new blocks (block.ramp holds m), removed at m = 1.
    op="learn"   G_learn, depthwise (LiGO): new layer l's weights W'_l = sum_j D[l, j] W_j, a separate D
                 (L_new x L_old) per weight kind, initialised to the stacking layout (so with steps=0 it is exactly
                 Gstack), trained on the LM loss with the small model's weights frozen, then folded into a plain
                 GPT. opts: batches (iterable of (x, y) LongTensors, on the model's device), steps=100, lr=1e-3.

    factor:    whole number of times each layer is used (g when the width is unchanged); layer_map overrides it.
    layer_map: explicit source layer per new layer. "direct"/"learn": any indices (interpolation [0,0,1,1,..],
               partial stacking). "zero"/"random": the first occurrence of each layer is the old layer itself and
               later occurrences are new blocks, so e.g. [0,1,0,1] puts the new blocks on top.
    noise:     a in W <- (1-a) W + a*eps, eps ~ N(0, 0.02^2) (appendix I), applied to every block matrix copied
               from the small model (not to random or zeroed ones; norms and biases untouched). noise > 0 gives up
               function preservation on purpose.
    """
    who = "grow_depth"
    _check_op(who, op, DEPTH_OPS)
    _check_opts(who, op, opts, ("batches", "steps", "lr") if op == "learn" else ())
    _check_growable(model, who)
    _check_noise(who, noise)
    small = model.config
    lmap = _resolve_layer_map(small.n_layer, op, factor, layer_map)
    config = _grown_config(small, n_layer=len(lmap))
    if op == "learn":
        big = _learn_depth(model, config, lmap, **opts)
        copied = [(i, n) for i in range(len(lmap)) for n, p in big.blocks[i].named_parameters() if p.dim() == 2]
    else:
        big = _new_model(config, model)  # random init: the weights of G_random's new blocks
        state = big.state_dict()
        small_state = model.state_dict()
        state.update({k: v for k, v in small_state.items() if not k.startswith("blocks.")})  # wte, wpe, ln_f, head
        seen, copied, ramped = set(), [], []
        for i, j in enumerate(lmap):
            is_new = op != "direct" and j in seen
            seen.add(j)
            if op == "random" and is_new:
                ramped.append(i)  # keeps its random init; blended in from m = 0 (an identity) below
                continue
            for name, t in model.blocks[j].state_dict().items():
                if name.startswith("attn.q_proj."):
                    t = t * _q_scale(small, j, i)
                if op == "zero" and is_new and name.startswith(("attn.o_proj.", "mlp.down_proj.")):
                    t = torch.zeros_like(t)  # the new block writes nothing into the residual stream: an identity
                elif t.dim() == 2:
                    copied.append((i, name))
                state[f"blocks.{i}.{name}"] = t
        big.load_state_dict(state)
        for i in ramped:
            _ramp_in(big.blocks[i], 0.0)
    if noise:
        for i, name in copied:
            _add_noise(big.blocks[i].get_parameter(name), noise)
    return big


def validate_growth(config, dim, op, factor=None, layer_map=None, n_embd=None):
    """Check growth settings against a model's config without growing anything, so a trainer can refuse bad
    settings before it trains for hours and only then reaches the growth step. Raises ValueError like the growth."""
    if dim == "depth":
        _check_op("grow_depth", op, ("direct", "zero", "random", "learn"))
        _resolve_layer_map(config.n_layer, op, factor, layer_map)
    elif dim == "width":
        _check_op("grow_width", op, ("direct", "zero", "random", "learn"))
        _width_config(config, n_embd, None, None, "grow_width")
    else:
        raise ValueError(f"growth dim={dim!r}: expected 'depth' or 'width'")


def gstack(model, g):
    """Gstack (Du et al. 2024): the whole model stacked g times, G_direct depthwise. = grow_depth(model, "direct", g)."""
    return grow_depth(model, "direct", factor=g)


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


def _fit_maps(big, make_params, maps, batches, steps, lr, who):
    """Train the growth maps (and nothing else) for `steps` steps of Adam on the LM loss of `big` evaluated with
    the parameters make_params() builds from them (torch.func.functional_call: big's own weights are not used)."""
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"{who}: steps={steps} must be >= 0")
    if steps == 0:
        return
    if batches is None:
        raise ValueError(f"{who}: op='learn' needs batches=... (an iterable of (x, y) token batches) to train "
                         f"its growth maps for steps={steps} steps")
    opt = torch.optim.Adam(maps, lr=lr)
    it = iter(batches)
    for step in range(steps):
        it, (x, y) = _next_batch(it, batches, step, who)
        _, loss = functional_call(big, make_params(), (x, y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


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


# -------------------------------------------------------------------------------------------------------------
# G_random's ramps. Depthwise: a forward hook on each new block, so model.py's Block stays the plain transformer
# block and a model that is not ramping runs no growth code. Widthwise: masks on the new weights (grow_width).

def ramp_value(step, ramp_steps):
    """Blend factor m after `step` steps of a ramp lasting ramp_steps: min(1, step / ramp_steps); 1 if ramp_steps <= 0."""
    if ramp_steps <= 0:
        return 1.0
    return min(1.0, max(0.0, step / ramp_steps))


def _blend(block, args, out):
    """Forward hook of a block being ramped in: x + m * (block(x) - x), with m = block.ramp (0: the identity)."""
    x = args[0]  # (B, T, C), the block's input
    return x + block.ramp * (out - x)


def _ramp_in(block, m):
    """Start blending `block` in at m: a buffer `ramp` (saved in the state dict as blocks.<i>.ramp) and the hook."""
    block.register_buffer("ramp", torch.full((), float(m), device=next(block.parameters()).device))
    block.register_forward_hook(_blend)


def _ramp_done(block):
    """The block is fully in (m = 1): remove the hook and the buffer, leaving a plain Block."""
    for key, hook in list(block._forward_hooks.items()):  # what a RemovableHandle.remove() would do
        if hook is _blend:
            del block._forward_hooks[key]
    del block.ramp


def _ramping(model):
    return [b for b in model.blocks if "ramp" in b._buffers]


def ramp_factors(model):
    """G_random's depthwise blend factor m of every block (1.0 for a block that is fully in)."""
    return [float(b.ramp) if "ramp" in b._buffers else 1.0 for b in model.blocks]


def load_state(model, state):
    """model.load_state_dict(state) for a state dict that may carry G_random blend factors (blocks.<i>.ramp):
    a checkpoint saved mid-ramp, or any checkpoint written before the ramp moved out of model.py (every block had
    one, 1.0 unless ramping). Blocks whose factor is below 1 are ramping again; factors of 1 are dropped."""
    state = dict(state)
    for i, block in enumerate(model.blocks):
        m = state.get(f"blocks.{i}.ramp")
        if m is not None and float(m) < 1:
            _ramp_in(block, float(m))  # the buffer's value comes with the rest of the state below
        elif m is not None:
            del state[f"blocks.{i}.ramp"]
    model.load_state_dict(state)
    return model


class _Ramp(nn.Module):
    """Parametrization for G_random widthwise: W -> where(mask, m * W, W). mask marks the new entries of a
    matrix that writes into the residual stream; m is the ramp (0 at growth, 1 when done)."""

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)
        self.register_buffer("m", torch.zeros((), dtype=torch.float32, device=mask.device))

    def forward(self, w):
        return torch.where(self.mask, self.m.to(w.dtype) * w, w)


def _width_masks(model):
    """[(module, tensor name, _Ramp)] for every width ramp still active in the model."""
    out = []
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name, plist in module.parametrizations.items():
                out += [(module, name, p) for p in plist if isinstance(p, _Ramp)]
    return out


@torch.no_grad()
def _fold_width_masks_(model):
    """Replace every width-ramp parametrization by a plain parameter holding the current effective weight, in place.
    The Parameter objects are kept (an optimizer holding them stays valid) and tied weights stay tied."""
    masks = _width_masks(model)
    effective = [getattr(module, name).detach().clone() for module, name, _ in masks]  # all before any removal
    for (module, name, _), w in zip(masks, effective):
        if parametrize.is_parametrized(module, name):
            parametrize.remove_parametrizations(module, name, leave_parametrized=False)
        getattr(module, name).copy_(w)
    return model


def set_ramp(model, m):
    """Set G_random's blend factor to m (clipped to [0, 1]) in place, for everything still ramping in:
    every new block (depthwise) and every width mask (widthwise). When m reaches 1 the hooks and masks are
    removed, so the model is a plain GPT again whose state_dict loads into a fresh GPT(model.config). The trainer calls set_ramp(model, ramp_value(steps_since_growth, ramp_steps))."""
    m = float(min(max(m, 0.0), 1.0))
    for block in _ramping(model):
        block.ramp.fill_(m)
        if m >= 1.0:
            _ramp_done(block)
    for _, _, ramp in _width_masks(model):
        ramp.m.fill_(m)
    if m >= 1.0:
        _fold_width_masks_(model)
    return model


def ramps_active(model):
    """True while anything grown with op='random' is still being blended in."""
    return bool(_width_masks(model) or _ramping(model))


def fold_ramps(model):
    """A plain GPT equal to `model` as it computes now: width masks (G_random widthwise) folded into the weights.
    Use it before saving a checkpoint mid-ramp: fold_ramps(model).state_dict() loads into GPT(model.config).
    Returns `model` itself when no width mask is active (the common case, so calling it before every save is free);
    otherwise a copy, and `model` keeps ramping.

    Limitation: the fold keeps the function, not the ramp. A run resumed from a folded checkpoint continues with
    plain weights: the new writer entries hold m * W (at m = 0, zero: the G_zero layout, whose new neurons still
    learn because their fan-in stayed random), and the rest of the ramp is skipped. Depthwise ramps need no
    folding: the blend factor is a buffer in the state_dict (blocks.<i>.ramp), so a resumed run continues those
    exactly (runs.model_from_checkpoint loads it with load_state)."""
    if not _width_masks(model):
        return model
    plain = _new_model(model.config, model)
    plain.load_state_dict(plain_state_dict(model))
    return plain


@torch.no_grad()
def plain_state_dict(model):
    """model.state_dict() with width masks applied and the parametrization keys folded to plain names."""
    state = {k: v for k, v in model.state_dict().items() if ".parametrizations." not in k}
    for module_name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for name in module.parametrizations:
                state[f"{module_name}.{name}" if module_name else name] = getattr(module, name).detach().clone()
    return state


# -------------------------------------------------------------------------------------------------------------
# Widthwise growth
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


def _width_config(config, n_embd, n_head, intermediate_size, who):
    """The grown config: head_dim kept (n_head = n_embd / head_dim), q heads per kv head kept, intermediate_size
    scaled with n_embd unless given. Clear errors for anything that does not divide or would shrink."""
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
        intermediate_size = c.intermediate_size * n_embd // c.n_embd
    elif intermediate_size < c.intermediate_size:
        raise ValueError(f"{who}: intermediate_size={intermediate_size} is smaller than the current "
                         f"{c.intermediate_size}; growth only widens")
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
    for x' = x duplicated (Net2Net's fan-out split). Entries with a fresh (-1) index on any axis take `fresh`.
    Returns (new tensor, bool mask of the fresh entries)."""
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
    op="zero"    G_zero, widthwise: new neurons' fan-out zero, fan-in random (the [[W, A], [0, C]] layout). New
                 heads / MLP neurons get random q/k/v/up/gate rows and zero o_proj / down_proj columns; new hidden
                 dims are written by nothing (zero wte/wpe columns and o_proj/down rows) and read by random columns.
                 The residual stream is [x; 0], so the new dims change only the norms: RMSNorm's RMS over D dims is
                 sqrt(d/D) of the old one, which we undo by scaling the norm weights by sqrt(d/D) and norm_eps by
                 d/D (new config) -- then Llama's logits are kept exactly (new norm entries: mean of the old).
                 LayerNorm (GPT-2) cannot be kept with zero dims (its mean and variance shift in an input-dependent
                 way), so GPT-2 defaults to hidden="duplicate" when n_embd is a multiple of the old one: every hidden
                 dim is duplicated equally (mean and variance kept) and only heads / MLP neurons are new: exact.
                 With hidden="zero" on GPT-2 the new dims stay exactly zero but the LayerNorms change the function.
    op="random"  G_random, widthwise (MSG-style): new weights are the model's random init, masked in over a ramp:
                 the new entries of the residual-stream writers (wte/wpe columns, o_proj/down_proj rows and
                 columns; a tied lm_head with wte) are multiplied by m, 0 at growth, set by set_ramp(model, m);
                 new entries of readers are random and unmasked (like MSG masking new neurons' outputs). At m=0
                 it is the "zero" layout, so the function is kept exactly as for "zero" (same hidden options). The
                 mask is a torch parametrization on those weights: the model is a GPT, trains and runs as usual, but
                 until set_ramp reaches 1 (which folds the masks away) its state_dict has parametrization keys; use
                 fold_ramps(model) to get a plain model to save mid-ramp (see its limitation).
    op="learn"   G_learn, widthwise (LiGO): expansion maps B_emb (D x d), B_mlp, B_q, B_k, B_v (and B_o for grouped-
                 query attention; otherwise o_proj uses B_v as in the paper), shared by all layers, initialised
                 [I; N(0, 1/new_size)]: W'_q = B_q W_q B_emb^T, W'_o = B_emb W_o B_v^T, W'_up/gate = B_mlp W B_emb^T,
                 W'_down = B_emb W B_mlp^T, norm' = B_emb norm, E' = E B_emb^T (biases: B b). Trained for `steps`
                 steps on the LM loss with the small weights frozen, then folded into a plain GPT. Not function
                 preserving at init. opts: batches, steps=100, lr=1e-3.

    hidden (opts, not for "learn"): how new hidden dims are made: "random" (copy random old dims; default for
    "direct"), "duplicate" (dim i copies dim i mod d; needs n_embd a multiple of d), "zero" (fresh; default for
    "zero"/"random" except GPT-2, which defaults to "duplicate" when it can).
    noise: as in grow_depth, on the block-matrix entries that came from the small model (all block matrices for
    "learn").
    """
    who = "grow_width"
    _check_op(who, op, WIDTH_OPS)
    _check_opts(who, op, opts, ("batches", "steps", "lr") if op == "learn" else ("hidden",))
    _check_growable(model, who)
    _check_noise(who, noise)
    small = model.config
    config = _width_config(small, n_embd, n_head, intermediate_size, who)
    if op == "learn":
        big = _learn_width(model, config, **opts)
        fresh = {}
    else:
        hidden = opts.get("hidden")
        if hidden is None:
            hidden = "random" if op == "direct" else (
                "duplicate" if small.arch == "gpt2" and config.n_embd % small.n_embd == 0 else "zero")
        if hidden not in ("random", "duplicate", "zero"):
            raise ValueError(f"{who}: hidden={hidden!r}; expected 'random', 'duplicate' or 'zero'")
        if hidden == "duplicate" and config.n_embd % small.n_embd:
            raise ValueError(f"{who}: hidden='duplicate' needs n_embd={config.n_embd} to be a multiple of the current "
                             f"n_embd={small.n_embd} (every dim copied equally often)")
        if hidden == "zero" and small.arch == "llama" and config.n_embd != small.n_embd:
            # RMS over [x; 0] is sqrt(d/D) * RMS(x) only if eps shrinks too: mean(x'^2) + eps' = d/D (mean(x^2) + eps)
            config = _grown_config(config, norm_eps=small.norm_eps * small.n_embd / config.n_embd)
        big, fresh = _grow_width_mapped(model, config, op, hidden)
    if noise:
        with torch.no_grad():
            for name, p in big.named_parameters():
                if name.startswith("blocks.") and p.dim() == 2:
                    old = p.detach().clone()
                    _add_noise(p, noise)
                    if name in fresh:  # only the entries that came from the small model get noise
                        p.copy_(torch.where(fresh[name], old, p))
    if op == "random":
        tied = {"lm_head.weight": "wte.weight"} if small.tie_embeddings else {}
        for name, mask in fresh.items():
            if mask.dim() == 2 and (name.endswith(_WRITERS) or name in tied):
                module_name, pname = name.rsplit(".", 1)
                parametrize.register_parametrization(big.get_submodule(module_name), pname, _Ramp(mask))
    return big


def _grow_width_mapped(model, config, op, hidden):
    """direct / zero / random: every new entry is either a copy of an old one (via _width_maps) or fresh.
    Returns the grown GPT and {parameter name: bool mask of its fresh entries}."""
    small = model.config
    d, D = small.n_embd, config.n_embd
    maps = _width_maps(small, config, op, hidden)
    sizes = {"hidden": d, "mlp": small.intermediate_size, "q": small.n_head * small.head_dim,
             "kv": small.n_kv_head * small.head_dim}
    counts = {k: torch.bincount(v[v >= 0], minlength=sizes[k]).clamp(min=1) for k, v in maps.items()}
    big = _new_model(config, model)
    state = big.state_dict()  # fresh values: the model's random init
    fresh_masks = {}
    with torch.no_grad():
        for name, w in model.state_dict().items():
            leaf = _leaf(name)
            if name == "lm_head.weight" and small.tie_embeddings:
                continue  # the same tensor as wte.weight; set below
            fresh = state[name]
            if op == "zero" and leaf in _WRITERS:
                fresh = torch.zeros_like(fresh)  # new neurons' fan-out and new hidden dims' fan-in: zero
            split = leaf.endswith("_proj.weight") or leaf == "lm_head.weight"  # Linear inputs: split copied columns
            new, mask = _expand(w, _AXES[leaf], maps, counts, split, fresh)
            if leaf.startswith("ln_") and hidden == "zero" and D > d:
                old = new[:d] * math.sqrt(d / D) if small.arch == "llama" else new[:d]  # RMSNorm: undo RMS shrink
                fill = old.mean() if leaf.endswith(".weight") else torch.zeros((), dtype=old.dtype, device=old.device)
                new = torch.cat([old, fill.expand(D - d)])
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
    if a.config.arch != b.config.arch:
        raise ValueError(f"logit_gap: mismatched architectures: {a.config.arch!r} vs {b.config.arch!r}")
    if a.config.vocab_size != b.config.vocab_size:
        raise ValueError(f"logit_gap: mismatched vocabularies: {a.config.vocab_size} vs {b.config.vocab_size}")
    return (a(idx)[0].float() - b(idx)[0].float()).abs().max().item()


# -------------------------------------------------------------------------------------------------------------
# The paper's guidelines and compute accounting (Du et al. 2024, sec. 5-6). Pure math / numpy.

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


def growth_flops(small_flops_per_token, d, large_flops_per_token, D_large):
    """Compute of a grown run, C = C_small + C_large: d tokens on the small model, then D_large on the large one.
    (flops_per_token from GPT.flops_per_token; with Gstack a small-model token costs about 1/g of a large one.)"""
    return small_flops_per_token * d + large_flops_per_token * D_large


def paper_tokens(tokens, grow_tokens, g):
    """The Gstack paper's compute convention, in large-model tokens: each of the first grow_tokens tokens (trained
    on the small model) counts 1/g of a large-model token, every later token counts 1. tokens: a number or an
    array of token counts along a run. Exact FLOPs (GPT.flops_per_token, LM head and attention included) differ
    from this most at small widths, where the head is a large share of a token's cost."""
    tokens = np.asarray(tokens, dtype=float)
    return np.minimum(tokens, grow_tokens) / g + np.maximum(tokens - grow_tokens, 0.0)


def speedup(flops_scratch, flops_grown):
    """The paper's speedup at equal loss: sp = FLOPs_scratch / FLOPs_grown - 1 (0.546 = 54.6%)."""
    return flops_scratch / flops_grown - 1.0


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


def speedup_at_loss(scratch, grown, target):
    """scratch, grown: (flops, losses) curves. Returns (FLOPs scratch needs, FLOPs grown needs, speedup) to reach
    the target loss; speedup is nan when either curve never reaches it. A grown curve's FLOPs must include the
    small model's (growth_flops)."""
    f_scratch, f_grown = flops_to_loss(*scratch, target), flops_to_loss(*grown, target)
    sp = speedup(f_scratch, f_grown) if np.isfinite(f_scratch) and np.isfinite(f_grown) else float("nan")
    return f_scratch, f_grown, sp
