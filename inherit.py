"""
nanogrow inheritance: Inheritune (Sanyal et al. 2024, "Inheritune: Training Smaller Yet More Attentive Language
Models", later "When Attention Collapses"; arXiv 2404.08634). Facts used here are collected in docs/papers.md
section 2.

A small model of n layers starts from the FIRST n blocks of a trained reference of L layers, plus its token
embeddings and LM head, and is then trained as usual. Why the first ones: the deep layers of large models are
"lazy" (attention collapse: their attention matrices are nearly rank 1), so they carry little.

  inherit(ref, n)             a new GPT from ref's blocks 0..n-1 (or any list of blocks) and some of its parts;
                              train.py calls it for --init_from=inherit
  search(ref_dir, steps, ..)  the paper's algorithm ("v2"): from n = L/2, inherit n layers, train T steps, compare
                              the val loss with the reference's; while worse, n += 2
  attention_rank(model, tok)  the attention-collapse diagnostic: per layer and head, the number of singular values
                              holding 90% of the energy of the (T x T) attention matrix; a layer is lazy at MaxRank 1

    python inherit.py search --ref out/ref --steps 2000 --out_dir out/inherit_search [-- --batch_size=32 ...]
    python inherit.py rank out/ref [--dataset data/pycorpus] [--n_seqs 100 --seq_len 100]

Parts (what is copied from the reference; everything else keeps a fresh init, see fresh_init below):

  per block  attn       q, k, v, o projections (weights and biases)
             attn_norm  ln_1, the norm before attention (LayerNorm for gpt2, RMSNorm for llama)
             mlp        up, gate (llama), down projections
             mlp_norm   ln_2, the norm before the MLP
  model      wte        token embeddings
             lm_head    output projection (gpt2 ties it to wte: naming either copies the one shared tensor)
             wpe        learned position embeddings (gpt2 only; llama has RoPE, nothing to copy)
             ln_f       final norm

  presets    full       attn, attn_norm, mlp, mlp_norm (whole blocks; the paper's method)
             attn+norm  attn, attn_norm     }
             mlp+norm   mlp, mlp_norm       }  the paper's sub-block ablation (docs/papers.md sec. 2: attention +
             attn+mlp   attn, mlp           }  its LayerNorm 2.84, MLP + LayerNorm 2.85, no LayerNorms 2.80, full 2.81)
             all        every part above, model-level ones included: inheriting all L layers with parts="all"
                        reproduces the reference's logits exactly

`parts` is a preset, a part name, or several of them (a list, or one string joined by commas), e.g.
"attn+norm", ["attn", "mlp"], "full,wpe,ln_f". Block parts and model-level parts are chosen independently:
naming no block part means whole blocks ("full"); naming no model-level part means the DEFAULT ones, wte and
lm_head. So parts="lm_head" is the official OpenLLaMA recipe (blocks + untied head, fresh token embeddings).

`fresh_init` is how what is NOT copied starts: "model" (default) keeps GPT(config)'s own init (normal(0, 0.02),
residual projections 0.02/sqrt(2n), norms at 1), which is nanoGPT's and so the official GPT-2 code's; "torch" resets
those modules to PyTorch's defaults (nn.Embedding normal(0, 1), nn.Linear Kaiming-uniform, norms at 1), which is
what the official OpenLLaMA code's student gets, its model constructor running no init pass. Both draw from
torch's global RNG (seed it first for a reproducible init).

DEFAULT (parts=None == "full", fresh_init="model"): whole blocks + wte + lm_head; wpe and ln_f stay at their fresh
init. This is what the official Inheritune GPT-2 code does (it copies the blocks and the tied lm_head, never wpe or
ln_f), hence what produced every GPT-2 number in the paper; keeping it the default makes `train.py
--init_from=inherit` reproduce the paper. It is also defensible on its own: the reference's ln_f was fitted to the
residual stream after L layers, not after n. The price: inheriting all L layers does NOT give back the reference's
logits unless wpe and ln_f come along too (parts="all", or "full,wte,lm_head,wpe,ln_f").

Against the official code and the paper (docs/papers.md sec. 2), point by point:
  layers       blocks 0..n-1: the same. `layers` chooses others (an extension; the paper's choice is the default).
  model parts  gpt2: the same as the official GPT-2 code (above). llama: the paper's text inherits the token
               embeddings and the LM head, and so does the default here; the official OpenLLaMA code copies the
               untied LM head only, with PyTorch's init for the rest: parts="lm_head", fresh_init="torch".
  search       n = L//2, each round inherits afresh and trains T steps with the reference's settings, its last
               evaluation (at T) is compared with the reference's last (at T), stop at <=, else n += 2: the paper's
               rule. The official code has no driver (each n was its own run). The paper's loop states no bound; we
               stop when n + 2 would reach L, since an L-layer model is no smaller model (the paper's runs matched
               before that).
  comparison   the paper's losses are each run's evaluation at T in the official logs, printed with two decimals;
               we compare full precision (the same decisions on the paper's runs), `tolerance` (default 0) widens it.
  rank         per head the smallest k whose top-k squared singular values hold tau = 0.9 of the T x T attention
               matrix's energy, averaged over 100 random val sequences of 100 tokens; MaxRank = max over heads;
               lazy at MaxRank 1: the paper's definition (the official code we compared, its GPT-2 and OpenLLaMA
               training scripts, holds no rank analysis).

Attention scale (gpt2's scale_attn_by_inverse_layer_idx, used by Inheritune): layer i divides its attention logits
by i+1, i being the layer's position in the NEW model (model.py computes it from the position). Inheriting the
first n layers keeps every position, so nothing changes. Inheriting e.g. layers [4,5,6,7] into positions 0..3
would make their logits 5/1..8/4 times larger; by default (keep_attn_scale=True) the ratio is folded into q_proj
(weight and bias, scaled by (i+1)/(src+1)), so the inherited blocks compute exactly what they computed in the
reference and the fold survives a checkpoint round trip. keep_attn_scale=False copies q_proj verbatim.

Each public function reads top to bottom as the method; its input checks are one guard call at its top, and the
checks themselves (with their error messages) are at the end of this file.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

import grow
from model import GPT, GPTConfig, config_dict
from runs import CheckpointError, find_checkpoint, model_from_checkpoint, read_metrics, stale_source

REPO_DIR = os.path.dirname(os.path.abspath(__file__))

# -------------------------------------------------------------------------------------------------------------
# Parts: names -> state-dict key prefixes (inside a block, or at the model level)

BLOCK_PARTS = {"attn": "attn.", "attn_norm": "ln_1.", "mlp": "mlp.", "mlp_norm": "ln_2."}
MODEL_PARTS = {"wte": "wte.", "lm_head": "lm_head.", "wpe": "wpe.", "ln_f": "ln_f."}
DEFAULT_MODEL_PARTS = ("wte", "lm_head")  # the official GPT-2 code's choice and the paper's text; module docstring
PRESETS = {
    "full": tuple(BLOCK_PARTS),
    "attn+norm": ("attn", "attn_norm"),
    "mlp+norm": ("mlp", "mlp_norm"),
    "attn+mlp": ("attn", "mlp"),
    "all": tuple(BLOCK_PARTS) + tuple(MODEL_PARTS),
}
DEFAULT_PARTS = "full"
FRESH_INITS = ("model", "torch")  # GPT(config)'s init (official GPT-2 code) | PyTorch's (official OpenLLaMA code)


def _part_names(parts):
    """A part spec (one string, comma-joined, or a list of strings) -> its stripped names, in order."""
    if isinstance(parts, str):
        return [p.strip() for p in parts.split(",") if p.strip()]
    return [p.strip() for p in parts]


def resolve_parts(parts=None, arch="gpt2"):
    """Inheritune's parts (docs/papers.md sec. 2, "Which parts to inherit"): a preset, a part name, or several of
    them (list or comma-joined string) -> (block parts, model-level parts), two sorted tuples. No block part named =
    whole blocks; no model-level part named = DEFAULT_MODEL_PARTS. Presets expand to the parts the architecture has
    ("all" on a llama skips wpe); naming wpe itself on a llama is an error."""
    parts = DEFAULT_PARTS if parts is None else parts
    _check_parts(parts, arch)
    chosen = set()
    for name in _part_names(parts):
        # a preset brings the parts this architecture has: RoPE (llama) has no position weights to copy
        chosen.update(p for p in PRESETS.get(name, (name,)) if not (p == "wpe" and arch != "gpt2"))
    block = chosen & set(BLOCK_PARTS) or set(BLOCK_PARTS)
    model = chosen & set(MODEL_PARTS) or set(DEFAULT_MODEL_PARTS)
    return tuple(sorted(block)), tuple(sorted(model))


def _parse_layers(layers):
    """train.py's --inherit_layers string "4,5,6,7" / "[4,5,6,7]" -> [4, 5, 6, 7]; a list, range or other iterable
    -> a list; None stays None (the first n)."""
    if not isinstance(layers, str):
        return None if layers is None else list(layers)
    text = layers.strip().strip("[]()")
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"layers={layers!r}: expected comma-separated integers such as '4,5,6,7'") from None


def resolve_layers(n_layer, layers, ref_n_layer):
    """The reference's block indices that become blocks 0..n-1 of the new model (default: the first n, as in
    Inheritune, docs/papers.md sec. 2). Accepts a list, a range, or a string "4,5,6,7" / "[4,5,6,7]" (train.py's
    --inherit_layers)."""
    layers = _parse_layers(layers)
    _check_layers(n_layer, layers, ref_n_layer)
    return list(range(n_layer)) if layers is None else [int(i) for i in layers]


def _block_part(rest):
    """The part a block key belongs to ("attn.q_proj.weight" -> "attn"), or None."""
    return next((p for p, prefix in BLOCK_PARTS.items() if rest.startswith(prefix)), None)


def _model_part(key):
    """The part a model-level key belongs to ("ln_f.weight" -> "ln_f"), or None."""
    return next((p for p, prefix in MODEL_PARTS.items() if key.startswith(prefix)), None)


def copy_plan(config, layers, block_parts, model_parts):
    """{new state-dict key: reference key} for a new model of `config` whose block i comes from reference block
    layers[i]. Every key of the new model is accounted for (copied or deliberately left fresh), so a module added
    to model.py that no part covers is an error here rather than silently left at its random init."""
    keys = state_keys(config)
    _check_keys_have_parts(keys)
    plan = {}
    for key in keys:
        if key.startswith("blocks."):
            _, i, rest = key.split(".", 2)
            if _block_part(rest) in block_parts:
                plan[key] = f"blocks.{layers[int(i)]}.{rest}"  # new block i <- reference block layers[i]
        elif _model_part(key) in model_parts:
            plan[key] = key
    return plan


def state_keys(config):
    """State-dict keys of a GPT of this config, without building its weights (meta device: no memory, no RNG)."""
    with torch.device("meta"):
        return list(GPT(config).state_dict().keys())


def _unwrap(model):
    """The GPT inside torch.compile (OptimizedModule._orig_mod) and DDP (.module) wrappers."""
    for _ in range(3):
        if isinstance(model, GPT):
            break
        model = getattr(model, "_orig_mod", None) or getattr(model, "module", None) or model
    return model


@torch.no_grad()
def inherit(ref, n_layer=None, layers=None, parts=None, keep_attn_scale=True, fresh_init="model"):
    """
    Inheritune (docs/papers.md sec. 2): a NEW GPT with ref's config but n_layer blocks, block i a copy of
    ref.blocks[layers[i]] (layers defaults to the first n_layer, the paper's choice), plus the model-level parts
    (default: token embeddings and LM head). Whatever is not copied keeps a fresh init (fresh_init: "model" =
    GPT(config)'s, "torch" = PyTorch's module defaults; module docstring), drawn from torch's global RNG (seed it
    first for a reproducible init). ref is never modified; the new model is on ref's device, in float32 (ref's
    values cast exactly when ref is bf16/fp16: every bf16 value is a float32).

    ref: a GPT (compiled or DDP-wrapped is fine), or a checkpoint file / run folder.
    parts: see the module docstring (None = "full": whole blocks + wte + lm_head; wpe and ln_f fresh).
    keep_attn_scale: with scale_attn_by_inverse_layer_idx, fold the change of layer position into q_proj so a
    moved block computes what it did in the reference (module docstring).
    """
    if isinstance(ref, (str, os.PathLike)):
        ref = model_from_checkpoint(os.fspath(ref))[0]
    ref = _unwrap(ref)
    _check_reference(ref, fresh_init)
    layers = resolve_layers(n_layer, layers, ref.config.n_layer)
    block_parts, model_parts = resolve_parts(parts, ref.config.arch)
    config = GPTConfig(**dict(config_dict(ref.config), n_layer=len(layers)))
    plan = copy_plan(config, layers, block_parts, model_parts)

    new = GPT(config)  # everything fresh first: what is not copied keeps this init (or PyTorch's, below)
    if fresh_init == "torch":
        _reset_to_torch_defaults(new)
    _copy(new, ref, plan)
    if "attn" in block_parts and keep_attn_scale and config.scale_attn_by_inverse_layer_idx:
        _fold_attn_scale(new, ref, layers)
    return new.to(next(ref.parameters()).device)


def _reset_to_torch_defaults(model):
    """Every module back to PyTorch's own init (nn.Embedding normal(0, 1), nn.Linear Kaiming-uniform, norms 1): the
    official OpenLLaMA code's student is built without an init pass. Copies come after, so only the parts left
    fresh keep these values (a tied wte/lm_head pair gets nn.Linear's, lm_head being reset last)."""
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()


def _copy(new, ref, plan):
    """new[dst] <- ref[src] for every pair of the plan (state-dict tensors share storage with the modules)."""
    ref_state, new_state = ref.state_dict(), new.state_dict()
    _check_same_shapes(plan, new_state, ref_state)
    for dst, src in plan.items():
        new_state[dst].copy_(ref_state[src])  # tied gpt2: wte.weight and lm_head.weight are one tensor


def _fold_attn_scale(new, ref, layers):
    """Moving block src to position i changes its logit scale 1/(src+1) to 1/(i+1) (scale_attn_by_inverse_layer_idx):
    multiply q by (i+1)/(src+1) so that scale * q.k, and so the block's output, is what it was in the reference."""
    for i, src in enumerate(layers):
        ratio = ref.blocks[src].attn.scale / new.blocks[i].attn.scale
        if ratio != 1.0:
            q = new.blocks[i].attn.q_proj
            q.weight.mul_(ratio)  # (nh*hd, C)
            if q.bias is not None:
                q.bias.mul_(ratio)


# -------------------------------------------------------------------------------------------------------------
# The Inheritune search (docs/papers.md sec. 2 "Algorithm"): the smallest n whose inherited model, trained T steps,
# matches the reference trained T steps

SEARCH_SET = ("init_from", "inherit_from", "inherit_n_layer", "n_layer", "max_iters", "max_tokens",
              "grow_at_tokens", "out_dir")  # train.py settings each round sets itself


def final_eval(run_dir):
    """The last evaluation line of a run (the run's final validation loss is its val_loss_mean)."""
    evals = [m for m in read_metrics(run_dir) if m.get("val_loss_mean") is not None]
    _check_has_evals(evals, run_dir)
    return evals[-1]


def matches_reference(loss, ref_loss, tolerance=0.0):
    """Inheritune's stop test: the inherited model is at least as good as the reference (within tolerance). Both
    losses are full-precision last evaluations at T; the paper prints them with two decimals, which decides the same
    on its runs (Medium 16L 2.8108 vs 2.8187, Large 18L 2.809 vs 2.8531 in the official logs)."""
    return loss <= ref_loss + tolerance  # NaN never matches


def next_n(n, loss, ref_loss, ref_n_layer, step=2, tolerance=0.0):
    """Inheritune v2's rule: None (stop) when round n matched the reference, or when n + step reaches L (the
    reference's own size, which is no smaller model); else the next n to try."""
    if matches_reference(loss, ref_loss, tolerance) or n + step >= ref_n_layer:
        return None
    return n + step


def count_params(model_args, n_layer):
    """(total, non-embedding) parameter counts of the reference's config at n_layer, on the meta device."""
    with torch.device("meta"):
        m = GPT(GPTConfig(**dict(model_args, n_layer=n_layer)))
    return m.num_params(non_embedding=False), m.num_params(non_embedding=True)


def train_command(ref_dir, n, steps, run_dir, train_args=(), resume=False):
    """The train.py command line of one search round: the reference's own settings (its config.json), then the
    inheritance of n layers, T steps, and the user's overrides."""
    cfg = os.path.join(ref_dir, "config.json")
    cmd = [sys.executable, os.path.join(REPO_DIR, "train.py"), cfg,
           "--init_from=resume" if resume else "--init_from=inherit", f"--inherit_from={ref_dir}",
           f"--inherit_n_layer={n}", f"--n_layer={n}", f"--max_iters={steps}",
           "--max_tokens=0",      # a reference with a token budget: the iteration count rules here
           "--grow_at_tokens=0",  # a reference that grew during its run: the round does not grow
           f"--out_dir={run_dir}"]
    return cmd + list(train_args)


def run_train(cmd, run_dir, echo=True):
    """Run one train.py round as a subprocess from the repo root, its output teed to <run_dir>/train.log."""
    os.makedirs(run_dir, exist_ok=True)
    log_path = os.path.join(run_dir, "train.log")
    tail = []
    with open(log_path, "a") as logf:
        logf.write("$ " + " ".join(cmd) + "\n")
        logf.flush()
        proc = subprocess.Popen(cmd, cwd=REPO_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        for line in proc.stdout:
            logf.write(line)
            tail = (tail + [line])[-30:]
            if echo:
                print(f"  [n{os.path.basename(run_dir)[1:]}] {line}", end="", flush=True)
        rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"train.py failed (exit {rc}) in round {run_dir}; command: {' '.join(cmd)}\n"
                           f"last lines of {log_path}:\n{''.join(tail)}")


def _round_done(run_dir, steps):
    try:
        return final_eval(run_dir).get("iter", -1) >= steps
    except (FileNotFoundError, ValueError):
        return False


def _reference(ref_dir):
    """The reference's model_args and its summary for search.json: checkpoint, layers L, parameter counts, and its
    last evaluation (the loss every round is compared with)."""
    ref_ckpt, ref_ckpt_path = find_checkpoint(ref_dir)
    ref_args = ref_ckpt["model_args"]
    del ref_ckpt  # only the shapes are needed here; train.py loads the weights in each round
    ref_eval = final_eval(ref_dir)
    total, non_emb = count_params(ref_args, ref_args["n_layer"])
    return ref_args, {"dir": ref_dir, "checkpoint": ref_ckpt_path, "n_layer": ref_args["n_layer"], "params": total,
                      "non_embedding_params": non_emb, "val_loss": float(ref_eval["val_loss_mean"]),
                      "iter": ref_eval.get("iter")}


def _search_round(ref_dir, n, steps, run_dir, train_args, resume, runner, log):
    """One round: inherit n layers afresh from the reference and train T steps (or reuse the finished run);
    returns the round's last evaluation line."""
    _check_round_dir(run_dir, resume)
    if _round_done(run_dir, steps):
        log(f"round n={n}: reusing the finished run in {run_dir}")
    else:
        interrupted = resume and os.path.isdir(run_dir) and any(f.startswith("ckpt_") for f in os.listdir(run_dir))
        log(f"round n={n}: training {steps} steps in {run_dir}")
        runner(train_command(ref_dir, n, steps, run_dir, train_args, resume=interrupted), run_dir)
    ev = final_eval(run_dir)
    if ev.get("iter") != steps:
        log(f"WARNING: round n={n}'s last evaluation is at iter {ev.get('iter')}, not {steps}: make steps a "
            f"multiple of the reference's eval_interval for a comparison at equal steps")
    return ev


def search(ref_dir, steps=None, out_dir="out/inherit_search", start=None, step=2, train_args=(), tolerance=0.0,
           resume=False, runner=None, log=print):
    """
    Inheritune v2 (docs/papers.md sec. 2 "Algorithm"): the reference in ref_dir (a train.py run of L layers) was
    trained `steps` = T steps. From n = start (default L//2): inherit n layers, train T steps with the reference's
    settings (train.py subprocess, run in <out_dir>/n<n>), and compare its final val loss with the reference's;
    stop when it is <= reference + tolerance, else n += step, until n would reach L.

    steps: None = the iteration of the reference's last evaluation. train_args: extra "--key=value" train.py
    overrides (e.g. a smaller batch); the settings the search sets itself (SEARCH_SET) are refused. resume=True
    reuses rounds already finished in out_dir (and resumes an interrupted one); without it a non-empty round
    folder is an error, so a stale result is never read as a new one. runner(cmd, run_dir): what runs a round
    (default run_train). Returns the summary dict also written to <out_dir>/search.json and search.md.
    """
    ref_dir, out_dir = os.path.abspath(ref_dir), os.path.abspath(out_dir)
    train_args = list(train_args)
    _check_search_args(ref_dir, train_args)
    ref_args, ref = _reference(ref_dir)
    L, ref_loss = ref["n_layer"], ref["val_loss"]
    steps = int(steps) if steps else int(ref["iter"])
    start = L // 2 if start is None else int(start)  # the paper starts at half depth
    _check_search_plan(L, start, step, steps)
    if ref["iter"] != steps:
        log(f"WARNING: the reference's last evaluation is at iter {ref['iter']}, not at steps={steps}: "
            f"the comparison is not at equal steps")
    runner = runner or run_train
    summary = {"reference": ref, "steps": steps, "start": start, "step": step, "tolerance": tolerance,
               "train_args": train_args, "rounds": [], "result": None}
    log(f"Inheritune search: reference {ref_dir} ({L} layers, {ref['params'] / 1e6:.2f}M params), val loss "
        f"{ref_loss:.4f} at iter {ref['iter']}; rounds of {steps} steps from n={start}, step {step}")
    os.makedirs(out_dir, exist_ok=True)
    n = start
    while n is not None:
        run_dir = os.path.join(out_dir, f"n{n}")
        ev = _search_round(ref_dir, n, steps, run_dir, train_args, resume, runner, log)
        loss = float(ev["val_loss_mean"])
        total, non_emb = count_params(ref_args, n)
        matched = matches_reference(loss, ref_loss, tolerance)
        summary["rounds"].append({"n_layer": n, "params": total, "non_embedding_params": non_emb, "val_loss": loss,
                                  "iter": ev.get("iter"), "matched": matched, "run_dir": run_dir})
        nxt = next_n(n, loss, ref_loss, L, step, tolerance)
        log(f"round n={n}: val loss {loss:.4f} vs reference {ref_loss:.4f} -> "
            + ("matches" if matched else "worse") + ("" if nxt is None else f"; next n={nxt}"))
        if nxt is None:
            summary["result"] = {"n_layer": n if matched else None,
                                 "reason": (f"n={n} matches the reference" if matched else
                                            f"no n < {L} matched within {step}-layer steps; keep the reference")}
        write_search_table(summary, out_dir)  # after every round: a long search shows its progress
        n = nxt
    log(search_markdown(summary))
    return summary


def search_markdown(summary):
    ref = summary["reference"]
    lines = [f"# Inheritune search: {ref['dir']}", "",
             f"reference: {ref['n_layer']} layers, {ref['params']:,} params, val loss {ref['val_loss']:.4f} at iter "
             f"{ref['iter']}; each round trained {summary['steps']} steps"
             + (f"; tolerance {summary['tolerance']}" if summary["tolerance"] else ""), "",
             "| n_layer | params | non-embedding params | val loss | reference val loss | matches |",
             "|---:|---:|---:|---:|---:|:---:|"]
    for r in summary["rounds"]:
        lines.append(f"| {r['n_layer']} | {r['params']:,} | {r['non_embedding_params']:,} | {r['val_loss']:.4f} | "
                     f"{ref['val_loss']:.4f} | {'yes' if r['matched'] else 'no'} |")
    lines.append(f"| {ref['n_layer']} (reference) | {ref['params']:,} | {ref['non_embedding_params']:,} | "
                 f"{ref['val_loss']:.4f} | {ref['val_loss']:.4f} | |")
    if summary["result"]:
        lines += ["", f"result: {summary['result']['reason']}"]
    return "\n".join(lines) + "\n"


def write_search_table(summary, out_dir):
    """search.json and search.md in out_dir, rewritten after every round (a long search shows its progress)."""
    for name, text in (("search.json", json.dumps(summary, indent=2)), ("search.md", search_markdown(summary))):
        tmp = os.path.join(out_dir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(out_dir, name))


# -------------------------------------------------------------------------------------------------------------
# Attention collapse, "lazy layers" (docs/papers.md sec. 2 "Attention collapse"): per head, the rank of the
# attention matrix


def attention_matrix_rank(att, tau=0.9):
    """k* of attention matrices att (..., T, T): the smallest k whose top-k singular values hold a fraction tau
    of the energy sum_i s_i^2. A head attending to one column (every row one-hot there) has k* = 1; the identity
    has k* = ceil(tau * T). Returns a long tensor of shape att.shape[:-2]."""
    _check_tau(tau)
    s = torch.linalg.svdvals(att.double())                             # (..., T), descending
    energy = s.square()
    frac = energy.cumsum(-1) / energy.sum(-1, keepdim=True).clamp_min(1e-300)
    k = (frac < tau - 1e-9).sum(-1) + 1  # the 1e-9 absorbs rounding, e.g. 9 of 10 equal values at tau 0.9
    return k.clamp(max=att.shape[-1])


def layer_attention(attn, x, rope=None):
    """The attention probabilities (B, nh, T, T) that `attn` (a model.Attention) computes on its input x (B, T, C):
    SDPA never materialises them, so redo its math: q, k projections, RoPE (llama), kv heads repeated for
    grouped-query attention, logits * attn.scale (which holds 1/sqrt(hd) and the per-layer 1/(i+1)), causal mask."""
    from model import apply_rope
    B, T, _ = x.shape
    q = attn.q_proj(x).view(B, T, attn.n_head, attn.head_dim).transpose(1, 2)     # (B, nh, T, hd)
    k = attn.k_proj(x).view(B, T, attn.n_kv_head, attn.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
    if rope is not None:
        cos, sin = rope
        q, k = apply_rope(q, cos[:T], sin[:T]), apply_rope(k, cos[:T], sin[:T])
    if attn.n_kv_head != attn.n_head:  # GQA: query head h reads kv head h // (nh / nkv), as SDPA's enable_gqa
        k = k.repeat_interleave(attn.n_head // attn.n_kv_head, dim=1)             # (B, nh, T, hd)
    logits = (q.float() @ k.float().transpose(-2, -1)) * attn.scale               # (B, nh, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    return logits.masked_fill(~causal, float("-inf")).softmax(dim=-1)


@torch.no_grad()
def attention_inputs(model, tokens):
    """Run model on tokens (B, T) and return, per layer, what its attention saw: [(ln_1 output (B, T, C), rope)]."""
    model = _unwrap(model)
    seen = []
    hooks = [b.attn.register_forward_pre_hook(lambda mod, args: seen.append((args[0], args[1] if len(args) > 1
                                                                                else None)))
             for b in model.blocks]
    try:
        model(tokens)
    finally:
        for h in hooks:
            h.remove()
    return seen


@torch.no_grad()
def attention_probs(model, tokens):
    """Per layer, the attention probabilities (B, nh, T, T) of model on tokens (B, T): a list of n_layer tensors."""
    model = _unwrap(model)
    return [layer_attention(b.attn, x, rope) for b, (x, rope) in zip(model.blocks, attention_inputs(model, tokens))]


@torch.no_grad()
def attention_rank(model, tokens, tau=0.9, batch_size=10):
    """Rank(h, l) of Inheritune's attention-collapse analysis (docs/papers.md sec. 2): k* (attention_matrix_rank) of
    every head of every layer, averaged over the sequences of tokens (B, T) (the paper: 100 val sequences of 100
    tokens). Returns a float tensor (n_layer, n_head), values in [1, T]. Sequences go through in chunks of
    batch_size to bound memory (n_layer x (b, T, C) inputs at a time)."""
    model = _unwrap(model)
    was_training = model.training
    model.eval()  # dropout off: the attention of the model as used
    try:
        total = torch.zeros(model.config.n_layer, model.config.n_head, dtype=torch.float64)
        for lo in range(0, tokens.shape[0], batch_size):
            chunk = tokens[lo:lo + batch_size]
            for l, (b, (x, rope)) in enumerate(zip(model.blocks, attention_inputs(model, chunk))):
                ranks = attention_matrix_rank(layer_attention(b.attn, x, rope), tau)  # (b, nh)
                total[l] += ranks.sum(0).cpu().double()
    finally:
        model.train(was_training)
    return (total / tokens.shape[0]).float()


def max_rank(ranks):
    """MaxRank(l) = max over heads of Rank(h, l): (n_layer, n_head) -> (n_layer,)."""
    return ranks.max(dim=-1).values


def lazy_layers(ranks, tol=1e-6):
    """Layers whose every head is rank 1 on every sequence (MaxRank = 1): the paper's lazy layers."""
    return [l for l, r in enumerate(max_rank(ranks).tolist()) if r <= 1.0 + tol]


def sample_sequences(dataset_dir, n_seqs=100, seq_len=100, split="val", seed=0, domain=None, vocab_size=None):
    """n_seqs random windows of seq_len tokens (n_seqs, seq_len) from a dataset's split: each window's domain drawn
    in proportion to the split's size (or only `domain`), its start uniform."""
    from data.loader import load_meta, open_tokens
    meta = load_meta(dataset_dir)
    domains = [domain] if domain else list(meta["domains"])
    data = {d: open_tokens(dataset_dir, d, split, meta, min_tokens=seq_len) for d in domains}
    sizes = np.array([len(data[d]) for d in domains], dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(domains), size=n_seqs, p=sizes / sizes.sum())
    rows = []
    for i in picks:
        d = data[domains[i]]
        start = rng.integers(0, len(d) - seq_len + 1)
        rows.append(d[start:start + seq_len].astype(np.int64))
    out = np.stack(rows)                                                          # (n_seqs, seq_len)
    _check_vocab(out, vocab_size, dataset_dir)  # the data's ids are known only once sampled
    return torch.from_numpy(out)


def rank_table(ranks, seq_len):
    """The per-layer table: layer, MaxRank, mean rank over heads, lazy?"""
    mr, mean = max_rank(ranks), ranks.mean(dim=-1)
    lazy = set(lazy_layers(ranks))
    lines = [f"{'layer':>5} {'MaxRank':>8} {'mean rank':>10}  lazy", "-" * 31]
    for l in range(ranks.shape[0]):
        lines.append(f"{l:>5} {mr[l].item():>8.2f} {mean[l].item():>10.2f}  {'yes' if l in lazy else ''}")
    lines.append(f"lazy layers (MaxRank = 1): {len(lazy)} of {ranks.shape[0]}; rank is out of T = {seq_len}")
    return "\n".join(lines)


def _dataset_dir(name):
    """As train.py resolves its `dataset` setting: an existing folder or a path, else a name under data/."""
    return name if os.path.isdir(name) or os.sep in name else os.path.join(REPO_DIR, "data", name)


# -------------------------------------------------------------------------------------------------------------
# CLI


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:  # everything after a bare -- goes to train.py
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(description="Inheritune (Sanyal et al. 2024): search for the smallest "
                                     "inherited model, or measure attention collapse (lazy layers).")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("search", help="Inheritune v2: n = L/2, L/2+2, ... until the inherited model matches the "
                       "reference (extra train.py --key=value overrides after a bare --)")
    s.add_argument("--ref", required=True, help="out_dir of the reference's train.py run")
    s.add_argument("--steps", type=int, default=None, help="T, steps per round (default: the reference's last eval iter)")
    s.add_argument("--out_dir", default="out/inherit_search")
    s.add_argument("--start", type=int, default=None, help="first n (default L//2)")
    s.add_argument("--step", type=int, default=2, help="layers added per round (paper: 2)")
    s.add_argument("--tolerance", type=float, default=0.0, help="match when loss <= reference + tolerance")
    s.add_argument("--resume", action="store_true", help="reuse finished rounds in out_dir")
    s.add_argument("--quiet", action="store_true", help="do not echo train.py's output")
    r = sub.add_parser("rank", help="per-layer attention rank (MaxRank, lazy layers) on random val sequences")
    r.add_argument("checkpoint", help="a checkpoint file or a run folder")
    r.add_argument("--dataset", default=None, help="dataset folder (default: the run's own `dataset` setting)")
    r.add_argument("--n_seqs", type=int, default=100)
    r.add_argument("--seq_len", type=int, default=100)
    r.add_argument("--tau", type=float, default=0.9, help="energy fraction (paper: 0.9)")
    r.add_argument("--split", default="val")
    r.add_argument("--domain", default=None, help="only this domain (default: all, by size)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    r.add_argument("--json", default=None, help="also write the (n_layer, n_head) ranks here")
    args = parser.parse_args(argv)
    args.extra = extra
    if extra and args.cmd != "search":
        parser.error("train.py overrides after -- are for `search` only")
    try:
        _run_cli(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, CheckpointError) as e:
        raise SystemExit(f"inherit.py {args.cmd}: {e}") from e  # a clear message, not a traceback


def _run_cli(args):
    if args.cmd == "search":
        runner = (lambda cmd, run_dir: run_train(cmd, run_dir, echo=not args.quiet))
        summary = search(args.ref, args.steps, args.out_dir, start=args.start, step=args.step, train_args=args.extra,
                         tolerance=args.tolerance, resume=args.resume, runner=runner)
        print(f"wrote {os.path.join(args.out_dir, 'search.json')} and search.md; {summary['result']['reason']}")
        return
    from configurator import check_device
    from data.loader import check_tokenizer, load_meta
    check_device(args.device)
    model, ckpt = model_from_checkpoint(args.checkpoint, device=args.device)
    dataset = args.dataset or (ckpt.get("config") or {}).get("dataset")
    _check_rank_args(args.checkpoint, dataset, args.seq_len, model.config.block_size)
    check_tokenizer(ckpt, load_meta(_dataset_dir(dataset)), f"checkpoint {args.checkpoint}", _dataset_dir(dataset))
    tokens = sample_sequences(_dataset_dir(dataset), args.n_seqs, args.seq_len, args.split, args.seed, args.domain,
                              model.config.vocab_size).to(args.device)
    ranks = attention_rank(model, tokens, args.tau)
    print(f"attention rank of {args.checkpoint} ({model.config.n_layer} layers, {model.config.n_head} heads) on "
          f"{args.n_seqs} {args.split} sequences of {args.seq_len} tokens from {dataset}, tau={args.tau}")
    print(rank_table(ranks, args.seq_len))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ranks": ranks.tolist(), "max_rank": max_rank(ranks).tolist(),
                       "lazy_layers": lazy_layers(ranks), "tau": args.tau, "seq_len": args.seq_len}, f, indent=2)


# -------------------------------------------------------------------------------------------------------------
# Validation: every check of the public functions above, each called once where its inputs are known. The
# messages are part of the interface (tests match them): say what is wrong and what to do.

COMPAT_KEYS = ("arch", "vocab_size", "n_embd", "n_head", "n_kv_head", "intermediate_size", "bias", "tie_embeddings")


def check_compatible(ref_args, target_args, n_layer=None):
    """Raise ValueError naming every setting in target_args that disagrees with the reference's model_args
    (arch, vocab_size, n_embd, n_head, n_kv_head, intermediate_size, bias, tie_embeddings): an inherited model
    has the reference's shapes, so such a setting cannot be honoured. Settings that are absent or None in
    target_args ("take the default") are not compared. With n_layer (the number of layers to inherit) it must
    fit the reference, and target_args' n_layer, when given, must equal it."""
    problems = []
    for key in COMPAT_KEYS:
        want = target_args.get(key)
        have = ref_args.get(key)
        if want is None or have is None:
            continue
        if want != have:
            problems.append(f"{key}: reference {have!r}, yours {want!r}")
    L = ref_args.get("n_layer")
    if n_layer is not None:
        if L is not None and not 1 <= n_layer <= L:
            problems.append(f"n_layer: cannot inherit {n_layer} layers from a reference of {L}")
        if target_args.get("n_layer") not in (None, n_layer):
            problems.append(f"n_layer: inheriting {n_layer} layers but yours is {target_args['n_layer']!r}")
    if problems:
        raise ValueError("the model settings disagree with the reference checkpoint (an inherited model keeps the "
                         "reference's shapes; drop these settings or make them match): " + "; ".join(problems))


def _check_parts(parts, arch):
    if isinstance(parts, str):
        pass
    elif not (isinstance(parts, (list, tuple, set, frozenset)) and all(isinstance(p, str) for p in parts)):
        raise TypeError(f"parts={parts!r}: expected a string or a list of strings (part names or presets)")
    names = _part_names(parts)
    if not names:
        raise ValueError(f"parts={parts!r} names nothing; valid parts: {', '.join(BLOCK_PARTS)}, "
                         f"{', '.join(MODEL_PARTS)}; presets: {', '.join(PRESETS)}")
    for name in names:
        if name not in PRESETS and name not in BLOCK_PARTS and name not in MODEL_PARTS:
            raise ValueError(f"unknown part {name!r}; valid parts: per block {', '.join(BLOCK_PARTS)}; model-level "
                             f"{', '.join(MODEL_PARTS)}; presets: {', '.join(PRESETS)}")
        if name == "wpe" and arch != "gpt2":
            raise ValueError(f"part 'wpe' (learned position embeddings) exists only for arch='gpt2'; this "
                             f"{arch} model uses RoPE, which has no weights to inherit")


def _check_layers(n_layer, layers, ref_n_layer):
    """Either n_layer alone (the first n_layer blocks) or an explicit list of distinct blocks of the reference."""
    if layers is None:
        if isinstance(n_layer, bool) or not isinstance(n_layer, (int, np.integer)):
            raise TypeError(f"n_layer={n_layer!r}: expected an integer number of layers to inherit")
        if not 1 <= n_layer <= ref_n_layer:
            raise ValueError(f"n_layer={n_layer}: can inherit between 1 and {ref_n_layer} layers (the reference has "
                             f"{ref_n_layer})")
        return
    layers = list(layers)
    if any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in layers):
        raise TypeError(f"layers={layers!r}: expected integer block indices")
    layers = [int(i) for i in layers]
    if not layers:
        raise ValueError("layers=[]: inherit at least one layer")
    if n_layer not in (None, 0) and n_layer != len(layers):
        raise ValueError(f"n_layer={n_layer} but layers={layers} lists {len(layers)} blocks; give one or make "
                         f"them agree")
    bad = [i for i in layers if not 0 <= i < ref_n_layer]
    if bad:
        raise ValueError(f"layers {bad} out of range: the reference has blocks 0..{ref_n_layer - 1}")
    dupes = sorted({i for i in layers if layers.count(i) > 1})
    if dupes:
        raise ValueError(f"layers={layers} repeats blocks {dupes}; inheritance takes each block at most once "
                         f"(repeating blocks is depth growth: grow.py, e.g. grow_layer_map)")


def _check_keys_have_parts(keys):
    for key in keys:
        if key.startswith("blocks."):
            if _block_part(key.split(".", 2)[2]) is None:
                raise RuntimeError(f"inherit.copy_plan: block key {key!r} belongs to no part; update BLOCK_PARTS")
        elif _model_part(key) is None:
            raise RuntimeError(f"inherit.copy_plan: model key {key!r} belongs to no part; update MODEL_PARTS")


def _check_reference(ref, fresh_init):
    if not isinstance(ref, GPT):
        raise TypeError(f"inherit: the reference must be a model.GPT (or a checkpoint path), got {type(ref).__name__}")
    if grow.ramps_active(ref):
        raise ValueError("inherit: the reference is still blending in blocks from a G_random growth; finish the "
                         "ramp first (grow.set_ramp(ref, 1), or train past grow_ramp_steps)")
    if fresh_init not in FRESH_INITS:
        raise ValueError(f"inherit: fresh_init={fresh_init!r} is unknown; use 'model' (GPT(config)'s init, the "
                         f"official GPT-2 code's) or 'torch' (PyTorch's defaults, the official OpenLLaMA code's)")


def _check_same_shapes(plan, new_state, ref_state):
    for dst, src in plan.items():
        if new_state[dst].shape != ref_state[src].shape:  # cannot happen for a consistent GPT; guard anyway
            raise RuntimeError(f"inherit: {dst} has shape {tuple(new_state[dst].shape)} but the reference's "
                               f"{src} has {tuple(ref_state[src].shape)}")


def _check_has_evals(evals, run_dir):
    if not evals:
        raise ValueError(f"{run_dir}/metrics.jsonl has no evaluation line (val_loss_mean); did the run evaluate?")


def _check_search_args(ref_dir, train_args):
    if not os.path.isfile(os.path.join(ref_dir, "config.json")):
        raise FileNotFoundError(f"{ref_dir}/config.json not found: --ref must be the out_dir of the train.py run of "
                                f"the reference")
    for a in train_args:
        key, sep, _ = a.removeprefix("--").partition("=")
        if not a.startswith("--") or not sep:
            raise ValueError(f"train argument {a!r}: expected --key=value")
        if key in SEARCH_SET:
            raise ValueError(f"train argument {a!r}: {key} is set by the search itself for each round")


def _check_search_plan(L, start, step, steps):
    if L < 2:
        raise ValueError(f"the reference has {L} layer; there is no smaller model to search for")
    if not 1 <= start < L:
        raise ValueError(f"start={start}: must be between 1 and L-1={L - 1} (the reference has {L} layers)")
    if step < 1 or steps < 1:
        raise ValueError(f"step={step}, steps={steps}: both must be positive")


def _check_round_dir(run_dir, resume):
    """A round folder holds this search's run only: a non-empty one is reused only on resume, and never when it was
    inherited from an older version of the reference (the reference trained on since)."""
    if os.path.isdir(run_dir) and os.listdir(run_dir) and not resume:
        raise FileExistsError(f"{run_dir} is not empty (an earlier search?); pass resume=True (--resume) to reuse "
                              f"finished rounds, or choose another out_dir")
    why = stale_source(run_dir)
    if why:
        raise FileExistsError(f"{run_dir} was inherited from another version of the reference: {why}. Delete "
                              f"it to rerun the round")


def _check_tau(tau):
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau={tau}: must be in (0, 1]")


def _check_vocab(tokens, vocab_size, dataset_dir):
    if vocab_size is not None and tokens.max() >= vocab_size:
        raise ValueError(f"{dataset_dir} holds token id {tokens.max()} >= the model's vocab_size {vocab_size}: the "
                         f"data was made with another tokenizer")


def _check_rank_args(checkpoint, dataset, seq_len, block_size):
    if not dataset:
        raise ValueError(f"{checkpoint} does not say which dataset it was trained on; pass --dataset")
    if seq_len > block_size:
        raise ValueError(f"--seq_len={seq_len} is longer than the model's context {block_size}")


if __name__ == "__main__":
    main()
