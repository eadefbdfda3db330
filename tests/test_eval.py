"""eval.py: task scoring against a model with known log-probabilities, task readers, per-domain loss / ppl / bpb,
speedup at equal loss, the command line."""

from dataclasses import asdict
import json
import math
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

import eval as E
import tasks
from data.loader import Batcher, domain_losses, load_meta, tokenizer_record
from data.prepare import ByteTokenizer
from model import GPT, GPTConfig
from runs import read_evals, save_checkpoint

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "tasks")
MC_TASKS = ["hellaswag", "piqa", "arc_easy", "arc_challenge", "sciq", "winogrande"]


class Bigram(nn.Module):
    """Logits at position t are a fixed row of a table chosen by the token at t: log p(next | prev) is known."""

    def __init__(self, table, block_size=1024):
        super().__init__()
        self.table = nn.Parameter(table.clone())
        self.config = SimpleNamespace(block_size=block_size, vocab_size=table.shape[0])

    def forward(self, idx, targets=None):
        return self.table[idx], None  # (B, T, V)


def bigram_table(seed=0):
    g = torch.Generator().manual_seed(seed)
    table = 2.0 * torch.randn(256, 256, generator=g, dtype=torch.float64)
    # make " train" the greedy continuation of "early" (each byte's successor is unique in the chain): the third
    # LAMBADA example's last word is then decoded exactly
    chain = list(b"y train")
    for prev, nxt in zip(chain, chain[1:]):
        table[prev, nxt] = 30.0
    return table


# --- the harness's task definitions, restated independently of eval.py --------------------------------------

def hs_clean(t):
    import re
    t = t.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", t).replace("  ", " ")


def expected_requests(task, d):
    """(list of (context, continuation), gold, choice lengths or None)"""
    if task == "hellaswag":
        q = hs_clean(d["activity_label"] + ": " + d["ctx_a"] + " " + d["ctx_b"].capitalize())
        ch = [hs_clean(e) for e in d["endings"]]
        return [(q, " " + c) for c in ch], int(d["label"]), [len(c) for c in ch]
    if task == "piqa":
        ch = [d["sol1"], d["sol2"]]
        return [(f"Question: {d['goal']}\nAnswer:", " " + c) for c in ch], d["label"], [len(c) for c in ch]
    if task.startswith("arc"):
        ch = d["choices"]["text"]
        gold = d["choices"]["label"].index(d["answerKey"])
        return [(f"Question: {d['question']}\nAnswer:", " " + c) for c in ch], gold, [len(c) for c in ch]
    if task == "sciq":
        ch = [d["distractor1"], d["distractor2"], d["distractor3"], d["correct_answer"]]
        ctx = d["support"].lstrip() + "\nQuestion: " + d["question"] + "\nAnswer:"
        return [(ctx, " " + c) for c in ch], 3, [len(c) for c in ch]
    if task == "winogrande":
        pre, post = d["sentence"].split("_")
        return [(pre + d["option1"], " " + post.strip()), (pre + d["option2"], " " + post.strip())], \
            int(d["answer"]) - 1, None
    if task == "lambada":
        ctx, word = d["text"].rsplit(" ", 1)
        return [(ctx, " " + word)], 0, None


def bigram_score(lp, ctx, cont):
    """Summed log p of cont's bytes under the bigram table (float64), and whether each is the row's argmax."""
    c, k = list(ctx.encode()), list(cont.encode())
    prev = [c[-1]] + k[:-1]
    return sum(lp[p, t] for p, t in zip(prev, k)), all(lp[p].argmax() == t for p, t in zip(prev, k))


def fixture_docs(task):
    with open(os.path.join(FIXTURES, tasks.TASKS[task].file)) as f:
        return [json.loads(line) for line in f if line.strip()]


# --- scoring -----------------------------------------------------------------------------------------------------

def test_task_requests_follow_harness_format():
    for task in tasks.TASKS:
        for ex, d in zip(tasks.load_task(FIXTURES, task), fixture_docs(task)):
            pairs, gold, lens = expected_requests(task, d)
            assert ex["pairs"] == pairs and ex["gold"] == gold and ex["lens"] == lens, task
    # the tricky ones, spelled out
    hs = tasks.load_task(FIXTURES, "hellaswag")
    assert hs[0]["pairs"][0][0] == "Making a sandwich: A man lays two slices of bread on a cutting board. He"
    assert hs[1]["pairs"][0] == ("Home and Garden: How to water a cactus. Check the soil first. Push a finger "
                                 "into the soil.", " If it is dry, water it deeply. Let the water drain out.")
    wg = tasks.load_task(FIXTURES, "winogrande")[0]
    assert wg["pairs"] == [("The trophy doesn't fit into the brown suitcase because the trophy", " is too large."),
                           ("The trophy doesn't fit into the brown suitcase because the suitcase", " is too large.")]
    sq = tasks.load_task(FIXTURES, "sciq")[0]
    assert sq["pairs"][3] == ("The nucleus is the small, dense region at the center of an atom.\nQuestion: What is "
                              "the center of an atom called?\nAnswer:", " nucleus")


def test_known_logprobs_give_hand_computed_acc_and_acc_norm():
    table = bigram_table()
    lp = torch.log_softmax(table, -1).numpy()
    model, tok = Bigram(table.float()), ByteTokenizer()
    got_apart = 0
    for task in tasks.TASKS:
        docs = fixture_docs(task)
        exp_scores, exp_acc, exp_norm = [], [], []
        for d in docs:
            pairs, gold, lens = expected_requests(task, d)
            s = [bigram_score(lp, c, k) for c, k in pairs]
            exp_scores.append(s)
            lls = np.array([ll for ll, _ in s])
            if task == "lambada":
                exp_acc.append(s[0][1])
            else:
                exp_acc.append(int(np.argmax(lls)) == gold)
                if lens:
                    exp_norm.append(int(np.argmax(lls / np.array(lens))) == gold)
                    got_apart += np.argmax(lls) != np.argmax(lls / np.array(lens))
        res = tasks.evaluate_tasks(model, tok, FIXTURES, [task], batch_size=5, log=lambda *a: None)[task]
        assert res["n"] == len(docs)
        assert res["acc"] == pytest.approx(np.mean(exp_acc), abs=1e-12), task
        if exp_norm:
            assert res["acc_norm"] == pytest.approx(np.mean(exp_norm), abs=1e-12), task
        else:
            assert "acc_norm" not in res
        got = tasks.example_scores(model, tok, tasks.load_task(FIXTURES, task), batch_size=3)
        for g, e in zip(got, exp_scores):
            assert [x[1] for x in g] == [x[1] for x in e]
            np.testing.assert_allclose([x[0] for x in g], [x[0] for x in e], rtol=1e-5, atol=1e-6)
        if task == "lambada":
            lls = np.array([s[0][0] for s in exp_scores])
            assert res["ppl"] == pytest.approx(math.exp(-lls.mean()), rel=1e-5)
            assert res["acc"] == pytest.approx(1 / 3)  # " train" was made greedy; the others are not
    assert got_apart > 0, "the fixture should have examples where length normalisation changes the answer"


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_batching_and_padding_do_not_change_scores(arch):
    torch.manual_seed(0)
    model = GPT(GPTConfig(arch=arch, block_size=64, vocab_size=256, n_layer=2, n_head=2, n_embd=32)).eval()
    tok = ByteTokenizer()
    examples = [ex for t in tasks.TASKS for ex in tasks.load_task(FIXTURES, t)]  # contexts longer than 64: truncated
    ref = tasks.example_scores(model, tok, examples, batch_size=1)
    for bs in (3, 1000):
        got = tasks.example_scores(model, tok, examples, batch_size=bs)
        for g, r in zip(got, ref):
            np.testing.assert_allclose([x[0] for x in g], [x[0] for x in r], rtol=1e-5, atol=1e-5)
            assert [x[1] for x in g] == [x[1] for x in r]


def test_long_context_is_truncated_from_the_left():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=256, n_layer=1, n_head=2, n_embd=16)).eval()
    ctx, cont = list(range(10, 30)), [40, 41, 42]
    full = torch.tensor(ctx + cont)[-9:]  # block_size + 1 tokens: 8 inputs, the last 3 predicted
    logp = torch.log_softmax(model(full[None, :-1])[0][0], -1)
    expected = sum(logp[5 + j, cont[j]].item() for j in range(3))
    (ll, _), = tasks.score_requests(model, [(ctx, cont)])
    assert ll == pytest.approx(expected, rel=1e-6)
    # a continuation longer than block_size: its last 8 tokens are scored, given the token before them
    cont = list(range(50, 62))
    logp = torch.log_softmax(model(torch.tensor([cont[3:11]]))[0][0], -1)
    notes = []
    (ll, _), = tasks.score_requests(model, [([1], cont)], log=notes.append)
    assert ll == pytest.approx(sum(logp[j, cont[4 + j]].item() for j in range(8)), rel=1e-6)
    assert "longer than block_size=8" in notes[0]


def test_encode_pair_moves_trailing_space_and_uses_eot_for_empty_context():
    tok = ByteTokenizer()
    assert tasks.encode_pair(tok, "ab ", "c") == (list(b"ab"), list(b" c"))
    assert tasks.encode_pair(tok, "", " c") == ([tok.eot], list(b" c"))


# --- task files ----------------------------------------------------------------------------------------------

def test_malformed_line_is_reported_with_file_and_line(tmp_path):
    lines = open(os.path.join(FIXTURES, "piqa.jsonl")).read().splitlines()
    bad = tmp_path / "piqa.jsonl"
    bad.write_text("\n".join([lines[0], '{"goal": "cut", "sol1": ', lines[2]]) + "\n")
    with pytest.raises(E.EvalError, match=rf"{bad}:2: not valid JSON"):
        tasks.load_task(str(tmp_path), "piqa")
    bad.write_text("\n".join([lines[0], lines[1], '{"goal": "x", "sol1": "y", "label": 0}']) + "\n")
    with pytest.raises(E.EvalError, match=rf"{bad}:3: missing field 'sol2'"):
        tasks.load_task(str(tmp_path), "piqa")
    (tmp_path / "winogrande.jsonl").write_text('{"sentence": "no blank", "option1": "a", "option2": "b", '
                                               '"answer": "1"}\n')
    with pytest.raises(E.EvalError, match=r"winogrande.jsonl:1: .*no '_' blank"):
        tasks.load_task(str(tmp_path), "winogrande")
    (tmp_path / "arc_easy.jsonl").write_text('{"question": "q", "choices": {"text": ["a"], "label": ["A"]}, '
                                             '"answerKey": "E"}\n')
    with pytest.raises(E.EvalError, match=r"arc_easy.jsonl:1: .*answerKey 'E'"):
        tasks.load_task(str(tmp_path), "arc_easy")


def test_missing_task_file_and_unknown_task(tmp_path):
    with pytest.raises(E.EvalError, match=r"hellaswag.jsonl not found.*ctx_a.*download"):
        tasks.load_task(str(tmp_path), "hellaswag")
    with pytest.raises(E.EvalError, match="unknown task 'mmlu'"):
        tasks.load_task(FIXTURES, "mmlu")


def test_vocab_mismatch_is_refused():
    small = GPT(GPTConfig(block_size=16, vocab_size=100, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(E.EvalError, match="vocab_size is 100"):
        tasks.evaluate_tasks(small, ByteTokenizer(), FIXTURES, ["piqa"])


def test_optional_packages_missing_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(E.EvalError, match="pip install matplotlib"):
        E.plot_curves(str(tmp_path / "x.png"), {})


# --- per-domain loss ---------------------------------------------------------------------------------------------

def write_byte_dataset(root, seed=0):
    rng = np.random.default_rng(seed)
    meta = {"tokenizer": "byte", "vocab_size": 256, "dtype": "uint16", "eot": 0, "domains": {}}
    for dom, n_val, n_bytes in (("code", 700, 910), ("prose", 500, 1600)):
        os.makedirs(root / dom)
        rng.integers(1, 256, 2000).astype(np.uint16).tofile(root / dom / "train.bin")
        # a skewed distribution, so the two domains' losses differ
        rng.integers(1, 40 if dom == "code" else 256, n_val).astype(np.uint16).tofile(root / dom / "val.bin")
        meta["domains"][dom] = {"train_tokens": 2000, "val_tokens": n_val, "train_bytes": 2600, "val_bytes": n_bytes}
    (root / "meta.json").write_text(json.dumps(meta))
    return str(root), meta


def tiny_gpt(vocab_size=256, block_size=16, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=1, n_head=2, n_embd=16)).eval()


def test_domain_loss_ppl_bpb(tmp_path):
    ds, meta = write_byte_dataset(tmp_path / "ds")
    model = tiny_gpt()
    res = E.eval_loss(model, ds, tokens=200, batch_size=4)   # 200 tokens / (4 x 16) -> 4 batches per domain
    assert set(res) == {"code", "prose"}
    ref = domain_losses(model, Batcher(ds, 16, 4), "val", iters=4)
    for dom, r in res.items():
        c = meta["domains"][dom]
        assert r["tokens"] == 4 * 4 * 16
        assert r["loss"] == pytest.approx(ref[dom], rel=1e-6)
        assert r["ppl"] == pytest.approx(math.exp(r["loss"]), rel=1e-12)
        assert r["bpb"] == pytest.approx(r["loss"] / math.log(2) * c["val_tokens"] / c["val_bytes"], rel=1e-12)
    # the same number by hand: mean cross-entropy over the 4 fixed batches of a domain
    b = Batcher(ds, 16, 4)
    manual = np.mean([torch.nn.functional.cross_entropy(model(x)[0].reshape(-1, 256), y.reshape(-1)).item()
                      for x, y in (b.get_domain("code", "val", k) for k in range(4))])
    assert res["code"]["loss"] == pytest.approx(manual, rel=1e-5)


def save_run(path, model, **extra):
    os.makedirs(path, exist_ok=True)
    save_checkpoint({"model": model.state_dict(), "model_args": asdict(model.config), "iter_num": 5, **extra},
                    os.path.join(path, "ckpt_0000005.pt"))
    return str(path)


def test_cli_loss_tasks_sample(tmp_path, capsys):
    ds, _ = write_byte_dataset(tmp_path / "ds")
    run = save_run(tmp_path / "run", tiny_gpt(block_size=64), config={"dataset": ds},
                   tokenizer=tokenizer_record(load_meta(ds)))  # as train.py records them
    out = tmp_path / "loss.json"
    assert E.main(["loss", run, "--dataset", ds, "--tokens", "256", "--batch_size", "2", "--device", "cpu",
                   "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "code" in text and "prose" in text and "bits/byte" in text
    (res,) = json.loads(out.read_text()).values()
    assert res["prose"]["ppl"] == pytest.approx(math.exp(res["prose"]["loss"]))

    assert E.main(["tasks", run, "--tasks", "piqa,lambada", "--task_dir", FIXTURES, "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "tokenizer byte" in text and "piqa" in text and "acc_norm" in text and "ppl" in text

    assert E.main(["sample", run, "--prompt", "def ", "--num_samples", "2", "--max_new_tokens", "5",
                   "--device", "cpu"]) == 0
    assert capsys.readouterr().out.count("def ") >= 2

    small = save_run(tmp_path / "small", tiny_gpt(vocab_size=128))
    assert E.main(["loss", small, "--dataset", ds, "--device", "cpu"]) == 1
    assert "vocab_size is 128" in capsys.readouterr().err


# --- comparing runs ----------------------------------------------------------------------------------------------

def test_tokens_to_reach_interpolates():
    c = [(0, 10.0), (100, 5.0), (200, 3.0)]
    assert E.tokens_to_reach(c, 4.0) == pytest.approx(150.0)
    assert E.tokens_to_reach(c, 5.0) == pytest.approx(100.0)
    assert E.tokens_to_reach(c, 11.0) == 0.0
    assert E.tokens_to_reach(c, 2.9) is None
    assert E.loss_at(c, 50) == pytest.approx(7.5) and E.loss_at(c, 300) is None


def test_speedup_on_power_law_curves():
    a, b, k = 40.0, 0.07, 1.5   # the run reaches any loss with 1/k of the baseline's FLOPs: sp = k - 1
    f = np.geomspace(1e15, 1e19, 60)
    base = [(x, a * x ** -b) for x in f]
    exact = [(x / k, l) for x, l in base]              # same points, compute scaled: interpolation is exact
    assert E.speedup(base, exact, base[-1][1]) == pytest.approx(k - 1, rel=1e-9)
    g = np.geomspace(3e14, 1e19, 400)                 # another grid: exact up to interpolation error
    other = [(x, a * (k * x) ** -b) for x in g]
    assert E.speedup(base, other, base[-1][1]) == pytest.approx(k - 1, rel=1e-2)
    assert E.speedup(base, other, 0.1) is None        # never reached


def write_metrics(run_dir, points, extra_lines=()):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
        for tok, fl, loss in points:  # a step's tokens are proportional to its iter
            i = int(tok)
            f.write(json.dumps({"iter": i, "tokens": tok, "flops": fl, "train_loss": loss + 0.1, "lr": 1e-3}) + "\n")
            f.write(json.dumps({"iter": i, "tokens": tok, "flops": fl, "val_loss": {"a": loss, "b": loss},
                                "val_loss_mean": loss}) + "\n")
        for line in extra_lines:
            f.write(line + "\n")
    return str(run_dir)


def test_compare_runs_speedup_and_plot(tmp_path):
    a, b, k = 30.0, 0.06, 2.0
    tokens = np.linspace(1e6, 2e8, 30)
    fpt = 6 * 1e7   # FLOPs per token of the large model
    base = write_metrics(tmp_path / "scratch", [(t, t * fpt, a * (t * fpt) ** -b) for t in tokens])
    # the grown run: the same loss at half the FLOPs (its tokens cost the same per token here)
    grown_pts = [(t / k, t * fpt / k, a * (t * fpt) ** -b) for t in tokens]
    small, big = ({"n_layer": n, "n_head": 2, "n_embd": 32, "vocab_size": 64, "block_size": 16} for n in (2, 8))
    grown = write_metrics(tmp_path / "gstack", grown_pts,
                          extra_lines=[json.dumps({"event": "grow", "iter": 3, "tokens": grown_pts[3][0],
                                                   "flops": grown_pts[3][1], "before": small, "after": big}),
                                       '{"iter": 99, "tokens": 1'])   # a line cut short by a crash
    notes = []
    s = E.compare_runs([base, grown], log=notes.append)
    target = a * (tokens[-1] * fpt) ** -b
    assert s["target"] == pytest.approx(target)
    assert s["runs"]["scratch"]["speedup"] == pytest.approx(0.0, abs=1e-9)
    assert s["runs"]["gstack"]["speedup"] == pytest.approx(k - 1, rel=1e-9)
    assert s["runs"]["gstack"]["token_speedup"] == pytest.approx(k - 1, rel=1e-9)
    assert s["runs"]["gstack"]["flops_to_target"] == pytest.approx(tokens[-1] * fpt / k)
    # the paper's convention: the tokens before the growth (2 -> 8 layers, g = 4) count a quarter each
    d, reach = grown_pts[3][0], tokens[-1] / k
    assert s["runs"]["gstack"]["speedup_paper"] == pytest.approx(tokens[-1] / (d / 4 + reach - d) - 1, rel=1e-9)
    assert any("not valid JSON" in n for n in notes)
    assert any("+100.0%" in n for n in notes)
    # a target the grown run never reaches
    s = E.compare_runs([base, grown], target=0.0, log=lambda *x: None)
    assert s["runs"]["gstack"]["speedup"] is None and s["runs"]["gstack"]["tokens_to_target"] is None

    pytest.importorskip("matplotlib")
    png = tmp_path / "plots" / "cmp.png"
    assert E.main(["compare", base, grown, "--plot", str(png)]) == 0
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resumed_run_keeps_the_latest_points(tmp_path):
    run = write_metrics(tmp_path / "r", [(0, 0, 5.0), (100, 1e3, 4.0), (200, 2e3, 3.5), (300, 3e3, 3.4),
                                         (200, 2e3, 3.6), (300, 3e3, 3.3), (400, 4e3, 3.2)])
    evals, _ = read_evals(run)
    assert E.curve(evals) == [(0, 5.0), (100, 4.0), (200, 3.6), (300, 3.3), (400, 3.2)]
    with pytest.raises(FileNotFoundError, match="not found"):
        read_evals(str(tmp_path / "nope"))
