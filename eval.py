"""
nanogrow evaluation: validation loss per domain, zero-shot tasks, run comparison (speedup) and sampling.

    python eval.py loss out/run1 out/run2/ckpt_0002000.pt --dataset data/pycorpus [--tokens 1e6]
    python eval.py tasks out/run1 --tasks hellaswag,piqa --task_dir data/tasks [--limit 500]
    python eval.py harness out/run1 --tasks hellaswag,arc_easy --task_dir data/tasks   # lm-evaluation-harness itself
    python eval.py export out/run1 out/run1_hf                       # a Hugging Face folder: model and tokenizer
    python eval.py compare out/scratch out/gstack [--target 3.1] [--plot compare.png]
    python eval.py sample out/run1 --prompt "def main(" --num_samples 2 --max_new_tokens 200
    python eval.py download --task_dir data/tasks                    # needs `pip install datasets` and a network

loss: mean cross-entropy (nats) on fixed validation batches of each domain (data.loader.Batcher.get_domain, the
  batches train.py evaluates on), perplexity exp(loss), and bits per byte = loss / ln 2 * val_tokens / val_bytes,
  which does not depend on the tokenizer and so compares a byte model with a BPE model.
tasks: zero-shot multiple choice scored as lm-evaluation-harness does (see TASKS below for the JSONL files and
  fields expected in --task_dir). Each choice is a (context, continuation) pair scored by the summed log-probability
  of the continuation's tokens: acc = argmax of the sums, acc_norm = argmax of the sums divided by each choice's
  length in characters. LAMBADA: accuracy of greedily decoding every token of the last word, and the perplexity
  of the last word, exp(-mean log p(word)).
  Task files in --task_dir (default data/tasks), JSONL in the Hugging Face datasets' own row format:
    hellaswag.jsonl      Rowan/hellaswag validation: activity_label, ctx_a, ctx_b (or ctx), endings, label
    piqa.jsonl           piqa validation: goal, sol1, sol2, label
    arc_easy.jsonl       allenai/ai2_arc ARC-Easy test: question, choices {text, label}, answerKey
    arc_challenge.jsonl  allenai/ai2_arc ARC-Challenge test: same fields
    sciq.jsonl           allenai/sciq test: question, support, correct_answer, distractor1..3
    winogrande.jsonl     allenai/winogrande winogrande_xl validation: sentence (one '_'), option1, option2, answer
    lambada.jsonl        EleutherAI/lambada_openai test: text
harness: the same tasks through lm-evaluation-harness itself (pip install 'lm_eval[hf]'; checked with lm-eval 0.4.13
  and transformers 5.24), offline: the checkpoint is exported with its tokenizer to a temporary folder, and the
  harness's own task definitions read the JSONL files of --task_dir instead of the hub's datasets (HF_HUB_OFFLINE=1,
  HF_DATASETS_OFFLINE=1). Its acc and acc_norm are those of `tasks` (tests/test_hf.py).
export: a checkpoint as a Hugging Face folder: config.json, model.safetensors and the tokenizer the model was trained
  with (its dataset's meta.json, or --tokenizer): GPT-2 BPE as vocab.json, merges.txt and tokenizer.json built
  offline from the ranks file; the byte tokenizer as a byte-level BPE without merges (byte b = id b, id 0 =
  <|endoftext|>). AutoModelForCausalLM.from_pretrained(folder) and AutoTokenizer.from_pretrained(folder) load it.
compare: speedup at equal loss as the Gstack paper defines it, sp = FLOPs_baseline / FLOPs_run - 1, with the
  FLOPs each run needs to reach a target validation loss interpolated between evaluation points.

Nothing runs at import time; train.py validates with data.loader.domain_losses, not with this file.
"""

import argparse
import contextlib
import json
import math
import os
import re
import sys
import tempfile
from collections import namedtuple

import numpy as np
import torch
import torch.nn.functional as F

import grow
from configurator import ConfigError, check_device, user_error_message
from data.loader import Batcher, DataError, check_tokenizer, domain_loss, load_meta
from data.prepare import get_tokenizer
from model import to_hf
from runs import CheckpointError, find_checkpoint, model_from_checkpoint, read_metrics

REPO_DIR = os.path.dirname(os.path.abspath(__file__))
GPT2_VOCAB = 50257


class EvalError(ValueError):
    pass


# -------------------------------------------------------------------------------------------------------------
# Models, devices, tokenizers

def default_device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device):
    if torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported():
        return "bfloat16"
    return "float32"


def autocast(device, dtype):
    """bf16/fp16 autocast on a GPU (matmuls in half precision, softmax and losses in fp32); a no-op otherwise."""
    if torch.device(device).type != "cuda" or dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype={"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype])


def model_device(model):
    t = next(model.parameters(), None)
    if t is None:
        t = next(model.buffers(), None)
    return t.device if t is not None else torch.device("cpu")


def load_model(path, device="cpu", log=print):
    """A checkpoint file or run folder (its newest good checkpoint) -> (model in eval mode, ckpt, file used)."""
    ckpt, used = find_checkpoint(path, log=log)
    model, _ = model_from_checkpoint(ckpt, device)
    model.eval()
    return model, ckpt, used


def check_vocab(model_vocab, tok_vocab, what):
    """A model with fewer embedding rows than the tokenizer has ids was trained with another tokenizer: its scores
    would be meaningless (or its embedding would index out of range). A larger, padded vocab is fine."""
    if model_vocab < tok_vocab:
        raise EvalError(f"{what} has {tok_vocab} token ids but the model's vocab_size is {model_vocab}: the "
                        f"checkpoint was trained with another tokenizer; evaluate it with its own tokenizer "
                        f"(--tokenizer byte|gpt2) or dataset")


def _dataset_dir(name):
    for d in (name, os.path.join(REPO_DIR, "data", name)):
        if name and os.path.isfile(os.path.join(d, "meta.json")):
            return d
    return None


def _tokenizer(name):
    try:
        return get_tokenizer(name)
    except (RuntimeError, ImportError) as e:  # GPT-2 BPE: no tiktoken, or no ranks file offline
        raise EvalError(f"tokenizer {name!r}: {e}") from e


def tokenizer_for(ckpt, name=None, log=print):
    """The tokenizer to evaluate a checkpoint with: the one it records (a different `name` is refused: the model's
    ids would be read as another tokenizer's); else `name` when given; else the one its training dataset was made
    with (ckpt["config"]["dataset"] -> meta.json); else a guess from the vocab size (>= 50257: GPT-2 BPE)."""
    recorded = (ckpt.get("tokenizer") or {}).get("kind")
    if recorded:
        if name and name != recorded:
            raise EvalError(f"--tokenizer {name}: the checkpoint was trained with the {recorded!r} tokenizer (it "
                            f"records it); leave --tokenizer out, or pass --tokenizer {recorded}")
        return _tokenizer(recorded)
    if name:
        return _tokenizer(name)
    ds = _dataset_dir(str((ckpt.get("config") or {}).get("dataset") or ""))
    if ds is not None:
        return _tokenizer(load_meta(ds).get("tokenizer", "gpt2"))
    guess = "gpt2" if ckpt["model_args"]["vocab_size"] >= GPT2_VOCAB else "byte"
    log(f"note: the checkpoint does not name a dataset found here; assuming the {guess!r} tokenizer from its "
        f"vocab_size ({ckpt['model_args']['vocab_size']}); pass --tokenizer to choose")
    return _tokenizer(guess)


# -------------------------------------------------------------------------------------------------------------
# Validation loss, perplexity and bits per byte per domain

def eval_iters(tokens, batch_size, block_size, val_tokens=None):
    """Number of (batch_size, block_size) batches for a domain: as many as cover a budget of `tokens` predicted
    tokens, but never more than the domain's val split holds (one pass: more batches would only re-read it);
    tokens=None: that one pass."""
    one_pass = max(1, val_tokens // (batch_size * block_size)) if val_tokens else None
    if tokens is None:
        return one_pass
    wanted = max(1, math.ceil(tokens / (batch_size * block_size)))
    return min(wanted, one_pass) if one_pass else wanted


def bits_per_byte(loss, tokens, nbytes):
    """loss in nats per token -> bits per byte of text: / ln 2 for bits, * tokens / bytes for per byte.
    None when the dataset does not record its byte count. `tokens` includes the EOT after each document, which
    has no bytes of text: its loss is charged to the document's bytes (0.01-0.2% of the tokens of pycorpus)."""
    if not tokens or not nbytes:
        return None
    return loss / math.log(2) * tokens / nbytes


def eval_loss(model, dataset_dir, tokens=None, batch_size=8, block_size=None, ctx=None, progress=False):
    """{domain: {"loss", "ppl", "bpb", "tokens"}} on the val split, over eval_iters(tokens, ...) fixed batches
    per domain (the same batches for every run and checkpoint, so numbers compare): by default one pass over
    each domain's val split, `tokens` per domain when fewer. progress=True shows a bar over all batches."""
    from tqdm import tqdm
    meta = load_meta(dataset_dir)
    V = model.config.vocab_size
    check_vocab(V, meta["vocab_size"], f"dataset {dataset_dir} (tokenizer {meta.get('tokenizer')!r})")
    block_size = min(block_size or model.config.block_size, model.config.block_size)
    batcher = Batcher(dataset_dir, block_size, batch_size, device=model_device(model), model_vocab_size=V)
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
# Zero-shot tasks, in lm-evaluation-harness's definitions. A task file is JSONL, one example per line, in the
# Hugging Face dataset's own format (what `download_tasks` writes). Each example becomes a dict
#   {"pairs": [(context, continuation), ...], "gold": index of the right pair, "lens": [len(choice), ...] or None}
# where continuation = " " + choice (the harness's target delimiter) and lens, in characters, is acc_norm's
# divisor (None: no acc_norm, e.g. Winogrande whose choices sit in the context).

def _mc(context, choices, gold):
    return {"pairs": [(context, " " + c) for c in choices], "gold": int(gold), "lens": [len(c) for c in choices]}


def hellaswag_preprocess(text):
    # HellaSwag's WikiHow half carries "[title]", "[header]", "[step]", ... markers; the harness drops them
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag_doc(d):
    # Rowan/hellaswag rows carry ctx_a and ctx_b (ctx = ctx_a + " " + ctx_b); the harness capitalises ctx_b
    ctx = d["ctx_a"] + " " + d["ctx_b"].capitalize() if "ctx_a" in d else d["ctx"]
    query = d["activity_label"] + ": " + ctx if d.get("activity_label") else ctx
    return _mc(hellaswag_preprocess(query), [hellaswag_preprocess(e) for e in d["endings"]], d["label"])


def piqa_doc(d):
    return _mc(f"Question: {d['goal']}\nAnswer:", [d["sol1"], d["sol2"]], d["label"])


def arc_doc(d):
    q = d["question"]
    if isinstance(q, dict):  # the original AI2 release nests the choices in the question
        texts, labels, q = [c["text"] for c in q["choices"]], [c["label"] for c in q["choices"]], q["stem"]
    else:
        texts, labels = d["choices"]["text"], d["choices"]["label"]
    if d["answerKey"] not in labels:
        raise ValueError(f"answerKey {d['answerKey']!r} is not among the choice labels {labels}")
    return _mc(f"Question: {q}\nAnswer:", texts, labels.index(d["answerKey"]))


def sciq_doc(d):
    choices = [d["distractor1"], d["distractor2"], d["distractor3"], d["correct_answer"]]
    return _mc(f"{d['support'].lstrip()}\nQuestion: {d['question']}\nAnswer:", choices, 3)


def winogrande_doc(d):
    # partial scoring: the blank is filled with each option in the context, and the same suffix after the
    # blank is scored given either context (the harness's "partial evaluation")
    s = d["sentence"]
    if "_" not in s:
        raise ValueError("the sentence has no '_' blank")
    i = s.index("_")
    answer = {"1": 0, "2": 1}.get(str(d["answer"]))
    if answer is None:
        raise ValueError(f"answer {d['answer']!r} is not '1' or '2'")
    cont = " " + s[i + 1:].strip()
    return {"pairs": [(s[:i] + d["option1"], cont), (s[:i] + d["option2"], cont)], "gold": answer, "lens": None}


def lambada_doc(d):
    words = d["text"].split(" ")
    return {"pairs": [(" ".join(words[:-1]), " " + words[-1])], "gold": 0, "lens": None}


# kind: "mc" (argmax over pairs) or "lastword" (one pair: greedy-match accuracy and perplexity)
Task = namedtuple("Task", "file build kind fields hf")
TASKS = {
    "hellaswag": Task("hellaswag.jsonl", hellaswag_doc, "mc",
                      "activity_label, ctx_a, ctx_b (or ctx), endings [4 strings], label (0-3, int or str)",
                      ("Rowan/hellaswag", None, "validation")),
    "piqa": Task("piqa.jsonl", piqa_doc, "mc", "goal, sol1, sol2, label (0 or 1)",
                 ("baber/piqa", None, "validation")),
    "arc_easy": Task("arc_easy.jsonl", arc_doc, "mc",
                     "question, choices {text: [...], label: [...]}, answerKey (one of the labels)",
                     ("allenai/ai2_arc", "ARC-Easy", "test")),
    "arc_challenge": Task("arc_challenge.jsonl", arc_doc, "mc",
                          "question, choices {text: [...], label: [...]}, answerKey (one of the labels)",
                          ("allenai/ai2_arc", "ARC-Challenge", "test")),
    "sciq": Task("sciq.jsonl", sciq_doc, "mc",
                 "question, support, correct_answer, distractor1, distractor2, distractor3",
                 ("allenai/sciq", None, "test")),
    "winogrande": Task("winogrande.jsonl", winogrande_doc, "mc",
                       "sentence (with one '_'), option1, option2, answer ('1' or '2')",
                       ("allenai/winogrande", "winogrande_xl", "validation")),
    "lambada": Task("lambada.jsonl", lambada_doc, "lastword", "text (the last space-separated word is the target)",
                    ("EleutherAI/lambada_openai", "default", "test")),
}


def read_jsonl(path):
    """[(line number, dict)] of a JSONL file; a bad line raises EvalError naming the file and line."""
    docs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as e:
                raise EvalError(f"{path}:{n}: not valid JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(doc, dict):
                raise EvalError(f"{path}:{n}: expected a JSON object, got {type(doc).__name__}")
            docs.append((n, doc))
    return docs


def load_task(task_dir, name, limit=None):
    """The examples of one task (see TASKS for file names and fields), the first `limit` when given."""
    if name not in TASKS:
        raise EvalError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    task = TASKS[name]
    path = os.path.join(task_dir, task.file)
    if not os.path.isfile(path):
        raise EvalError(f"task file {path} not found: task {name!r} reads {task.file} (JSONL, one example a line, "
                        f"fields: {task.fields}) from --task_dir; `python eval.py download --task_dir {task_dir}` "
                        f"writes it (needs `pip install datasets` and a network)")
    examples = []
    for n, doc in read_jsonl(path)[:limit]:
        try:
            ex = task.build(doc)
        except KeyError as e:
            raise EvalError(f"{path}:{n}: missing field {e}; a {name} example has: {task.fields}") from None
        except (ValueError, TypeError, AttributeError, IndexError) as e:
            raise EvalError(f"{path}:{n}: cannot read this {name} example ({e}); expected: {task.fields}") from None
        if not 0 <= ex["gold"] < len(ex["pairs"]):
            raise EvalError(f"{path}:{n}: label {ex['gold']} is out of range for {len(ex['pairs'])} choices")
        examples.append(ex)
    if not examples:
        raise EvalError(f"{path} holds no examples")
    return examples


def encode_pair(tok, context, continuation):
    """(context ids, continuation ids) as the harness makes them: trailing spaces of the context move to the
    continuation, and the continuation's ids are those of the whole text after the context's (so a BPE merge
    across the boundary is tokenized as the model saw such text). An empty context is the end-of-text token."""
    if context == "":
        ctx, cont = [tok.eot], tok.encode(continuation)
    else:
        n = len(context) - len(context.rstrip())
        if n:
            context, continuation = context[:-n], context[-n:] + continuation
        ctx = tok.encode(context)
        cont = tok.encode(context + continuation)[len(ctx):]
        ctx = ctx or [tok.eot]  # an all-space context: something must predict the first continuation token
    if not cont:
        raise EvalError(f"continuation {continuation!r} tokenizes to nothing")
    return ctx, cont


@torch.no_grad()
def score_requests(model, requests, batch_size=16, ctx=None, log=print):
    """Summed log-probability of each continuation given its context, and whether greedy decoding would have
    produced the continuation exactly: [(logprob, is_greedy)] for requests [(context ids, continuation ids)].

    A sequence is context + continuation cut from the left to block_size + 1 tokens; its first block_size tokens
    are the input. Sequences are right-padded to a common length: attention is causal and positions count from
    the left, so padding after a sequence does not change any logit of it. Longest first, so a batch pads little.
    A continuation longer than block_size (a small-context model) has only its last block_size tokens scored."""
    T = model.config.block_size
    device = model_device(model)
    ctx = ctx or contextlib.nullcontext()
    was_training = model.training
    model.eval()
    order = sorted(range(len(requests)), key=lambda i: -(len(requests[i][0]) + len(requests[i][1])))
    out = [None] * len(requests)
    too_long = sum(len(k) > T for _, k in requests)
    if too_long:
        log(f"note: {too_long} continuation(s) are longer than block_size={T}; only their last {T} tokens are scored")
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        seqs, ncont = [], []
        for i in idx:
            c, k = requests[i]
            seqs.append((list(c) + list(k))[-(T + 1):])
            ncont.append(min(len(k), T))
        B, L, Lc = len(idx), max(len(q) - 1 for q in seqs), max(ncont)
        x = torch.zeros(B, L, dtype=torch.long)        # (B, L) inputs, 0-padded on the right
        pos = torch.zeros(B, Lc, dtype=torch.long)     # (B, Lc) input positions whose logits predict the continuation
        tgt = torch.zeros(B, Lc, dtype=torch.long)     # (B, Lc) the continuation's tokens
        mask = torch.zeros(B, Lc, dtype=torch.bool)    # (B, Lc) real continuation tokens (not padding)
        for b, (q, m) in enumerate(zip(seqs, ncont)):
            n_in = len(q) - 1
            x[b, :n_in] = torch.tensor(q[:-1])
            pos[b, :m] = torch.arange(n_in - m, n_in)  # the logits at position p predict token q[p + 1]
            tgt[b, :m] = torch.tensor(q[-m:])
            mask[b, :m] = True
        x, pos, tgt, mask = x.to(device), pos.to(device), tgt.to(device), mask.to(device)
        with ctx:
            logits, _ = model(x)                                            # (B, L, V)
        sel = logits[torch.arange(B, device=device)[:, None], pos]          # (B, Lc, V)
        if sel.dtype in (torch.float16, torch.bfloat16):
            sel = sel.float()
        logp = F.log_softmax(sel, dim=-1)
        tok_lp = logp.gather(-1, tgt[..., None]).squeeze(-1).masked_fill(~mask, 0.0)  # (B, Lc)
        greedy = ((logp.argmax(-1) == tgt) | ~mask).all(-1)                            # (B,)
        for i, ll, g in zip(idx, tok_lp.double().sum(-1).tolist(), greedy.tolist()):  # one device sync a batch
            out[i] = (ll, g)
    model.train(was_training)
    return out


def example_scores(model, tok, examples, batch_size=16, ctx=None, log=print):
    """[[(logprob, is_greedy) for each pair] for each example], all pairs of all examples batched together."""
    reqs = [encode_pair(tok, c, k) for ex in examples for c, k in ex["pairs"]]
    flat = score_requests(model, reqs, batch_size, ctx, log)
    out, i = [], 0
    for ex in examples:
        out.append(flat[i:i + len(ex["pairs"])])
        i += len(ex["pairs"])
    return out


def task_metrics(examples, scores, kind="mc"):
    """acc (and acc_norm when the examples have choice lengths) for "mc"; acc and ppl for "lastword"."""
    if kind == "lastword":
        lls = np.array([s[0][0] for s in scores])
        return {"acc": float(np.mean([s[0][1] for s in scores])), "ppl": float(np.exp(-lls.mean())),
                "n": len(examples)}
    out = {"acc": float(np.mean([np.argmax([ll for ll, _ in s]) == ex["gold"] for ex, s in zip(examples, scores)]))}
    if all(ex["lens"] is not None for ex in examples):
        out["acc_norm"] = float(np.mean([np.argmax(np.array([ll for ll, _ in s]) / np.array(ex["lens"], float))
                                         == ex["gold"] for ex, s in zip(examples, scores)]))
    out["n"] = len(examples)
    return out


def evaluate_tasks(model, tok, task_dir, names, limit=None, batch_size=16, ctx=None, log=print):
    """{task: metrics} for the named tasks read from task_dir."""
    check_vocab(model.config.vocab_size, tok.n_vocab, f"tokenizer {tok.name!r}")
    results = {}
    for name in names:
        examples = load_task(task_dir, name, limit)
        results[name] = task_metrics(examples, example_scores(model, tok, examples, batch_size, ctx, log),
                                     TASKS[name].kind)
        log(f"{name:>14}: " + "  ".join(f"{k} {v:.4f}" if k != "n" else f"n {v}" for k, v in results[name].items()))
    return results


def download_tasks(task_dir, names=None, log=print):
    """Write each task's evaluation split as task_dir/<file>.jsonl from the Hugging Face hub (the datasets the
    harness uses). Needs `datasets` and a network."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise EvalError("download_tasks needs Hugging Face datasets and a network: pip install datasets; or put the "
                        "JSONL files in place by hand (file names and fields: TASKS in eval.py)") from None
    os.makedirs(task_dir, exist_ok=True)
    for name in names or list(TASKS):
        if name not in TASKS:
            raise EvalError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
        hub, config, split = TASKS[name].hf
        try:
            ds = load_dataset(hub, config, split=split)
        except Exception as e:
            raise EvalError(f"could not download {name} ({hub} {config or ''} {split}): {type(e).__name__}: {e} "
                            f"(no network?)") from e
        path = os.path.join(task_dir, TASKS[name].file)
        with open(path + ".part", "w", encoding="utf-8") as f:
            for row in ds:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(path + ".part", path)
        log(f"wrote {path} ({len(ds)} examples)")


def export_hf(path, out_dir, tokenizer=None, log=print):
    """A checkpoint file or run folder as a complete Hugging Face folder: config.json, model.safetensors and the
    tokenizer the model was trained with (tokenizer_for: its dataset's, or `tokenizer` = "gpt2" | "byte"), so that
    AutoModelForCausalLM and AutoTokenizer load it offline. out_dir must be new, empty or an earlier export (whose
    files are replaced). Returns (out_dir, tokenizer)."""
    if os.path.isdir(out_dir):
        foreign = sorted(set(os.listdir(out_dir)) - set(HF_EXPORT_FILES))
        if foreign:
            raise EvalError(f"{out_dir} holds files that are not an export's ({', '.join(foreign[:3])}): export "
                            f"into a new or empty folder")
    elif os.path.exists(out_dir):
        raise EvalError(f"{out_dir} exists and is not a folder")
    model, ckpt, used = load_model(path, "cpu", log)
    tok = tokenizer_for(ckpt, tokenizer, log)
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
    return out_dir, tok


# what to_hf and the tokenizers' save_pretrained write (data/prepare.py)
HF_EXPORT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "vocab.json", "merges.txt",
                   "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# our task name -> the harness's own task config (lambada: lambada_openai), relative to lm_eval/tasks/ (checked
# with lm-eval 0.4.13)
HARNESS_YAML = {"hellaswag": "hellaswag/hellaswag.yaml", "piqa": "piqa/piqa.yaml", "arc_easy": "arc/arc_easy.yaml",
                "arc_challenge": "arc/arc_challenge.yaml", "sciq": "sciq/sciq.yaml",
                "winogrande": "winogrande/default.yaml", "lambada": "lambada/lambada_openai.yaml"}


@contextlib.contextmanager
def hf_offline():
    """Hugging Face libraries offline for the duration: nothing is asked of the hub (a missing file is an error
    at once, not a retry against an unreachable server). Environment and already imported modules alike."""
    keys = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    env = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    patched = []
    for mod, attrs in (("huggingface_hub.constants", ("HF_HUB_OFFLINE",)),
                       ("datasets.config", ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))):
        m = sys.modules.get(mod)
        for attr in attrs:
            if m is not None and hasattr(m, attr):
                patched.append((m, attr, getattr(m, attr)))
                setattr(m, attr, True)
    try:
        yield
    finally:
        for m, attr, value in patched:
            setattr(m, attr, value)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def harness_task_configs(task_dir, tasks, out_dir, tasks_root):
    """Write one lm-eval task YAML per task into out_dir: the harness's own definition (`include:` of its file
    under tasks_root, so prompts, choices, targets and metrics are its own), reading our local JSONL file as its
    evaluation split instead of the hub's dataset. Task names are prefixed "nanogrow_" so that they never resolve
    to the hub-backed originals. Returns {our name: harness task name}."""
    names = {}
    for name in tasks:
        if name not in HARNESS_YAML:
            raise EvalError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
        src = os.path.join(tasks_root, HARNESS_YAML[name])
        if not os.path.isfile(src):
            raise EvalError(f"this lm_eval has no {HARNESS_YAML[name]} among its tasks ({tasks_root}); "
                            f"`eval.py harness` was checked with lm-eval 0.4.x")
        split = TASKS[name].hf[2]  # the split our file holds: the one the harness evaluates
        names[name] = "nanogrow_" + name
        cfg = {"include": src, "task": names[name], "dataset_path": "json", "dataset_name": None,
               "dataset_kwargs": {"data_files": {split: os.path.abspath(os.path.join(task_dir, TASKS[name].file))},
                                  "cache_dir": os.path.join(out_dir, "datasets_cache")},
               "training_split": None, "fewshot_split": None,
               "validation_split": split if split == "validation" else None,
               "test_split": split if split == "test" else None}
        with open(os.path.join(out_dir, names[name] + ".yaml"), "w") as f:
            json.dump(cfg, f, indent=1)  # JSON is YAML
    return names


def run_harness(path, tasks, task_dir=None, hf_tokenizer=None, batch_size=16, limit=None, device=None,
                num_fewshot=0, dtype="float32", tokenizer=None, return_samples=False, log=print):
    """lm-evaluation-harness's own scores, offline: the checkpoint is exported (export_hf: model and tokenizer)
    to a temporary folder and evaluated with simple_evaluate(model="hf") on the harness's task definitions
    reading the local task files of task_dir (the JSONL that `eval.py tasks` reads). Returns {task: {metric:
    value}} in our task names and the harness's metric names (acc, acc_norm, perplexity, ..._stderr); with
    return_samples, also {task: [[log-likelihood of each choice] of each example, in file order]}."""
    try:
        import lm_eval
        import lm_eval.tasks
    except ImportError:
        raise EvalError("the harness needs lm-evaluation-harness: pip install lm_eval (it brings transformers); "
                        "`python eval.py tasks` scores the same tasks without it") from None
    task_dir = task_dir or os.path.join(REPO_DIR, "data", "tasks")
    for name in tasks:  # a missing or unreadable task file is named here, as `eval.py tasks` names it
        load_task(task_dir, name, limit)
    tasks_root = os.path.dirname(os.path.abspath(lm_eval.tasks.__file__))
    with tempfile.TemporaryDirectory(prefix="nanogrow_harness_") as tmp, hf_offline():
        model_dir, tok = export_hf(path, os.path.join(tmp, "model"), tokenizer, log)
        names = harness_task_configs(task_dir, tasks, tmp, tasks_root)
        try:
            manager = lm_eval.tasks.TaskManager(include_path=tmp, include_defaults=False)
        except TypeError:  # an lm-eval 0.4 without include_defaults
            manager = lm_eval.tasks.TaskManager(include_path=tmp)
        args = f"pretrained={model_dir},dtype={dtype}" + (f",tokenizer={hf_tokenizer}" if hf_tokenizer else "")
        log(f"harness: lm_eval {getattr(lm_eval, '__version__', '?')} on {model_dir} (tokenizer "
            f"{hf_tokenizer or tok.name}), tasks from {task_dir}")
        try:
            res = lm_eval.simple_evaluate(model="hf", model_args=args, tasks=list(names.values()),
                                          num_fewshot=num_fewshot, batch_size=batch_size, limit=limit,
                                          device=device or default_device(), task_manager=manager,
                                          log_samples=return_samples)
        except ImportError as e:  # lm_eval's "hf" model needs accelerate, which plain `pip install lm_eval` lacks
            raise EvalError(f"lm-evaluation-harness's Hugging Face model cannot start ({e}): "
                            f"pip install 'lm_eval[hf]'") from e
        except OSError as e:  # e.g. --hf_tokenizer naming a hub tokenizer that is not in the local cache
            raise EvalError(f"lm-evaluation-harness failed offline ({type(e).__name__}: {e}); it reads only local "
                            f"files here: the exported model and tokenizer and the task files") from e
    results = {}
    for ours, theirs in names.items():  # "acc,none" -> "acc"; the harness's sample count as "n", as `tasks` has it
        got = {("n" if k == "sample_len" else k.removesuffix(",none")): v for k, v in res["results"][theirs].items()}
        results[ours] = {k: v for k, v in got.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not return_samples:
        return results
    samples = {ours: [[float(r[0][0]) for r in s["resps"]]  # resps: [[(log-likelihood, is greedy)] per choice]
                      for s in sorted(res["samples"][theirs], key=lambda s: s["doc_id"])]
               for ours, theirs in names.items()}
    return results, samples


# -------------------------------------------------------------------------------------------------------------
# Comparing runs: loss curves from metrics.jsonl, matched-compute losses, speedup at equal loss

def read_evals(run_dir, log=print):
    """(evaluation lines, events) of a run's metrics.jsonl. A resumed run re-logs from its checkpoint on, so an
    evaluation line whose tokens do not exceed the previous one's replaces the points the interrupted attempt
    had written past it."""
    try:
        records = read_metrics(run_dir, log)
    except FileNotFoundError as e:
        raise EvalError(str(e)) from None
    evals, events = [], {}
    for rec in records:
        if "event" in rec:
            events[rec["event"], rec.get("tokens")] = rec
        elif rec.get("val_loss_mean") is not None and rec.get("tokens") is not None:
            while evals and evals[-1]["tokens"] >= rec["tokens"]:
                evals.pop()
            evals.append(rec)
    if not evals:
        raise EvalError(f"{run_dir} has no evaluation lines (with tokens and val_loss_mean) in its metrics.jsonl")
    return evals, list(events.values())


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
    """First x (tokens or FLOPs) at which a loss curve [(x, loss)] reaches `target`, linearly interpolated between
    the two evaluation points around the crossing (grow.flops_to_loss); None if the curve never gets that low."""
    if not curve:
        return None
    x = grow.flops_to_loss(*zip(*curve), target)
    return None if math.isinf(x) else x


def speedup(baseline_curve, run_curve, target):
    """Gstack's speedup at equal loss (grow.speedup): sp = C_baseline / C_run - 1, where C is the compute (FLOPs
    curves; tokens curves give the token speedup) each needs to reach `target`. None when either never reaches it."""
    cb, cr = tokens_to_reach(baseline_curve, target), tokens_to_reach(run_curve, target)
    if cb is None or cr is None or cr <= 0:
        return None
    return grow.speedup(cb, cr)


def _g(x, spec=".4g"):
    return "-" if x is None else format(x, spec)


def paper_curve(tokens_curve, events):
    """A run's [(tokens, loss)] with tokens counted in the Gstack paper's convention (grow.paper_tokens): tokens
    before the run's growth count 1/g each, g the growth factor of its grow event. Unchanged for a run that never
    grew."""
    grows = [e for e in events if e.get("event") == "grow"]
    if not grows or not tokens_curve:
        return tokens_curve
    g = grow.growth_factor(grows[0]["before"], grows[0]["after"])
    xs = grow.paper_tokens([x for x, _ in tokens_curve], grows[0]["tokens"], g)
    return [(float(x), loss) for x, (_, loss) in zip(xs, tokens_curve)]


def compare_runs(run_dirs, target=None, plot=None, log=print):
    """Print and return a comparison of runs against the first (the baseline, e.g. scratch): val loss at matched
    tokens and FLOPs, tokens and FLOPs to reach `target` (default: the baseline's final val loss), speedups."""
    names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    if len(set(names)) < len(names):
        names = [os.path.normpath(d) for d in run_dirs]
    runs = [(name, *read_evals(d, log)) for name, d in zip(names, run_dirs)]
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
        log(f"\nval loss at matched {x}:")
        log(f"{'run':<{w}}" + "".join(f"{g:>12.3g}" for g in grid))
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
        plot_curves(runs, plot, target)
        log(f"\nwrote {plot}")
    return summary


def plot_curves(runs, path, target=None):
    """Loss vs tokens and loss vs FLOPs (log x) of runs [(name, evals, events)] side by side in one PNG; a dotted
    vertical line marks each growth event, a dashed horizontal one the target loss."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EvalError("plotting needs matplotlib: pip install matplotlib (the comparison above does not)") from None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, x, label in zip(axes, ("tokens", "flops"), ("tokens", "training FLOPs")):
        for name, evals, events in runs:
            pts = [(a, b) for a, b in curve(evals, x) if a > 0]  # log axis: the iter-0 point has x = 0
            if not pts:
                continue
            (line,) = ax.plot(*zip(*pts), marker=".", label=name)
            for ev in events:
                if ev.get("event") == "grow" and ev.get(x):
                    ax.axvline(ev[x], color=line.get_color(), ls=":", alpha=0.7)
        if target is not None:
            ax.axhline(target, color="gray", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("val loss (mean over domains)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -------------------------------------------------------------------------------------------------------------
# Sampling

def sample(model, tok, prompt="", num_samples=1, max_new_tokens=200, temperature=0.8, top_k=200, seed=1337, ctx=None):
    """num_samples continuations of prompt (decoded with the prompt); an empty prompt starts at end-of-text."""
    torch.manual_seed(seed)
    ids = tok.encode(prompt) or [tok.eot]
    x = torch.tensor(ids, dtype=torch.long, device=model_device(model))[None].repeat(num_samples, 1)  # (N, T)
    with ctx or contextlib.nullcontext():
        y = model.generate(x, max_new_tokens, temperature=temperature, top_k=top_k)
    # a padded vocab has ids the tokenizer cannot decode; an undertrained model may still sample them
    return [tok.decode([i for i in row.tolist() if i < tok.n_vocab]) for row in y]


# -------------------------------------------------------------------------------------------------------------
# Command line

def _task_names(s):
    return list(TASKS) if s in (None, "", "all") else [t.strip() for t in s.split(",") if t.strip()]


def _write_json(path, obj):
    if path:
        with open(path, "w") as f:
            json.dump(obj, f, indent=2)
        print(f"wrote {path}")


def cmd_loss(a):
    device = a.device or default_device()
    ctx = autocast(device, a.dtype or default_dtype(device))
    results = {}
    meta = load_meta(a.dataset)
    for path in a.ckpts:
        model, ckpt, used = load_model(path, device)
        check_tokenizer(ckpt, meta, f"checkpoint {used}", a.dataset)
        res = eval_loss(model, a.dataset, None if a.tokens is None else int(a.tokens), a.batch_size, a.block_size,
                        ctx, progress=True)
        results[used] = res
        print(f"\n{used}  (iter {ckpt.get('iter_num', '?')}, tokens seen {ckpt.get('tokens_seen', '?')})")
        print(f"{'domain':>12} {'loss':>8} {'ppl':>10} {'bits/byte':>10} {'tokens':>10}")
        for dom, r in res.items():
            print(f"{dom:>12} {r['loss']:>8.4f} {r['ppl']:>10.3f} {_g(r['bpb'], '.4f'):>10} {r['tokens']:>10,}")
        print(f"{'mean':>12} {np.mean([r['loss'] for r in res.values()]):>8.4f}")
    _write_json(a.json, results)


def cmd_tasks(a):
    if a.harness:
        return cmd_harness(a)
    device = a.device or default_device()
    model, ckpt, used = load_model(a.ckpt, device)
    tok = tokenizer_for(ckpt, a.tokenizer)
    print(f"{used}: zero-shot tasks from {a.task_dir} (tokenizer {tok.name}, block_size {model.config.block_size})")
    res = evaluate_tasks(model, tok, a.task_dir, _task_names(a.tasks), a.limit, a.batch_size,
                         autocast(device, a.dtype or default_dtype(device)))
    _write_json(a.json, res)


def cmd_harness(a):
    res = run_harness(a.ckpt, _task_names(a.tasks), a.task_dir, a.hf_tokenizer, a.batch_size, a.limit, a.device,
                      a.num_fewshot, a.dtype or "float32", a.tokenizer)
    for task, metrics in res.items():
        print(f"{task:>16}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    _write_json(a.json, res)


def cmd_export(a):
    export_hf(a.ckpt, a.out_dir, a.tokenizer)


def cmd_compare(a):
    compare_runs(a.runs, a.target, a.plot)


def cmd_sample(a):
    device = a.device or default_device()
    model, ckpt, _ = load_model(a.ckpt, device)
    tok = tokenizer_for(ckpt, a.tokenizer)
    prompt = a.prompt
    if prompt.startswith("FILE:"):
        with open(prompt[5:], encoding="utf-8") as f:
            prompt = f.read()
    for text in sample(model, tok, prompt, a.num_samples, a.max_new_tokens, a.temperature, a.top_k, a.seed,
                       autocast(device, a.dtype or default_dtype(device))):
        print(text)
        print("-" * 80)


def cmd_download(a):
    download_tasks(a.task_dir, _task_names(a.tasks))


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
    s.add_argument("--dataset", required=True, help="dataset folder (data/<name>)")
    s.add_argument("--tokens", type=float, default=None,
                   help="tokens evaluated per domain (default: one pass over each domain's val split; never more)")
    s.add_argument("--batch_size", type=int, default=8, help="sequences per forward (default: %(default)s)")
    s.add_argument("--block_size", type=int, default=None, help="sequence length (default: the model's context)")
    s.add_argument("--json", default=None, help="also write the results to this JSON file")
    s.set_defaults(fn=cmd_loss)

    for name, fn, hlp in (("tasks", cmd_tasks, "zero-shot tasks scored here (harness definitions)"),
                          ("harness", cmd_harness, "zero-shot tasks through lm-evaluation-harness itself")):
        s = sub.add_parser(name, parents=[dev], help=hlp)
        s.add_argument("ckpt", help="checkpoint file or run folder")
        s.add_argument("--tasks", default="all", help=f"comma-separated, from: {', '.join(TASKS)}")
        s.add_argument("--limit", type=int, default=None, help="first N examples of each task")
        s.add_argument("--batch_size", type=int, default=16, help="(context, choice) pairs per forward")
        s.add_argument("--hf_tokenizer", default=None,
                       help="harness: a Hugging Face tokenizer (name or folder) instead of the exported one")
        s.add_argument("--num_fewshot", type=int, default=0)
        s.add_argument("--json", default=None)
        s.add_argument("--task_dir", default=task_dir, help="folder of the task JSONL files")
        s.add_argument("--tokenizer", default=None, choices=["gpt2", "byte"],
                       help="default: the checkpoint's dataset's")
        if name == "tasks":
            s.add_argument("--harness", action="store_true", help="run lm-evaluation-harness instead")
        s.set_defaults(fn=fn)

    s = sub.add_parser("export", help="write a checkpoint as a Hugging Face folder (model and tokenizer)")
    s.add_argument("ckpt", help="checkpoint file or run folder")
    s.add_argument("out_dir", help="the folder to write (new, empty or an earlier export)")
    s.add_argument("--tokenizer", default=None, choices=["gpt2", "byte"], help="default: the checkpoint's dataset's")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("compare", help="loss curves of runs, speedup at equal loss against the first run")
    s.add_argument("runs", nargs="+", help="run folders (out_dir); the first is the baseline")
    s.add_argument("--target", type=float, default=None, help="target val loss (default: the first run's final)")
    s.add_argument("--plot", default=None, help="write loss-vs-tokens and loss-vs-FLOPs to this PNG")
    s.set_defaults(fn=cmd_compare)

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

    s = sub.add_parser("download", help="fetch the task files with Hugging Face datasets")
    s.add_argument("--task_dir", default=task_dir)
    s.add_argument("--tasks", default="all")
    s.set_defaults(fn=cmd_download)

    a = p.parse_args(argv)
    try:
        if getattr(a, "device", None):
            check_device(a.device)
        a.fn(a)
    except (EvalError, CheckpointError, DataError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a full, read-only or foreign disk (exports, --json, plots): one line; others are bugs
        msg = user_error_message(e, (), then="run it again")
        if msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
