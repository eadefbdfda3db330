import json
import os

import numpy as np
import pytest

from data import prepare
from data.loader import Batcher
from data.prepare import files_source, get_tokenizer

def test_gpt2_tokenizer_from_the_ranks_file_in_the_repository():
    tok = get_tokenizer("gpt2")
    assert tok.n_vocab == 50257 and tok.eot == 50256
    assert tok.encode("Hello world") == [15496, 995]  # GPT-2's own ids
    text = "def grow(model):\n    return stack(model, g=4)  # Gstack"
    assert tok.decode(tok.encode(text)) == text


def test_gpt2_tokenizer_unavailable_is_three_lines_with_the_fix(monkeypatch, tmp_path):
    """No ranks file and no network: what is missing, the one command that fixes it, and --tokenizer=byte."""
    import tiktoken
    monkeypatch.setattr(prepare, "GPT2_RANKS_FILE", str(tmp_path / "gpt2.tiktoken"))
    monkeypatch.delenv("NANOGROW_GPT2_RANKS", raising=False)
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: (_ for _ in ()).throw(ConnectionError("offline")))
    with pytest.raises(prepare.TokenizerError) as e:
        get_tokenizer("gpt2")
    lines = str(e.value).splitlines()
    assert len(lines) == 3, lines
    assert "gpt2.tiktoken is missing" in lines[0] and "could not download" in lines[0]
    assert lines[1].strip().startswith("fix: git checkout -- data/gpt2.tiktoken")
    assert "--tokenizer=byte" in lines[2]
    (tmp_path / "gpt2.tiktoken").write_bytes(b"not the ranks")  # a damaged copy is named as such
    with pytest.raises(prepare.TokenizerError, match="is not GPT-2's ranks file"):
        get_tokenizer("gpt2")
    with pytest.raises(ValueError, match="unknown tokenizer 'bpe'"):
        get_tokenizer("bpe")


def test_byte_tokenizer_round_trip():
    tok = get_tokenizer("byte")
    assert tok.decode(tok.encode("naïve café\n")) == "naïve café\n" and tok.n_vocab == 256


def test_prepare_writes_domains_streams_and_splits_stably(tmp_path):
    src = tmp_path / "src"
    for i in range(40):
        (src / ("a" if i % 2 else "b")).mkdir(parents=True, exist_ok=True)
        (src / ("a" if i % 2 else "b") / f"f{i}.txt").write_text(f"document {i}: " + "some words here " * (i + 5))
    sources = {d: (lambda d=d: files_source([str(src / d / "*.txt")])) for d in ("a", "b")}
    path, meta = prepare.prepare("ds", sources, tokenizer="byte", val_fraction=0.25, workers=2, out_root=str(tmp_path))
    assert json.load(open(os.path.join(path, "meta.json"))) == meta
    assert meta["tokenizer"] == "byte" and meta["dtype"] == "uint16" and set(meta["domains"]) == {"a", "b"}
    for d, c in meta["domains"].items():
        tr = np.fromfile(os.path.join(path, d, "train.bin"), dtype=np.uint16)
        va = np.fromfile(os.path.join(path, d, "val.bin"), dtype=np.uint16)
        assert len(tr) == c["train_tokens"] > 0 and len(va) == c["val_tokens"] > 0 and c["docs"] == 20
        assert c["train_bytes"] + c["val_bytes"] == c["train_tokens"] + c["val_tokens"] - c["docs"]  # + one eot each
        # every document lands whole in train or val, and the choice is a pure function of its id
        docs = get_tokenizer("byte").decode(np.concatenate([tr, va])).split("document ")
        assert len([x for x in docs if x]) == 20
    again, _ = prepare.prepare("ds2", sources, tokenizer="byte", val_fraction=0.25, workers=1, out_root=str(tmp_path))
    for d in ("a", "b"):
        assert open(os.path.join(path, d, "val.bin"), "rb").read() == open(os.path.join(again, d, "val.bin"), "rb").read()
    assert sorted(os.listdir(tmp_path)) == ["ds", "ds2", "src"]  # no temporary folder left behind


def test_prepare_drops_exact_copies_so_val_never_leaks_into_train(tmp_path):
    """site-packages holds byte-identical files under different names: one copy is kept, so a val document can
    never also be in train. A file name that is not UTF-8 is no problem."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i}.txt").write_text(f"document {i}: " + "words " * 50)
    for name in ("copy1.txt", "copy2.txt", "caf\udce9.txt"):  # the last as os.listdir gives a latin-1 name
        open(os.path.join(os.fsencode(str(src)), os.fsencode(name)), "wb").write(b"document 7: " + b"words " * 50)
    _, meta = prepare.prepare("ds", {"a": lambda: files_source([str(src / "*.txt")])}, tokenizer="byte",
                              val_fraction=0.3, workers=1, out_root=str(tmp_path))
    c = meta["domains"]["a"]
    assert c["docs"] == 30 and c["duplicates"] == 3
    eot = get_tokenizer("byte").eot
    docs = {}
    for s in ("train", "val"):
        ids = np.fromfile(tmp_path / "ds" / "a" / f"{s}.bin", dtype=np.uint16)
        docs[s] = [d.astype(np.uint8).tobytes() for d in np.split(ids, np.flatnonzero(ids == eot) + 1) if len(d)]
    assert len(docs["train"]) + len(docs["val"]) == 30 and docs["val"]
    assert sum(d.startswith(b"document 7:") for d in docs["train"] + docs["val"]) == 1


def test_prepare_refuses_a_domain_without_val_tokens(tmp_path):
    (tmp_path / "one.txt").write_text("a single short document")
    with pytest.raises(prepare.PrepareError, match="domain 'x': its val split is empty: none of its 1 documents"):
        prepare.prepare("bad", {"x": lambda: files_source([str(tmp_path / "one.txt")])}, tokenizer="byte",
                        val_fraction=0.0, workers=1, out_root=str(tmp_path))
    assert not os.path.exists(tmp_path / "bad")  # nothing half-built under the real name


def test_batches_are_a_pure_function_of_seed_and_step_and_split_over_ranks(tiny_dataset):
    b = Batcher(tiny_dataset, 16, 2, steps_batch=8, seed=3)
    x1, y1 = b.get("train", 7, micro=1)
    x2, _ = Batcher(tiny_dataset, 16, 2, steps_batch=8, seed=3).get("train", 7, micro=1)
    assert (x1 == x2).all() and (y1[:, :-1] == x1[:, 1:]).all()
    assert not (b.get("train", 8, micro=1)[0] == x1).all()
    one = np.concatenate([b.get("train", 7, micro=m)[0].numpy() for m in range(4)])           # 1 process, 4 micro
    two = np.concatenate([b.get("train", 7, micro=m, rank=r, world_size=2)[0].numpy()           # 2 ranks, 2 micro
                          for m in range(2) for r in range(2)])
    assert (one == two).all()


def test_mixture_proportions_are_honoured_per_sequence(tiny_dataset):
    b = Batcher(tiny_dataset, 16, 1, steps_batch=4000, mixture={"code": 0.3, "prose": 0.7})
    doms, _ = b._step_batch("train", 0)
    frac = np.bincount(doms, minlength=2) / len(doms)
    assert frac[b.domains.index("prose")] == pytest.approx(0.7, abs=0.03)
    only = Batcher(tiny_dataset, 16, 1, steps_batch=100, mixture={"code": 1.0})
    assert (only._step_batch("train", 5)[0] == only.domains.index("code")).all()


def test_domain_files_that_do_not_match_meta_counts_are_refused(tmp_path):
    """Two domain folders swapped on disk would train (and report per-domain losses) under the wrong names:
    meta.json's token counts catch it."""
    import shutil
    from conftest import real_text, write_dataset
    from data.loader import Batcher, DataError
    root = write_dataset(tmp_path / "d", real_text())
    Batcher(root, 32, 4)  # as written: fine
    os.rename(os.path.join(root, "code"), os.path.join(root, "tmp"))
    os.rename(os.path.join(root, "prose"), os.path.join(root, "code"))
    os.rename(os.path.join(root, "tmp"), os.path.join(root, "prose"))
    with pytest.raises(DataError, match=r"code/train.bin holds .* tokens but .*meta.json counts .* for domain "
                                        r"'code': the file is not the one prepare.py wrote"):
        Batcher(root, 32, 4)
    shutil.rmtree(root)
