"""
Evaluation: validation loss per domain, zero-shot tasks, run comparison (speedup at equal loss) and sampling.

    python eval.py loss out/run1 out/run2/ckpt_0002000.pt [--dataset pycorpus] [--tokens 1e6]
    python eval.py tasks out/run1 --tasks hellaswag,piqa --task_dir data/tasks [--limit 500]
    python eval.py export out/run1 out/run1_hf                    # a Hugging Face folder: model and tokenizer
    python eval.py compare out/scratch out/gstack [--target 3.1] [--plot compare.png]
    python eval.py sample out/run1 --prompt "def main(" --num_samples 2 --max_new_tokens 200

loss: mean cross-entropy (nats) on the fixed val batches train.py evaluates on, perplexity, and bits per byte
  (loss / ln 2 * tokens / bytes: independent of the tokenizer, so a byte model compares with a BPE model).
tasks: zero-shot multiple choice as lm-evaluation-harness scores it (tasks.py; the tests check it item by item
  against the harness itself, which runs on an export: lm_eval --model hf --model_args pretrained=out/run1_hf).
compare: Gstack's speedup at equal loss, sp = C_baseline / C_run - 1, in exact FLOPs and in the paper's tokens.
"""

import argparse
import contextlib
import json
import math
import os
import sys

import numpy as np
import torch

import grow
from configurator import ConfigError, check_device, user_error_message
from data.loader import Batcher, DataError, check_tokenizer, dataset_dir, domain_loss, load_meta
from data.prepare import get_tokenizer
from hf import to_hf
from runs import CheckpointError, find_checkpoint, read_evals
from tasks import TASKS, EvalError, check_vocab, evaluate_tasks

REPO_DIR = os.path.dirname(os.path.abspath(__file__))


def default_device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def autocast(device, dtype=None):
    """bf16 (or `dtype`) autocast on a GPU: matmuls in half precision, softmax and losses in fp32; else a no-op."""
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    dtype = dtype or ("bfloat16" if torch.cuda.is_bf16_supported() else "float32")
    return contextlib.nullcontext() if dtype == "float32" else torch.autocast("cuda", dtype=getattr(torch, dtype))


def load_model(path, device="cpu", log=print):
    """A checkpoint file or run folder (its newest good checkpoint) -> (model in eval mode, ckpt, file used)."""
    ckpt, used = find_checkpoint(path, log=log)
    return grow.load_model(ckpt, device).eval(), ckpt, used


def tokenizer_for(ckpt, name=None):
    """The tokenizer a checkpoint was trained with, which it records (`name`, when given, must agree); `name`
    for a checkpoint that records none."""
    recorded = (ckpt.get("tokenizer") or {}).get("kind")
    if recorded and name and name != recorded:
        raise EvalError(f"--tokenizer {name}: the checkpoint was trained with the {recorded!r} tokenizer (it "
                        f"records it); leave --tokenizer out, or pass --tokenizer {recorded}")
    if not (recorded or name):
        raise EvalError("the checkpoint does not record its tokenizer: pass --tokenizer gpt2 or --tokenizer byte")
    try:
        return get_tokenizer(recorded or name)
    except (RuntimeError, ImportError) as e:  # GPT-2 BPE: no tiktoken, or no ranks file offline
        raise EvalError(f"tokenizer {recorded or name!r}: {e}") from e


# -------------------------------------------------------------------------------------------------------------
# Validation loss, perplexity and bits per byte per domain

def eval_iters(tokens, batch_size, block_size, val_tokens=None):
    """Batches of (batch_size, block_size) for a domain: enough for `tokens` predicted tokens, never more than one
    pass over the domain's val split (more would only re-read it); tokens=None: that one pass."""
    one_pass = max(1, val_tokens // (batch_size * block_size)) if val_tokens else None
    if tokens is None:
        return one_pass
    wanted = max(1, math.ceil(tokens / (batch_size * block_size)))
    return min(wanted, one_pass) if one_pass else wanted


def bits_per_byte(loss, tokens, nbytes):
    """loss in nats per token -> bits per byte of text (None without the byte count). The EOT after each document
    has no bytes: its loss is charged to the document's bytes (0.01-0.2% of the tokens of pycorpus)."""
    if not tokens or not nbytes:
        return None
    return loss / math.log(2) * tokens / nbytes


def eval_loss(model, dataset_dir, tokens=None, batch_size=8, block_size=None, ctx=None, progress=False):
    """{domain: {"loss", "ppl", "bpb", "tokens"}} on the val split, over eval_iters(tokens, ...) fixed batches per
    domain (the same for every run and checkpoint, so numbers compare)."""
    from tqdm import tqdm
    meta = load_meta(dataset_dir)
    V = model.config.vocab_size
    check_vocab(V, meta["vocab_size"], f"dataset {dataset_dir} (tokenizer {meta.get('tokenizer')!r})")
    block_size = min(block_size or model.config.block_size, model.config.block_size)
    batcher = Batcher(dataset_dir, block_size, batch_size, device=next(model.parameters()).device, model_vocab_size=V)
    iters = {dom: eval_iters(tokens, batch_size, block_size, len(batcher.data[dom, "val"])) for dom in batcher.domains}
    out = {}
    with tqdm(total=sum(iters.values()), unit="batch", desc="val loss", disable=None if progress else True) as bar:
        for dom in batcher.domains:
            loss = domain_loss(model, batcher, dom, "val", iters[dom], batch_size, ctx=ctx, progress=bar.update)
            counts = meta["domains"][dom]
            out[dom] = {"loss": loss, "ppl": math.exp(loss), "tokens": iters[dom] * batch_size * block_size,
                        "bpb": bits_per_byte(loss, counts.get("val_tokens"), counts.get("val_bytes"))}
    return out


# -------------------------------------------------------------------------------------------------------------
# Hugging Face export

HF_EXPORT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "vocab.json", "merges.txt",
                   "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")  # what to_hf writes


def export_hf(path, out_dir, tokenizer=None, log=print):
    """A checkpoint file or run folder as a Hugging Face folder with the tokenizer the model was trained with, so
    that AutoModelForCausalLM and AutoTokenizer load it offline. out_dir must be new, empty or an earlier export
    (whose files are replaced). Returns (out_dir, tokenizer)."""
    if os.path.isdir(out_dir):
        foreign = sorted(set(os.listdir(out_dir)) - set(HF_EXPORT_FILES))
        if foreign:
            raise EvalError(f"{out_dir} holds files that are not an export's ({', '.join(foreign[:3])}): export "
                            f"into a new or empty folder")
    elif os.path.exists(out_dir):
        raise EvalError(f"{out_dir} exists and is not a folder")
    model, ckpt, used = load_model(path, "cpu", log)
    tok = tokenizer_for(ckpt, tokenizer)
    check_vocab(model.config.vocab_size, tok.n_vocab, f"tokenizer {tok.name!r}")
    os.makedirs(out_dir, exist_ok=True)
    for f in HF_EXPORT_FILES:  # an earlier export's files: none may outlive this one (e.g. a .bin beside .safetensors)
        if os.path.isfile(os.path.join(out_dir, f)):
            os.remove(os.path.join(out_dir, f))
    try:
        to_hf(model, out_dir, tok)
    except ValueError as e:  # a model Hugging Face cannot express (to_hf names the setting)
        raise EvalError(str(e)) from None
    log(f"wrote {out_dir}: {used} as a Hugging Face {model.config.arch} model with the {tok.name!r} tokenizer")
    if not os.path.isfile(os.path.join(out_dir, "model.safetensors")):
        log("note: safetensors is not installed, so the weights are in pytorch_model.bin (transformers reads it too); "
            "pip install safetensors for model.safetensors")
    if os.path.isfile(f"{out_dir}/vocab.json") and not os.path.isfile(f"{out_dir}/tokenizer.json"):
        log("note: tokenizers is not installed, so there is no tokenizer.json (transformers builds the fast tokenizer "
            "from vocab.json and merges.txt); pip install tokenizers to write it")
    return out_dir, tok


# -------------------------------------------------------------------------------------------------------------
# Comparing runs: loss curves from metrics.jsonl (runs.read_evals), matched-compute losses, speedup at equal loss

def curve(evals, x="tokens"):
    """[(x, val_loss_mean)] of a run's evaluation lines, x = "tokens" or "flops" (lines without x skipped)."""
    return [(float(r[x]), float(r["val_loss_mean"])) for r in evals if r.get(x) is not None]


def loss_at(curve, x):
    """Loss at x, linearly interpolated between evaluation points; None outside the evaluated range."""
    if not curve or x < curve[0][0] or x > curve[-1][0]:
        return None
    xs, ls = zip(*curve)
    return float(np.interp(x, xs, ls))


def tokens_to_reach(curve, target):
    """First x (tokens or FLOPs) at which a loss curve [(x, loss)] reaches `target`, interpolated between the two
    evaluations around the crossing (grow.flops_to_loss); None if it never gets that low."""
    if not curve:
        return None
    x = grow.flops_to_loss(*zip(*curve), target)
    return None if math.isinf(x) else x


def speedup(baseline_curve, run_curve, target):
    """Gstack's speedup at equal loss (grow.speedup) between two curves of the same cost (FLOPs, or tokens);
    None when either never reaches the target."""
    cb, cr = tokens_to_reach(baseline_curve, target), tokens_to_reach(run_curve, target)
    if cb is None or cr is None or cr <= 0:
        return None
    return grow.speedup(cb, cr)


def paper_curve(tokens_curve, events):
    """A run's [(tokens, loss)] in the Gstack paper's convention (grow.paper_tokens): tokens before a growth count
    1/g each, g the growth factor of its grow event (several growths: the product of the later ones). Unchanged for
    a run that never grew."""
    grows = [e for e in events if e.get("event") == "grow"]
    if not grows or not tokens_curve:
        return tokens_curve
    xs = grow.paper_tokens([x for x, _ in tokens_curve], [e["tokens"] for e in grows],
                           [grow.growth_factor(e["before"], e["after"]) for e in grows])
    return [(float(x), loss) for x, (_, loss) in zip(xs, tokens_curve)]


def _g(x, spec=".4g"):
    return "-" if x is None else format(x, spec)


def compare_runs(run_dirs, target=None, plot=None, log=print):
    """Print and return a comparison of runs against the first (the baseline, e.g. scratch): val loss at matched
    tokens and FLOPs, tokens and FLOPs to reach `target` (default: the baseline's final val loss), speedups."""
    names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    if len(set(names)) < len(names):
        names = [os.path.normpath(d) for d in run_dirs]
    try:
        runs = [(name, *read_evals(d, log)) for name, d in zip(names, run_dirs)]
    except (FileNotFoundError, ValueError) as e:
        raise EvalError(str(e)) from None
    base_evals = runs[0][1]
    target = float(base_evals[-1]["val_loss_mean"]) if target is None else float(target)
    w = max(len(n) for n in names) + 2
    summary = {"target": target, "baseline": names[0], "runs": {}}
    for x in ("tokens", "flops"):
        ends = [curve(ev, x)[-1][0] for _, ev, _ in runs if curve(ev, x)]
        if len(ends) < len(runs):
            log(f"(some runs log no {x}; no comparison at matched {x})")
            continue
        grid = [min(ends) * f for f in (0.25, 0.5, 0.75, 1.0)]
        log(f"\nval loss at matched {x}:\n{'run':<{w}}" + "".join(f"{g:>12.3g}" for g in grid))
        for name, ev, _ in runs:
            losses = [loss_at(curve(ev, x), g) for g in grid]
            summary["runs"].setdefault(name, {})[f"loss_at_{x}"] = dict(zip(grid, losses))
            log(f"{name:<{w}}" + "".join(f"{_g(v, '.4f'):>12}" for v in losses))
    log(f"\nto reach val loss {target:.4f} (speedup = baseline / run - 1, at equal loss; 'sp. FLOPs' counts exact "
        f"FLOPs, 'sp. paper' the Gstack paper's convention: a small-model token = 1/g of a large-model token):")
    log(f"{'run':<{w}}{'final loss':>11}{'tokens':>12}{'FLOPs':>12}{'sp. FLOPs':>11}{'sp. paper':>11}{'sp. tokens':>11}")
    base_t, base_f = curve(base_evals, "tokens"), curve(base_evals, "flops")
    for name, ev, events in runs:
        t, f = curve(ev, "tokens"), curve(ev, "flops")
        row = {"final_loss": float(ev[-1]["val_loss_mean"]), "tokens_to_target": tokens_to_reach(t, target),
               "flops_to_target": tokens_to_reach(f, target) if f else None,
               "speedup": speedup(base_f, f, target) if f and base_f else None,
               "speedup_paper": speedup(base_t, paper_curve(t, events), target),
               "token_speedup": speedup(base_t, t, target)}
        summary["runs"].setdefault(name, {}).update(row)
        log(f"{name:<{w}}{row['final_loss']:>11.4f}{_g(row['tokens_to_target'], '.4g'):>12}"
            f"{_g(row['flops_to_target'], '.4g'):>12}" +
            "".join(f"{'-' if row[k] is None else f'{row[k]:+.1%}':>11}"
                    for k in ("speedup", "speedup_paper", "token_speedup")))
    if plot:
        plot_curves(plot, {name: [(ev, events)] for name, ev, events in runs}, target=target, log_x=True)
        log(f"\nwrote {plot}")
    return summary


def plot_curves(path, series, panels=(("tokens", "tokens"), ("training FLOPs", "flops")), target=None, title=None,
                log_x=False):
    """Val loss (mean over domains) of runs in one PNG, a panel per x axis. series: {name: [(evals, events) per
    seed]}, one colour per name, the first seed solid, the others dashed; panels: [(x label, x)], x a metrics key or
    a function (evals, events) -> [x per evaluation]; target: a loss drawn dashed; a dotted vertical line marks a
    growth (first seed). The y axis is cut at the losses of the runs' second half, so the ends can be told apart."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EvalError("plotting needs matplotlib: pip install matplotlib (the numbers do not)") from None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    evals = [ev for rs in series.values() for ev, _ in rs]
    low = min(float(e["val_loss_mean"]) for ev in evals for e in ev)
    high = max(float(e["val_loss_mean"]) for ev in evals for e in ev[len(ev) // 2:])
    for ax, (label, x) in zip(axes[0], panels):
        for i, (name, rs) in enumerate(series.items()):
            for j, (ev, events) in enumerate(rs):
                xs = [e.get(x) for e in ev] if isinstance(x, str) else list(x(ev, events))
                pts = [(a, float(e["val_loss_mean"])) for a, e in zip(xs, ev) if a is not None and (a > 0 or not log_x)]
                if pts:
                    ax.plot(*zip(*pts), color=f"C{i}", lw=1.2, alpha=0.9 if j == 0 else 0.55, ls="-" if j == 0 else "--",
                            marker="." if log_x else None, label=name if j == 0 else None)
                for g in events if j == 0 and isinstance(x, str) else ():  # the first seed's growth, if any
                    if g.get("event") == "grow" and g.get(x):
                        ax.axvline(g[x], color=f"C{i}", ls=":", lw=0.8, alpha=0.7)
        if target is not None:
            ax.axhline(target, color="gray", ls="--", lw=0.8)
        ax.set_ylim(low - 0.05, high + 0.5 * (high - low) + 0.1)
        ax.set(xscale="log" if log_x else "linear", xlabel=label, ylabel="val loss, mean over domains (nats)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sample(model, tok, prompt="", num_samples=1, max_new_tokens=200, temperature=0.8, top_k=200, seed=1337, ctx=None):
    """num_samples continuations of prompt (decoded with the prompt); an empty prompt starts at end-of-text."""
    torch.manual_seed(seed)
    ids = tok.encode(prompt) or [tok.eot]
    x = torch.tensor(ids, dtype=torch.long, device=next(model.parameters()).device)[None].repeat(num_samples, 1)  # (N, T)
    with ctx or contextlib.nullcontext():
        y = model.generate(x, max_new_tokens, temperature=temperature, top_k=top_k)
    # a padded vocab has ids the tokenizer cannot decode; an undertrained model may still sample them
    return [tok.decode([i for i in row.tolist() if i < tok.n_vocab]) for row in y]


# -------------------------------------------------------------------------------------------------------------
# Command line

def _write_json(path, obj):
    if path:
        with open(path, "w") as f:
            json.dump(obj, f, indent=2)
        print(f"wrote {path}")


def cmd_loss(a):
    device = a.device or default_device()
    results = {}
    for path in a.ckpts:
        model, ckpt, used = load_model(path, device)
        name = a.dataset or (ckpt.get("config") or {}).get("dataset")
        if not name:
            raise EvalError(f"{used} does not say which dataset it was trained on: pass --dataset")
        data = dataset_dir(name)
        check_tokenizer(ckpt, load_meta(data), f"checkpoint {used}", data)
        res = eval_loss(model, data, None if a.tokens is None else int(a.tokens), a.batch_size, a.block_size,
                        autocast(device, a.dtype), progress=True)
        results[used] = res
        print(f"\n{used}  (iter {ckpt.get('iter_num', '?')}, tokens seen {ckpt.get('tokens_seen', '?')}, {data})")
        print(f"{'domain':>12} {'loss':>8} {'ppl':>10} {'bits/byte':>10} {'tokens':>10}")
        for dom, r in res.items():
            print(f"{dom:>12} {r['loss']:>8.4f} {r['ppl']:>10.3f} {_g(r['bpb'], '.4f'):>10} {r['tokens']:>10,}")
        print(f"{'mean':>12} {np.mean([r['loss'] for r in res.values()]):>8.4f}")
    _write_json(a.json, results)


def cmd_tasks(a):
    device = a.device or default_device()
    model, ckpt, used = load_model(a.ckpt, device)
    tok = tokenizer_for(ckpt, a.tokenizer)
    print(f"{used}: zero-shot tasks from {a.task_dir} (tokenizer {tok.name}, block_size {model.config.block_size})")
    names = list(TASKS) if a.tasks in ("", "all") else [t.strip() for t in a.tasks.split(",") if t.strip()]
    _write_json(a.json, evaluate_tasks(model, tok, a.task_dir, names, a.limit, a.batch_size,
                                       autocast(device, a.dtype)))


def cmd_sample(a):
    device = a.device or default_device()
    model, ckpt, _ = load_model(a.ckpt, device)
    tok, prompt = tokenizer_for(ckpt, a.tokenizer), a.prompt
    if prompt.startswith("FILE:"):
        with open(prompt[5:], encoding="utf-8") as f:
            prompt = f.read()
    for text in sample(model, tok, prompt, a.num_samples, a.max_new_tokens, a.temperature, a.top_k, a.seed,
                       autocast(device, a.dtype)):
        print(text + "\n" + "-" * 80)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    dev = argparse.ArgumentParser(add_help=False)
    dev.add_argument("--device", default=None, help="cuda | cpu (default: cuda when there is one)")
    dev.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                     help="autocast dtype on a GPU (default bfloat16 where supported)")
    task_dir = os.path.join(REPO_DIR, "data", "tasks")

    s = sub.add_parser("loss", parents=[dev], help="per-domain val loss, perplexity, bits per byte")
    s.add_argument("ckpts", nargs="+", help="checkpoint files or run folders")
    s.add_argument("--dataset", default=None, help="dataset name or folder (default: the run's own)")
    s.add_argument("--tokens", type=float, default=None,
                   help="tokens evaluated per domain (default: one pass over each domain's val split; never more)")
    s.add_argument("--batch_size", type=int, default=8, help="sequences per forward (default: %(default)s)")
    s.add_argument("--block_size", type=int, default=None, help="sequence length (default: the model's context)")
    s.add_argument("--json", default=None, help="also write the results to this JSON file")
    s.set_defaults(fn=cmd_loss)

    s = sub.add_parser("tasks", parents=[dev], help="zero-shot tasks scored as lm-evaluation-harness does")
    s.add_argument("ckpt", help="checkpoint file or run folder")
    s.add_argument("--tasks", default="all", help=f"comma-separated, from: {', '.join(TASKS)}")
    s.add_argument("--limit", type=int, default=None, help="first N examples of each task")
    s.add_argument("--batch_size", type=int, default=16, help="(context, choice) pairs per forward")
    s.add_argument("--json", default=None)
    s.add_argument("--task_dir", default=task_dir, help="folder of the task JSONL files")
    s.add_argument("--tokenizer", default=None, choices=["gpt2", "byte"], help="default: the checkpoint's")
    s.set_defaults(fn=cmd_tasks)

    s = sub.add_parser("export", help="write a checkpoint as a Hugging Face folder (model and tokenizer)")
    s.add_argument("ckpt", help="checkpoint file or run folder")
    s.add_argument("out_dir", help="the folder to write (new, empty or an earlier export)")
    s.add_argument("--tokenizer", default=None, choices=["gpt2", "byte"], help="default: the checkpoint's")
    s.set_defaults(fn=lambda a: export_hf(a.ckpt, a.out_dir, a.tokenizer))

    s = sub.add_parser("compare", help="loss curves of runs, speedup at equal loss against the first run")
    s.add_argument("runs", nargs="+", help="run folders (out_dir); the first is the baseline")
    s.add_argument("--target", type=float, default=None, help="target val loss (default: the first run's final)")
    s.add_argument("--plot", default=None, help="write loss-vs-tokens and loss-vs-FLOPs to this PNG")
    s.set_defaults(fn=lambda a: compare_runs(a.runs, a.target, a.plot))

    s = sub.add_parser("sample", parents=[dev], help="sample text from a checkpoint")
    s.add_argument("ckpt")
    s.add_argument("--prompt", default="", help="text, or FILE:path")
    s.add_argument("--num_samples", type=int, default=1)
    s.add_argument("--max_new_tokens", type=int, default=200)
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--top_k", type=int, default=200)
    s.add_argument("--seed", type=int, default=1337)
    s.add_argument("--tokenizer", default=None, choices=["gpt2", "byte"])
    s.set_defaults(fn=cmd_sample)

    a = p.parse_args(argv)
    try:
        if getattr(a, "device", None):
            check_device(a.device)
        a.fn(a)
    except (EvalError, CheckpointError, DataError, ConfigError, OSError) as e:
        # ours, or a full, read-only or foreign disk (exports, --json, plots): one line; any other OSError is a bug
        msg = user_error_message(e, (EvalError, CheckpointError, DataError, ConfigError), then="run it again")
        if msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
