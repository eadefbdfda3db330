"""
Inheritune (Sanyal et al. 2024, "Inheritune: Training Smaller Yet More Attentive Language Models", arXiv
2404.08634; docs/papers.md sec. 2): a small model of n layers starts from the FIRST n blocks of a trained reference
of L layers, plus its token embeddings and LM head, and is then trained as usual. Why the first ones: the deep
layers of large models are "lazy" (attention collapse: their attention matrices are nearly rank 1).

  inherit(ref, n)             a new GPT from ref's blocks 0..n-1 (or any list) and some of its parts; train.py
                              calls it for --init_from=inherit
  search(ref_dir, steps)      the paper's algorithm: from n = L/2, inherit n layers, train T steps, compare the val
                              loss with the reference's; while worse, n += 2
  attention_rank(model, tok)  the attention-collapse diagnostic: per layer and head, the number of singular values
                              holding 90% of the energy of the (T, T) attention matrix; lazy at MaxRank 1

    python inherit.py search --ref out/ref --steps 2000 --out_dir out/inherit_search [-- --batch_size=32 ...]
    python inherit.py rank out/ref [--dataset pycorpus] [--n_seqs 100 --seq_len 100]

The parts to copy, the presets of the paper's sub-block ablation, and how each choice compares with the official
code are in docs/papers.md sec. 2. The default (whole blocks + wte + lm_head, wpe and ln_f fresh) is the official
GPT-2 code's, hence what produced the paper's GPT-2 numbers.
"""

import argparse
import json
import os
import sys
from dataclasses import replace

import numpy as np
import torch

import grow
from model import GPT, GPTConfig, apply_rope
from runs import CheckpointError, final_eval, find_checkpoint, is_done, run_logged, stale_source

REPO_DIR = os.path.dirname(os.path.abspath(__file__))

# parts: names -> state-dict key prefixes, inside a block or at the model level
BLOCK_PARTS = {"attn": "attn.", "attn_norm": "ln_1.", "mlp": "mlp.", "mlp_norm": "ln_2."}
MODEL_PARTS = {"wte": "wte.", "lm_head": "lm_head.", "wpe": "wpe.", "ln_f": "ln_f."}
DEFAULT_MODEL_PARTS = ("wte", "lm_head")  # the official GPT-2 code's choice and the paper's text
PRESETS = {"full": tuple(BLOCK_PARTS), "attn+norm": ("attn", "attn_norm"), "mlp+norm": ("mlp", "mlp_norm"),
           "attn+mlp": ("attn", "mlp"), "all": tuple(BLOCK_PARTS) + tuple(MODEL_PARTS)}
FRESH_INITS = ("model", "torch")  # GPT(config)'s init (official GPT-2 code) | PyTorch's (official OpenLLaMA code)


def resolve_parts(parts=None, arch="gpt2"):
    """A part spec (a preset, a part, or several of them as a list or a comma-joined string) -> (block parts,
    model-level parts), two sorted tuples. No block part named = whole blocks; no model-level part named = wte and
    lm_head. Presets bring the parts the architecture has ("all" on a llama skips wpe)."""
    names = _check_parts("full" if parts is None else parts, arch)
    chosen = {p for name in names for p in PRESETS.get(name, (name,)) if not (p == "wpe" and arch != "gpt2")}
    block = chosen & set(BLOCK_PARTS) or set(BLOCK_PARTS)
    model = chosen & set(MODEL_PARTS) or set(DEFAULT_MODEL_PARTS)
    return tuple(sorted(block)), tuple(sorted(model))


def _part_of(key, parts):
    return next((p for p, prefix in parts.items() if key.startswith(prefix)), None)


@torch.no_grad()
def inherit(ref, n_layer=None, layers=None, parts=None, keep_attn_scale=True, fresh_init="model"):
    """Inheritune: a NEW GPT with ref's config but n_layer blocks, block i a copy of ref.blocks[layers[i]] (layers
    defaults to the first n_layer, the paper's choice), plus the model-level parts (default: wte and lm_head).

    ref: a GPT (compiled or DDP-wrapped is fine), or a checkpoint file / run folder; never modified.
    fresh_init: how what is not copied starts: "model" = GPT(config)'s init, "torch" = PyTorch's module defaults
    (the official OpenLLaMA code's student). Both draw from torch's global RNG: seed it first.
    keep_attn_scale: with scale_attn_by_inverse_layer_idx, a block moved from position src to i gets its q_proj
    times (i+1)/(src+1), so it computes what it did in the reference.
    Returns the model on ref's device, in float32 (a bf16 reference is cast exactly)."""
    if isinstance(ref, (str, os.PathLike)):
        ref = grow.load_model(find_checkpoint(os.fspath(ref))[0])
    for _ in range(3):  # the GPT inside torch.compile (._orig_mod) and DDP (.module) wrappers
        ref = ref if isinstance(ref, GPT) else getattr(ref, "_orig_mod", None) or getattr(ref, "module", ref)
    _check_reference(ref, fresh_init)
    layers = _check_layers(n_layer, layers, ref.config.n_layer)
    block_parts, model_parts = resolve_parts(parts, ref.config.arch)
    new = GPT(replace(ref.config, n_layer=len(layers)))  # everything fresh first: what is not copied keeps it
    if fresh_init == "torch":  # PyTorch's init (the official OpenLLaMA student is built without an init pass)
        for module in new.modules():
            if module is not new and hasattr(module, "reset_parameters"):
                module.reset_parameters()
    ref_state, new_state = ref.state_dict(), new.state_dict()  # state-dict tensors share storage with the modules
    for key in new_state:
        if key.startswith("blocks."):
            _, i, rest = key.split(".", 2)
            if _part_of(rest, BLOCK_PARTS) in block_parts:  # new block i <- reference block layers[i]
                new_state[key].copy_(ref_state[f"blocks.{layers[int(i)]}.{rest}"])
        elif _part_of(key, MODEL_PARTS) in model_parts:
            new_state[key].copy_(ref_state[key])  # tied gpt2: wte.weight and lm_head.weight are one tensor
    if "attn" in block_parts and keep_attn_scale:
        for i, src in enumerate(layers):  # scale * q.k unchanged: q times (i+1)/(src+1)
            ratio = ref.blocks[src].attn.scale / new.blocks[i].attn.scale
            if ratio != 1.0:
                q = new.blocks[i].attn.q_proj
                q.weight.mul_(ratio)  # (nh*hd, C)
                if q.bias is not None:
                    q.bias.mul_(ratio)
    return new.to(next(ref.parameters()).device)


# -------------------------------------------------------------------------------------------------------------
# The Inheritune search (docs/papers.md sec. 2 "Algorithm"): the smallest n whose inherited model, trained T steps,
# matches the reference trained T steps. The paper's loop has no bound; we stop when n + step would reach L.

SEARCH_SET = ("init_from", "inherit_from", "inherit_n_layer", "n_layer", "max_iters", "max_tokens",
              "grow_at_tokens", "out_dir")  # train.py settings each round sets itself


def matches_reference(loss, ref_loss, tolerance=0.0):
    """Inheritune's stop test: the inherited model is at least as good as the reference (within tolerance), both
    at T, at full precision (the paper prints two decimals, which decides the same on its runs). NaN never matches."""
    return loss <= ref_loss + tolerance


def next_n(n, loss, ref_loss, ref_n_layer, step=2, tolerance=0.0):
    """Inheritune's rule: None (stop) when round n matched the reference, or when n + step reaches L (the
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
    """One round's train.py command: the reference's own settings (its config.json), then inherit n layers, T
    steps (a token budget or an in-run growth of the reference is switched off), then the user's overrides."""
    cmd = [sys.executable, os.path.join(REPO_DIR, "train.py"), os.path.join(ref_dir, "config.json"),
           "--init_from=resume" if resume else "--init_from=inherit", f"--inherit_from={ref_dir}",
           f"--inherit_n_layer={n}", f"--n_layer={n}", f"--max_iters={steps}", "--max_tokens=0", "--grow_at_tokens=0",
           f"--out_dir={run_dir}"]
    return cmd + list(train_args)


def search(ref_dir, steps=None, out_dir="out/inherit_search", start=None, step=2, train_args=(), tolerance=0.0,
           resume=False, runner=None, log=print):
    """Inheritune (docs/papers.md sec. 2 "Algorithm"): the reference in ref_dir (a train.py run of L layers) was
    trained T = `steps` steps (default: its last evaluation's iter). From n = start (default L//2): inherit n
    layers, train T steps with the reference's settings in <out_dir>/n<n>, and compare the final val loss with the
    reference's; stop when it is <= reference + tolerance, else n += step, until n would reach L.
    train_args: extra --key=value train.py overrides. resume: reuse (or resume) rounds in out_dir; without it a
    non-empty round folder is an error. runner(cmd, run_dir) runs a round (default runs.run_logged). Returns the summary
    also written to <out_dir>/search.json and search.md."""
    ref_dir, out_dir = os.path.abspath(ref_dir), os.path.abspath(out_dir)
    train_args = list(train_args)
    _check_search_args(ref_dir, train_args)
    ref_ckpt, ref_path = find_checkpoint(ref_dir)
    ref_args, ref_eval = ref_ckpt["model_args"], final_eval(ref_dir)
    del ref_ckpt  # only the shapes are needed here; train.py loads the weights in each round
    L, (total, non_emb) = ref_args["n_layer"], count_params(ref_args, ref_args["n_layer"])
    ref = {"dir": ref_dir, "checkpoint": ref_path, "n_layer": L, "params": total, "non_embedding_params": non_emb,
           "val_loss": float(ref_eval["val_loss_mean"]), "iter": ref_eval.get("iter")}
    steps = int(steps) if steps else int(ref["iter"])
    start = L // 2 if start is None else int(start)  # the paper starts at half depth
    _check_search_plan(L, start, step, steps)
    if ref["iter"] != steps:
        log(f"WARNING: the reference's last evaluation is at iter {ref['iter']}, not at steps={steps}: "
            f"the comparison is not at equal steps")
    summary = {"reference": ref, "steps": steps, "start": start, "step": step, "tolerance": tolerance,
               "train_args": train_args, "rounds": [], "result": None}
    log(f"Inheritune search: reference {ref_dir} ({L} layers, {ref['params'] / 1e6:.2f}M params), val loss "
        f"{ref['val_loss']:.4f} at iter {ref['iter']}; rounds of {steps} steps from n={start}, step {step}")
    os.makedirs(out_dir, exist_ok=True)
    n = start
    while n is not None:
        run_dir = os.path.join(out_dir, f"n{n}")
        _check_round_dir(run_dir, resume)
        if is_done(run_dir, steps):
            log(f"round n={n}: reusing the finished run in {run_dir}")
        else:
            interrupted = resume and os.path.isdir(run_dir) and any(f.startswith("ckpt_") for f in os.listdir(run_dir))
            log(f"round n={n}: training {steps} steps in {run_dir}")
            cmd = train_command(ref_dir, n, steps, run_dir, train_args, resume=interrupted)
            (runner or (lambda c, d: run_logged(c, d, f"n{n}")))(cmd, run_dir)
        ev = final_eval(run_dir)
        if ev.get("iter") != steps:
            log(f"WARNING: round n={n}'s last evaluation is at iter {ev.get('iter')}, not {steps}: make steps a "
                f"multiple of the reference's eval_interval for a comparison at equal steps")
        loss, (total, non_emb) = float(ev["val_loss_mean"]), count_params(ref_args, n)
        matched = matches_reference(loss, ref["val_loss"], tolerance)
        summary["rounds"].append({"n_layer": n, "params": total, "non_embedding_params": non_emb, "val_loss": loss,
                                  "iter": ev.get("iter"), "matched": matched, "run_dir": run_dir})
        nxt = next_n(n, loss, ref["val_loss"], L, step, tolerance)
        log(f"round n={n}: val loss {loss:.4f} vs reference {ref['val_loss']:.4f} -> "
            + ("matches" if matched else "worse") + ("" if nxt is None else f"; next n={nxt}"))
        if nxt is None:
            summary["result"] = {"n_layer": n if matched else None,
                                 "reason": (f"n={n} matches the reference" if matched else
                                            f"no n < {L} matched within {step}-layer steps; keep the reference")}
        for name, text in (("search.json", json.dumps(summary, indent=2)), ("search.md", search_markdown(summary))):
            with open(os.path.join(out_dir, name + ".tmp"), "w") as f:  # after every round: a long search shows
                f.write(text)                                           # its progress
            os.replace(os.path.join(out_dir, name + ".tmp"), os.path.join(out_dir, name))
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


# -------------------------------------------------------------------------------------------------------------
# Attention collapse, "lazy layers" (docs/papers.md sec. 2): per head, the rank of the attention matrix

def attention_matrix_rank(att, tau=0.9):
    """k* of attention matrices att (..., T, T): the smallest k whose top-k singular values hold a fraction tau
    of the energy sum_i s_i^2. A head attending to one column has k* = 1; the identity has k* = ceil(tau * T).
    Returns a long tensor of shape att.shape[:-2]."""
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau={tau}: must be in (0, 1]")
    s = torch.linalg.svdvals(att.double())                             # (..., T), descending
    energy = s.square()
    frac = energy.cumsum(-1) / energy.sum(-1, keepdim=True).clamp_min(1e-300)
    k = (frac < tau - 1e-9).sum(-1) + 1  # the 1e-9 absorbs rounding, e.g. 9 of 10 equal values at tau 0.9
    return k.clamp(max=att.shape[-1])


def layer_attention(attn, x, rope=None):
    """The attention probabilities (B, nh, T, T) that `attn` (a model.Attention) computes on its input x (B, T, C),
    which SDPA never materialises: q, k, RoPE, kv heads repeated (GQA), logits * attn.scale, causal softmax."""
    B, T, _ = x.shape
    q = attn.q_proj(x).view(B, T, attn.n_head, attn.head_dim).transpose(1, 2)     # (B, nh, T, hd)
    k = attn.k_proj(x).view(B, T, attn.n_kv_head, attn.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
    if rope is not None:
        cos, sin = rope
        q, k = apply_rope(q, cos[:T], sin[:T]), apply_rope(k, cos[:T], sin[:T])
    k = k.repeat_interleave(attn.n_head // attn.n_kv_head, dim=1)                 # (B, nh, T, hd)
    logits = (q.float() @ k.float().transpose(-2, -1)) * attn.scale               # (B, nh, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    return logits.masked_fill(~causal, float("-inf")).softmax(dim=-1)


@torch.no_grad()
def attention_inputs(model, tokens):
    """Run model on tokens (B, T) and return, per layer, what its attention saw: [(ln_1 output (B, T, C), rope)]."""
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
def attention_rank(model, tokens, tau=0.9, batch_size=10):
    """Rank(h, l) of Inheritune's attention-collapse analysis: k* (attention_matrix_rank) of every head of every
    layer, averaged over the sequences of tokens (B, T) (the paper: 100 val sequences of 100 tokens). Returns a
    float tensor (n_layer, n_head) with values in [1, T]; sequences go through batch_size at a time."""
    was_training = model.training
    model.eval()  # dropout off: the attention of the model as used
    total = torch.zeros(model.config.n_layer, model.config.n_head, dtype=torch.float64)
    for lo in range(0, tokens.shape[0], batch_size):
        chunk = tokens[lo:lo + batch_size]
        for l, (b, (x, rope)) in enumerate(zip(model.blocks, attention_inputs(model, chunk))):
            total[l] += attention_matrix_rank(layer_attention(b.attn, x, rope), tau).sum(0).cpu().double()  # (nh,)
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
    rows = []
    for i in rng.choice(len(domains), size=n_seqs, p=sizes / sizes.sum()):
        d = data[domains[i]]
        start = rng.integers(0, len(d) - seq_len + 1)
        rows.append(d[start:start + seq_len].astype(np.int64))
    out = np.stack(rows)                                                          # (n_seqs, seq_len)
    if vocab_size is not None and out.max() >= vocab_size:
        raise ValueError(f"{dataset_dir} holds token id {out.max()} >= the model's vocab_size {vocab_size}: the "
                         f"data was made with another tokenizer")
    return torch.from_numpy(out)


def rank_table(ranks, seq_len):
    """The per-layer table: layer, MaxRank, mean rank over heads, lazy?"""
    mr, mean, lazy = max_rank(ranks), ranks.mean(dim=-1), set(lazy_layers(ranks))
    lines = [f"{'layer':>5} {'MaxRank':>8} {'mean rank':>10}  lazy", "-" * 31]
    for l in range(ranks.shape[0]):
        lines.append(f"{l:>5} {mr[l].item():>8.2f} {mean[l].item():>10.2f}  {'yes' if l in lazy else ''}")
    lines.append(f"lazy layers (MaxRank = 1): {len(lazy)} of {ranks.shape[0]}; rank is out of T = {seq_len}")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------------
# Command line

def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:  # everything after a bare -- goes to train.py
        argv, extra = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    parser = argparse.ArgumentParser(description="Inheritune (Sanyal et al. 2024): search for the smallest "
                                     "inherited model, or measure attention collapse (lazy layers).")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("search", help="n = L/2, L/2+2, ... until the inherited model matches the reference "
                       "(extra train.py --key=value overrides after a bare --)")
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
    r.add_argument("--dataset", default=None, help="dataset name or folder (default: the run's own `dataset`)")
    r.add_argument("--n_seqs", type=int, default=100)
    r.add_argument("--seq_len", type=int, default=100)
    r.add_argument("--tau", type=float, default=0.9, help="energy fraction (paper: 0.9)")
    r.add_argument("--split", default="val")
    r.add_argument("--domain", default=None, help="only this domain (default: all, by size)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    r.add_argument("--json", default=None, help="also write the (n_layer, n_head) ranks here")
    args = parser.parse_args(argv)
    if extra and args.cmd != "search":
        parser.error("train.py overrides after -- are for `search` only")
    try:
        if args.cmd == "search":
            summary = search(args.ref, args.steps, args.out_dir, start=args.start, step=args.step, train_args=extra,
                             tolerance=args.tolerance, resume=args.resume,
                             runner=lambda cmd, run_dir: run_logged(cmd, run_dir, os.path.basename(run_dir),
                                                                     echo=not args.quiet))
            print(f"wrote {os.path.join(args.out_dir, 'search.json')} and search.md; {summary['result']['reason']}")
        else:
            rank_cli(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, CheckpointError) as e:
        raise SystemExit(f"inherit.py {args.cmd}: {e}") from e  # a clear message, not a traceback


def rank_cli(args):
    from configurator import check_device
    from data.loader import check_tokenizer, dataset_dir, load_meta
    check_device(args.device)
    ckpt = find_checkpoint(args.checkpoint)[0]
    model = grow.load_model(ckpt, args.device)
    dataset = args.dataset or (ckpt.get("config") or {}).get("dataset")
    if not dataset:
        raise ValueError(f"{args.checkpoint} does not say which dataset it was trained on; pass --dataset")
    if args.seq_len > model.config.block_size:
        raise ValueError(f"--seq_len={args.seq_len} is longer than the model's context {model.config.block_size}")
    data_dir = dataset_dir(dataset)
    check_tokenizer(ckpt, load_meta(data_dir), f"checkpoint {args.checkpoint}", data_dir)
    tokens = sample_sequences(data_dir, args.n_seqs, args.seq_len, args.split, args.seed, args.domain,
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
# Argument checks: each says what is wrong and what to do

def _check_parts(parts, arch):
    """The part names of a spec, each a preset or a part of this architecture."""
    if not isinstance(parts, str) and not (isinstance(parts, (list, tuple, set, frozenset))
                                           and all(isinstance(p, str) for p in parts)):
        raise TypeError(f"parts={parts!r}: expected a string or a list of strings (part names or presets)")
    names = [p.strip() for p in (parts.split(",") if isinstance(parts, str) else parts) if p.strip()]
    valid = (f"per block {', '.join(BLOCK_PARTS)}; model-level {', '.join(MODEL_PARTS)}; "
             f"presets: {', '.join(PRESETS)}")
    if not names:
        raise ValueError(f"parts={parts!r} names nothing; valid parts: {valid}")
    for name in names:
        if name not in PRESETS and name not in BLOCK_PARTS and name not in MODEL_PARTS:
            raise ValueError(f"unknown part {name!r}; valid parts: {valid}")
        if name == "wpe" and arch != "gpt2":
            raise ValueError(f"part 'wpe' (learned position embeddings) exists only for arch='gpt2'; this "
                             f"{arch} model uses RoPE, which has no weights to inherit")
    return names


def _check_layers(n_layer, layers, ref_n_layer):
    """The reference's blocks to inherit: the first n_layer, or an explicit list of distinct blocks."""
    if layers is None:
        if isinstance(n_layer, bool) or not isinstance(n_layer, (int, np.integer)):
            raise TypeError(f"n_layer={n_layer!r}: expected an integer number of layers to inherit")
        if not 1 <= n_layer <= ref_n_layer:
            raise ValueError(f"n_layer={n_layer}: can inherit between 1 and {ref_n_layer} layers (the reference has "
                             f"{ref_n_layer})")
        return list(range(n_layer))
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
    return layers


def _check_reference(ref, fresh_init):
    if not isinstance(ref, GPT):
        raise TypeError(f"inherit: the reference must be a model.GPT (or a checkpoint path), got {type(ref).__name__}")
    if grow.ramps_active(ref):
        raise ValueError("inherit: the reference is still blending in blocks from a G_random growth; finish the "
                         "ramp first (grow.set_ramp(ref, 1), or train past grow_ramp_steps)")
    if fresh_init not in FRESH_INITS:
        raise ValueError(f"inherit: fresh_init={fresh_init!r} is unknown; use 'model' (GPT(config)'s init, the "
                         f"official GPT-2 code's) or 'torch' (PyTorch's defaults, the official OpenLLaMA code's)")


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
    """A round folder holds this search's run only: reused only on resume, never when it was inherited from an
    older version of the reference (the reference trained on since)."""
    if os.path.isdir(run_dir) and os.listdir(run_dir) and not resume:
        raise FileExistsError(f"{run_dir} is not empty (an earlier search?); pass resume=True (--resume) to reuse "
                              f"finished rounds, or choose another out_dir")
    why = stale_source(run_dir)
    if why:
        raise FileExistsError(f"{run_dir} was inherited from another version of the reference: {why}. Delete "
                              f"it to rerun the round")


if __name__ == "__main__":
    main()
