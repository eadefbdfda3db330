"""Hugging Face export and import checked against transformers itself, the exported tokenizer against tiktoken,
and lm-evaluation-harness itself (offline, on the export) against tasks.py. Tests that need transformers or
lm_eval are skipped without them; the file-level checks run everywhere."""

from dataclasses import asdict
import inspect
import json
import os

import pytest
import torch

import eval as E
import tasks
from data.loader import load_meta, tokenizer_record
from data.prepare import ByteTokenizer, get_tokenizer
from hf import bpe_merges, bytes_to_unicode, from_hf, save_tokenizer, to_hf
from model import GPT, GPTConfig
from runs import save_checkpoint

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "tasks")
EXPORT_FILES = {"config.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"}


def tiny(arch, vocab_size=101, seed=0, **kw):
    base = dict(arch=arch, block_size=32, vocab_size=vocab_size, n_layer=2, n_head=4, n_embd=32)
    if arch == "llama":
        base.update(n_kv_head=2)
    base.update(kw)
    torch.manual_seed(seed)
    m = GPT(GPTConfig(**base)).eval()
    with torch.no_grad():  # non-trivial norms, biases and head, so a dropped or misplaced tensor would show
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def real_text():
    """A few thousand characters of real code and prose, then whitespace runs, unicode and the end-of-text token."""
    import textwrap
    return (inspect.getsource(textwrap)[:6000] + "\n\n\n    \t\t  x   \n \n"
            + "naïve café — 日本語のテキスト, Ελληνικά, emoji 🙂🙃 a\u00a0b\u200bc Ω≈√ 'll 're 's 've'\n"
            + "  <|endoftext|> after the end  <|endoftext|><|endoftext|>\n  ")


LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8}  # head_dim 8: wavelengths 6.3 (blended), 63, 628, 6283 (slowed)
# 19 variants: every combination each side can express, and the Llama settings of current checkpoints (Llama 3.x
# rope scaling, linear rope scaling, biases in the attention or the MLP alone, a head size other than n_embd/n_head)
VARIANTS = [("gpt2", {}), ("gpt2", {"bias": True}), ("gpt2", {"tie_embeddings": False}),
            ("gpt2", {"tie_embeddings": False, "bias": True}), ("gpt2", {"scale_attn_by_inverse_layer_idx": True}),
            ("gpt2", {"scale_attn_by_inverse_layer_idx": True, "tie_embeddings": False, "bias": True}),
            ("gpt2", {"n_head": 2, "intermediate_size": 48}), ("gpt2", {"gelu_approximate": "tanh", "bias": True}),
            ("llama", {}), ("llama", {"tie_embeddings": True}), ("llama", {"bias": True}),
            ("llama", {"bias": True, "tie_embeddings": True}), ("llama", {"n_kv_head": 4, "rope_theta": 500000.0}),
            ("llama", {"n_kv_head": 1, "intermediate_size": 40}), ("llama", {"rope_scaling": LLAMA3}),
            ("llama", {"rope_scaling": {"rope_type": "linear", "factor": 4.0}}),
            ("llama", {"bias": True, "mlp_bias": False}), ("llama", {"mlp_bias": True}),
            ("llama", {"head_size": 16, "rope_scaling": LLAMA3})]


# --- export and import, both ways, against transformers ---------------------------------------------------------

@pytest.mark.parametrize("arch,kw", VARIANTS)
def test_export_and_import_agree_with_transformers(tmp_path, arch, kw):
    """Ours -> to_hf -> transformers, and transformers' own save_pretrained -> from_hf: the same logits."""
    transformers = pytest.importorskip("transformers")
    m = tiny(arch, **kw)
    x = torch.randint(0, 101, (2, 24))
    to_hf(m, str(tmp_path / "ours"))
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "ours")).eval()
    assert hf.config.tie_word_embeddings is m.config.tie_embeddings
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, m(x)[0], rtol=0, atol=1e-5)
        # the other way: a model transformers made and saved itself (its own init, its own key names)
        cfg = transformers.AutoConfig.from_pretrained(str(tmp_path / "ours"))
        torch.manual_seed(1)
        theirs = transformers.AutoModelForCausalLM.from_config(cfg).eval()
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
        theirs.save_pretrained(str(tmp_path / "theirs"))
        back = from_hf(str(tmp_path / "theirs")).eval()
        assert back.config.tie_embeddings is m.config.tie_embeddings
        torch.testing.assert_close(back(x)[0], theirs(x).logits, rtol=0, atol=1e-5)
        if not m.config.tie_embeddings:  # the untied head is its own, read back exactly
            assert not torch.equal(back.lm_head.weight, back.wte.weight)
            torch.testing.assert_close(back.lm_head.weight, theirs.lm_head.weight, rtol=0, atol=0)


def test_untied_gpt2_round_trip_without_transformers(tmp_path):
    m = tiny("gpt2", tie_embeddings=False, bias=True)
    to_hf(m, str(tmp_path))
    assert json.load(open(tmp_path / "config.json"))["tie_word_embeddings"] is False
    back = from_hf(str(tmp_path)).eval()
    assert back.lm_head.weight is not back.wte.weight
    x = torch.randint(0, 101, (2, 16))
    torch.testing.assert_close(back(x)[0], m(x)[0], rtol=0, atol=1e-6)
    # an untied config whose weights lack the head is an error, not a silently tied model
    if (tmp_path / "model.safetensors").exists():
        from safetensors.torch import load_file, save_file
        sd = load_file(str(tmp_path / "model.safetensors"))
        del sd["lm_head.weight"]
        save_file(sd, str(tmp_path / "model.safetensors"))
    else:  # no safetensors installed: to_hf wrote pytorch_model.bin
        sd = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
        del sd["lm_head.weight"]
        torch.save(sd, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="tie_word_embeddings is false but .* has no lm_head.weight"):
        from_hf(str(tmp_path))
    # a tokenizer with more ids than the model has rows is another model's
    with pytest.raises(ValueError, match="the tokenizer has 256 ids but the model's vocab_size is 101"):
        to_hf(m, str(tmp_path / "other"), ByteTokenizer())


# --- the exported tokenizer ----------------------------------------------------------------------------------------

def test_gpt2_merges_rebuilt_from_the_ranks(tmp_path):
    """GPT-2's merges.txt, known line by line: the first merges and their count (ranks 256..50255)."""
    tok = get_tokenizer("gpt2")
    save_tokenizer(tok, str(tmp_path), model_max_length=64)
    lines = (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#version") and len(lines) == 1 + 50000
    assert lines[1:5] == ["Ġ t", "Ġ a", "h e", "i n"]
    vocab = json.load(open(tmp_path / "vocab.json", encoding="utf-8"))
    assert len(vocab) == 50257 and vocab["<|endoftext|>"] == 50256 and vocab["Ġthe"] == 262 and vocab["!"] == 0
    cfg = json.load(open(tmp_path / "tokenizer_config.json"))
    assert cfg["eos_token"] == cfg["bos_token"] == "<|endoftext|>" and cfg["model_max_length"] == 64
    enc = bytes_to_unicode()
    assert len(set(enc.values())) == 256 and enc[ord(" ")] == "Ġ" and enc[ord("a")] == "a"
    assert bpe_merges({b"a": 0, b"b": 1, b"c": 2, b"ab": 3, b"abc": 4}) == [(b"a", b"b"), (b"ab", b"c")]


def test_exported_gpt2_tokenizer_gives_tiktokens_ids(tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = get_tokenizer("gpt2")
    save_tokenizer(tok, str(tmp_path / "fast"))
    text = real_text()
    want = tok.enc.encode(text, allowed_special={"<|endoftext|>"})  # the end-of-text token is 50256 in both
    assert 50256 in want and len(text) > 6000
    slow = tmp_path / "files_only"  # vocab.json + merges.txt alone (no `tokenizers` package): the same ids
    slow.mkdir()
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (slow / f).write_bytes((tmp_path / "fast" / f).read_bytes())
    for d in (tmp_path / "fast", slow):
        hf = transformers.AutoTokenizer.from_pretrained(str(d))
        assert hf.encode(text, add_special_tokens=False) == want
        assert hf.eos_token_id == hf.bos_token_id == 50256 and len(hf) == 50257
        assert hf.decode(want) == text and hf.decode(tok.encode("a <|endoftext|> b")) == "a <|endoftext|> b"
    ordinary = real_text().replace("<|endoftext|>", "")  # text without the special token: encode_ordinary's ids
    assert hf.encode(ordinary, add_special_tokens=False) == tok.encode(ordinary)


def test_exported_byte_tokenizer_gives_byte_ids(tmp_path):
    transformers = pytest.importorskip("transformers")
    bt = ByteTokenizer()
    save_tokenizer(bt, str(tmp_path))
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    text = real_text().replace("<|endoftext|>", "")
    ids = hf.encode(text, add_special_tokens=False)
    assert ids == bt.encode(text) and max(ids) < 256 and len(hf) == 256
    assert hf.eos_token_id == hf.bos_token_id == bt.eot == 0
    assert hf.decode(ids) == text == bt.decode(ids)
    assert hf.decode([0] + ids[:10] + [0], skip_special_tokens=True) == bt.decode([0] + ids[:10] + [0])
    assert hf.encode("a\0b", add_special_tokens=False) == bt.encode("a\0b") == [97, 98]  # NUL is no text


# --- the export command: a complete, loadable folder ---------------------------------------------------------------

def save_run(path, model, tokenizer):
    """A run folder whose checkpoint names a dataset made with `tokenizer`, as train.py's does."""
    ds = path / "dataset"
    ds.mkdir(parents=True)
    tok = get_tokenizer(tokenizer)
    (ds / "meta.json").write_text(json.dumps({"tokenizer": tokenizer, "vocab_size": tok.n_vocab, "dtype": "uint16",
                                              "domains": {"text": {"train_tokens": 1, "val_tokens": 1}}}))
    save_checkpoint({"model": model.state_dict(), "model_args": asdict(model.config), "iter_num": 1,
                     "config": {"dataset": str(ds)}, "tokenizer": tokenizer_record(load_meta(str(ds)))},
                    str(path / "ckpt_0000001.pt"))
    return str(path)


@pytest.mark.parametrize("arch,tokenizer,vocab", [("gpt2", "gpt2", 50304), ("llama", "byte", 256)])
def test_export_command_writes_model_and_tokenizer(tmp_path, capsys, arch, tokenizer, vocab):
    m = tiny(arch, vocab_size=vocab, n_layer=1, n_embd=16)
    run = save_run(tmp_path / "run", m, tokenizer)
    out = tmp_path / "hf"
    assert E.main(["export", run, str(out)]) == 0
    files = set(os.listdir(out))
    assert EXPORT_FILES <= files and ("model.safetensors" in files) != ("pytorch_model.bin" in files)
    said = capsys.readouterr().out  # a file left out for want of a package is said, with the package to install
    assert ("note: safetensors is not installed" in said) == ("pytorch_model.bin" in files)
    assert ("pip install tokenizers" in said) == ("vocab.json" in files and "tokenizer.json" not in files)
    cfg = json.load(open(out / "config.json"))
    eot = get_tokenizer(tokenizer).eot
    assert cfg["bos_token_id"] == cfg["eos_token_id"] == eot < cfg["vocab_size"] == vocab
    tcfg = json.load(open(out / "tokenizer_config.json"))
    assert tcfg["added_tokens_decoder"] == {str(eot): {**tcfg["added_tokens_decoder"][str(eot)],
                                                       "content": "<|endoftext|>", "special": True}}
    assert tcfg["model_max_length"] == m.config.block_size
    x = torch.randint(0, 256, (1, 16))
    torch.testing.assert_close(from_hf(str(out))(x)[0], m(x)[0], rtol=0, atol=1e-6)
    assert E.main(["export", run, str(out)]) == 0  # an earlier export is replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert E.main(["export", run, str(tmp_path / "other")]) == 1  # a folder of other files is left alone
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("arch,tokenizer,vocab", [("gpt2", "gpt2", 50257), ("llama", "byte", 256)])
def test_transformers_generates_our_greedy_tokens(tmp_path, arch, tokenizer, vocab):
    """AutoModelForCausalLM + AutoTokenizer on the exported folder, nothing else: GPT.generate's greedy tokens."""
    transformers = pytest.importorskip("transformers")
    m = tiny(arch, vocab_size=vocab, n_layer=1, n_embd=16)
    run = save_run(tmp_path / "run", m, tokenizer)
    assert E.main(["export", run, str(tmp_path / "hf")]) == 0
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    tok = get_tokenizer(tokenizer)
    prompt = "def greet(name):\n    return"
    ids = hf_tok(prompt, return_tensors="pt")["input_ids"]
    assert ids[0].tolist() == tok.encode(prompt)
    n = 12
    ours = m.generate(ids, n, top_k=1)[0, ids.shape[1]:].tolist()
    theirs = hf.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=hf_tok.eos_token_id)[0, ids.shape[1]:]
    theirs = theirs.tolist()
    assert theirs == ours[:len(theirs)]  # transformers stops at eos (the exported eos id), ours runs on
    assert len(theirs) == n or theirs[-1] == tok.eot
    assert hf_tok.decode(theirs) == tok.decode(theirs)


# --- the harness, offline, against `eval.py tasks` -------------------------------------------------------------------

def harness_available():
    pytest.importorskip("lm_eval")
    pytest.importorskip("accelerate")  # lm_eval's "hf" model needs it (pip install 'lm_eval[hf]')


def run_harness(model_dir, names, work_dir):
    """lm-evaluation-harness (0.4.x) on an exported folder, offline: each task runs the harness's own definition
    (prompts, choices, metrics) on our local JSONL file instead of the hub's dataset, as task nanogrow_<name> so
    that none resolves to the hub-backed original. Returns ({name: {metric: value}}, {name: [[log-likelihood of
    each choice] per example, in file order]})."""
    import lm_eval
    import lm_eval.tasks
    yamls = {"hellaswag": "hellaswag/hellaswag.yaml", "piqa": "piqa/piqa.yaml", "arc_easy": "arc/arc_easy.yaml",
             "arc_challenge": "arc/arc_challenge.yaml", "sciq": "sciq/sciq.yaml",
             "winogrande": "winogrande/default.yaml", "lambada": "lambada/lambada_openai.yaml"}
    root = os.path.dirname(os.path.abspath(lm_eval.tasks.__file__))
    for name in names:
        split = tasks.TASKS[name].hf[2]
        cfg = {"include": os.path.join(root, yamls[name]), "task": "nanogrow_" + name, "dataset_path": "json",
               "dataset_name": None, "dataset_kwargs": {"data_files": {split: os.path.join(FIXTURES,
                                                                                       tasks.TASKS[name].file)}},
               "training_split": None, "fewshot_split": None,
               "validation_split": split if split == "validation" else None,
               "test_split": split if split == "test" else None}
        (work_dir / f"nanogrow_{name}.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    manager = lm_eval.tasks.TaskManager(include_path=str(work_dir), include_defaults=False)
    res = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model_dir},dtype=float32",
                                  tasks=[f"nanogrow_{n}" for n in names], batch_size=16, device="cpu",
                                  task_manager=manager, log_samples=True)
    results = {n: {k.removesuffix(",none"): v for k, v in res["results"][f"nanogrow_{n}"].items()} for n in names}
    samples = {n: [[float(r[0][0]) for r in s["resps"]]  # resps: [[(log-likelihood, is greedy)] per choice]
                   for s in sorted(res["samples"][f"nanogrow_{n}"], key=lambda s: s["doc_id"])] for n in names}
    return results, samples


@pytest.mark.parametrize("arch,tokenizer,vocab", [("gpt2", "gpt2", 50257), ("llama", "byte", 256)])
def test_harness_scores_every_item_as_tasks_does(tmp_path, arch, tokenizer, vocab, monkeypatch):
    """tasks.py against lm-evaluation-harness itself on our export: the same log-likelihood for every (context,
    choice) pair, and the same acc, acc_norm and perplexity."""
    harness_available()
    m = tiny(arch, vocab_size=vocab, n_layer=1, n_embd=16, block_size=64)
    with torch.no_grad():  # sharper distributions, so that choices differ clearly
        m.lm_head.weight.mul_(20)
    run = save_run(tmp_path / "run", m, tokenizer)
    assert E.main(["export", run, str(tmp_path / "hf")]) == 0
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(k, "1")  # local files only
    names = list(tasks.TASKS)
    results, samples = run_harness(tmp_path / "hf", names, tmp_path)
    tok = get_tokenizer(tokenizer)
    ours = tasks.evaluate_tasks(m, tok, FIXTURES, names, log=lambda *a: None)
    for name in names:
        examples = tasks.load_task(FIXTURES, name)
        scores = tasks.example_scores(m, tok, examples)
        want = [[ll for ll, _ in s] for s in scores]
        assert len(samples[name]) == len(want), name
        for a, b in zip(samples[name], want):  # every (context, continuation) pair, as the harness scored it
            assert a == pytest.approx(b, abs=1e-3, rel=1e-5), name
        assert results[name]["acc"] == ours[name]["acc"], name
        if "acc_norm" in ours[name]:
            assert results[name]["acc_norm"] == ours[name]["acc_norm"], name
        if name == "lambada":
            assert results[name]["perplexity"] == pytest.approx(ours[name]["ppl"], rel=1e-4)
    assert 0 < sum(r["acc"] for r in results.values()) < len(names)  # not all right or all wrong


# --- Inheritune from a Hugging Face folder -------------------------------------------------------------------------

def hf_reference(folder, arch, transformers):
    """A 4-layer model that transformers made and saved itself (its own init, perturbed), with a byte-level
    tokenizer.json (256 bytes + '</s>') beside it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    to_hf(tiny(arch, vocab_size=320, n_layer=4, **({"rope_scaling": LLAMA3} if arch == "llama" else {})),
          str(folder / "config_only"))
    torch.manual_seed(2)
    theirs = transformers.AutoModelForCausalLM.from_config(
        transformers.AutoConfig.from_pretrained(str(folder / "config_only"))).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
    theirs.save_pretrained(str(folder))
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    tok = Tokenizer(models.BPE(vocab={**vocab, "</s>": 256}, merges=[]))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.add_special_tokens(["</s>"])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    return theirs


def blocks_output(m, idx):
    """The residual stream after all of m's blocks (before the final norm)."""
    x, rope = m.wte(idx), None
    if m.config.arch == "gpt2":
        x = x + m.wpe(torch.arange(idx.shape[1]))
    else:
        rope = (m.rope_cos, m.rope_sin)
    for block in m.blocks:
        x = block(x, rope)
    return x


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_inheriting_from_a_hugging_face_folder_reads_only_those_blocks(tmp_path, monkeypatch, arch):
    """from_hf(folder, n_layer=2) of a 4-layer reference: the reference's hidden states after its first 2 blocks,
    exactly, and its embeddings, final norm and head; no tensor of blocks 2 and 3 is ever read."""
    transformers = pytest.importorskip("transformers")
    safetensors = pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    from hf import _block_of
    theirs = hf_reference(tmp_path, arch, transformers)
    read, real = [], safetensors.safe_open

    class Spy:  # safe_open that records every tensor read
        def __init__(self, *a, **k):
            self.f = real(*a, **k)

        def keys(self):
            return self.f.keys()

        def get_tensor(self, key):
            read.append(key)
            return self.f.get_tensor(key)
    monkeypatch.setattr(safetensors, "safe_open", Spy)
    small = from_hf(str(tmp_path), n_layer=2).eval()
    assert small.config.n_layer == 2 and {_block_of(k) for k in read} == {None, 0, 1}
    x = torch.randint(0, 320, (2, 24))
    with torch.no_grad():
        want = theirs(x, output_hidden_states=True).hidden_states[2]  # after 2 of the 4 blocks
        torch.testing.assert_close(blocks_output(small, x), want, rtol=0, atol=1e-5)
    ours, ref = small.state_dict(), from_hf(str(tmp_path)).state_dict()
    assert all(torch.equal(ours[k], ref[k]) for k in ours)  # every tensor kept is the reference's


def test_train_inherits_from_a_hugging_face_folder_on_data_of_its_tokenizer(tmp_path, tiny_dataset):
    """prepare.py --tokenizer=<folder> makes data with the reference's tokenizer.json; train.py --init_from=inherit
    takes the folder as the reference, and refuses data of another tokenizer."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    import subprocess
    import sys
    from conftest import REPO, run_train
    ref = tmp_path / "ref"
    hf_reference(ref, "llama", transformers)
    (tmp_path / "text").mkdir()
    for i in range(3):
        (tmp_path / "text" / f"{i}.txt").write_text(real_text()[2000 * i: 2000 * (i + 1)] * 3)
    p = subprocess.run([sys.executable, "data/prepare.py", "--name=mine", f"--out_root={tmp_path}", "--workers=1",
                        f"--source=notes={tmp_path / 'text'}", f"--tokenizer={ref}"], cwd=REPO, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    meta = load_meta(str(tmp_path / "mine"))
    assert meta["tokenizer"] == f"hf:{ref}" and meta["vocab_size"] == 257 and meta["eot"] == 256
    args = ["--init_from=inherit", f"--inherit_from={ref}", "--inherit_n_layer=2", "--block_size=32",
            "--batch_size=4", "--max_iters=4", "--eval_interval=4", "--eval_iters=1", "--device=cpu", "--compile=False"]
    p = run_train(args + [f"--dataset={tmp_path / 'mine'}", f"--out_dir={tmp_path / 'run'}"])
    assert f"inherited 2 of 4 layers from {ref}" in p.stdout
    ck = torch.load(tmp_path / "run" / "ckpt_0000004.pt", weights_only=False)
    assert ck["model_args"]["n_layer"] == 2 and ck["model_args"]["rope_scaling"] == LLAMA3
    p = run_train(args + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / 'bytes'}"], check=False)
    assert p.returncode != 0 and "holds ids of tokenizer 'byte'" in p.stderr and "Traceback" not in p.stderr
