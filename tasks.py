"""
Zero-shot tasks scored as lm-evaluation-harness scores them, without it: HellaSwag, PIQA, ARC-Easy/Challenge, SciQ,
WinoGrande and LAMBADA, read from local JSONL files in the Hugging Face datasets' own row format (TASKS names each
file, its fields and the Hugging Face dataset it comes from).

Each example is a set of (context, continuation) pairs; a pair is scored by the summed log-probability of the
continuation's tokens. acc = argmax of the sums, acc_norm = argmax of the sums over each choice's length in
characters; LAMBADA: greedy accuracy and perplexity of the last word. The tests run the harness itself on the
same files and check that both give the same scores, item by item.
"""

import contextlib
import json
import os
import re
from collections import namedtuple

import numpy as np
import torch
import torch.nn.functional as F


class EvalError(ValueError):
    pass


def check_vocab(model_vocab, tok_vocab, what):
    """A model with fewer embedding rows than the tokenizer has ids was trained with another tokenizer."""
    if model_vocab < tok_vocab:
        raise EvalError(f"{what} has {tok_vocab} token ids but the model's vocab_size is {model_vocab}: the "
                        f"checkpoint was trained with another tokenizer; evaluate it with its own tokenizer "
                        f"(--tokenizer byte|gpt2) or dataset")


# Each example becomes {"pairs": [(context, continuation), ...], "gold": index of the right pair, "lens":
# [len(choice), ...] (acc_norm's divisor) or None}, continuation = " " + choice (the harness's target delimiter).

def _mc(context, choices, gold):
    return {"pairs": [(context, " " + c) for c in choices], "gold": int(gold), "lens": [len(c) for c in choices]}


def hellaswag_preprocess(text):
    # HellaSwag's WikiHow half carries "[title]", "[header]", "[step]", ... markers; the harness drops them
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def hellaswag_doc(d):
    ctx = d["ctx_a"] + " " + d["ctx_b"].capitalize() if "ctx_a" in d else d["ctx"]
    query = d["activity_label"] + ": " + ctx if d.get("activity_label") else ctx
    return _mc(hellaswag_preprocess(query), [hellaswag_preprocess(e) for e in d["endings"]], d["label"])


def arc_doc(d):
    q = d["question"]
    if isinstance(q, dict):  # the original AI2 release nests the choices in the question
        texts, labels, q = [c["text"] for c in q["choices"]], [c["label"] for c in q["choices"]], q["stem"]
    else:
        texts, labels = d["choices"]["text"], d["choices"]["label"]
    if d["answerKey"] not in labels:
        raise ValueError(f"answerKey {d['answerKey']!r} is not among the choice labels {labels}")
    return _mc(f"Question: {q}\nAnswer:", texts, labels.index(d["answerKey"]))


def winogrande_doc(d):
    # partial scoring: the blank is filled with each option in the context, and the same suffix after the blank
    # is scored given either context (the harness's "partial evaluation")
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


# kind: "mc" (argmax over pairs) or "lastword" (one pair: greedy-match accuracy and perplexity); hf: the dataset
# on the Hugging Face hub the file comes from (name, config, split); harness: the lm-eval task config it mirrors
Task = namedtuple("Task", "file build kind fields hf harness")
ARC_FIELDS = "question, choices {text: [...], label: [...]}, answerKey (one of the labels)"
TASKS = {
    "hellaswag": Task("hellaswag.jsonl", hellaswag_doc, "mc",
                      "activity_label, ctx_a, ctx_b (or ctx), endings [4 strings], label (0-3, int or str)",
                      ("Rowan/hellaswag", None, "validation"), "hellaswag/hellaswag.yaml"),
    "piqa": Task("piqa.jsonl", lambda d: _mc(f"Question: {d['goal']}\nAnswer:", [d["sol1"], d["sol2"]], d["label"]),
                 "mc", "goal, sol1, sol2, label (0 or 1)", ("baber/piqa", None, "validation"), "piqa/piqa.yaml"),
    "arc_easy": Task("arc_easy.jsonl", arc_doc, "mc", ARC_FIELDS, ("allenai/ai2_arc", "ARC-Easy", "test"),
                     "arc/arc_easy.yaml"),
    "arc_challenge": Task("arc_challenge.jsonl", arc_doc, "mc", ARC_FIELDS,
                          ("allenai/ai2_arc", "ARC-Challenge", "test"), "arc/arc_challenge.yaml"),
    "sciq": Task("sciq.jsonl", lambda d: _mc(f"{d['support'].lstrip()}\nQuestion: {d['question']}\nAnswer:",
                                             [d["distractor1"], d["distractor2"], d["distractor3"],
                                              d["correct_answer"]], 3),
                 "mc", "question, support, correct_answer, distractor1, distractor2, distractor3",
                 ("allenai/sciq", None, "test"), "sciq/sciq.yaml"),
    "winogrande": Task("winogrande.jsonl", winogrande_doc, "mc",
                       "sentence (with one '_'), option1, option2, answer ('1' or '2')",
                       ("allenai/winogrande", "winogrande_xl", "validation"), "winogrande/default.yaml"),
    "lambada": Task("lambada.jsonl", lambada_doc, "lastword", "text (the last space-separated word is the target)",
                    ("EleutherAI/lambada_openai", "default", "test"), "lambada/lambada_openai.yaml"),
}


def load_task(task_dir, name, limit=None):
    """The examples of one task (TASKS gives its file and fields), the first `limit` when given; a bad line is an
    EvalError naming the file and the line."""
    if name not in TASKS:
        raise EvalError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    task = TASKS[name]
    path = os.path.join(task_dir, task.file)
    if not os.path.isfile(path):
        hub, config, split = task.hf
        raise EvalError(f"task file {path} not found: task {name!r} reads {task.file} (JSONL, one example a line, "
                        f"fields: {task.fields}) from --task_dir; with `pip install datasets` and a network, download "
                        f"it: load_dataset({hub!r}, {config!r}, split={split!r}).to_json({path!r})")
    examples = []
    with open(path, encoding="utf-8") as f:
        lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()][:limit]
    for n, line in lines:
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalError(f"{path}:{n}: not valid JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(doc, dict):
            raise EvalError(f"{path}:{n}: expected a JSON object, got {type(doc).__name__}")
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
    continuation, whose ids are those of the whole text after the context's (so a BPE merge across the boundary
    is tokenized as the model saw such text). An empty context is the end-of-text token."""
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
    """[(summed log-probability of the continuation, whether greedy decoding gives it exactly)] for requests
    [(context ids, continuation ids)]. A sequence is context + continuation cut from the left to block_size + 1
    tokens, right-padded in a batch (causal attention and left-counted positions: padding after a sequence changes
    none of its logits), longest first. A continuation longer than block_size has its last block_size tokens scored."""
    T, device = model.config.block_size, next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(requests)), key=lambda i: -(len(requests[i][0]) + len(requests[i][1])))
    out = [None] * len(requests)
    too_long = sum(len(k) > T for _, k in requests)
    if too_long:
        log(f"note: {too_long} continuation(s) are longer than block_size={T}; only their last {T} tokens are scored")
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        seqs = [(list(requests[i][0]) + list(requests[i][1]))[-(T + 1):] for i in idx]
        ncont = [min(len(requests[i][1]), T) for i in idx]
        B, L, Lc = len(idx), max(len(q) - 1 for q in seqs), max(ncont)
        x = torch.zeros(B, L, dtype=torch.long)        # (B, L) inputs, 0-padded on the right
        pos = torch.zeros(B, Lc, dtype=torch.long)     # (B, Lc) input positions whose logits predict the continuation
        tgt = torch.zeros(B, Lc, dtype=torch.long)     # (B, Lc) the continuation's tokens
        mask = torch.zeros(B, Lc, dtype=torch.bool)    # (B, Lc) real continuation tokens (not padding)
        for b, (q, m) in enumerate(zip(seqs, ncont)):
            x[b, :len(q) - 1] = torch.tensor(q[:-1])
            pos[b, :m] = torch.arange(len(q) - 1 - m, len(q) - 1)  # the logits at position p predict token q[p + 1]
            tgt[b, :m] = torch.tensor(q[-m:])
            mask[b, :m] = True
        x, pos, tgt, mask = x.to(device), pos.to(device), tgt.to(device), mask.to(device)
        with ctx or contextlib.nullcontext():
            logits, _ = model(x)                                            # (B, L, V)
        logp = F.log_softmax(logits[torch.arange(B, device=device)[:, None], pos].float(), dim=-1)  # (B, Lc, V)
        tok_lp = logp.gather(-1, tgt[..., None]).squeeze(-1).masked_fill(~mask, 0.0)  # (B, Lc)
        greedy = ((logp.argmax(-1) == tgt) | ~mask).all(-1)                            # (B,)
        for i, ll, g in zip(idx, tok_lp.double().sum(-1).tolist(), greedy.tolist()):  # one device sync a batch
            out[i] = (ll, g)
    model.train(was_training)
    return out


def example_scores(model, tok, examples, batch_size=16, ctx=None, log=print):
    """[[(logprob, is_greedy) for each pair] for each example], all pairs of all examples batched together."""
    flat = score_requests(model, [encode_pair(tok, c, k) for ex in examples for c, k in ex["pairs"]], batch_size,
                          ctx, log)
    it = iter(flat)
    return [[next(it) for _ in ex["pairs"]] for ex in examples]


def task_metrics(examples, scores, kind="mc"):
    """acc (and acc_norm when the examples have choice lengths) for "mc"; acc and ppl for "lastword"."""
    if kind == "lastword":
        return {"acc": float(np.mean([s[0][1] for s in scores])),
                "ppl": float(np.exp(-np.array([s[0][0] for s in scores]).mean())), "n": len(examples)}
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
