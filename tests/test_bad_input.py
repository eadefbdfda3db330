"""The bad-input battery: one test per item. Nothing lost (prepare.py deletes only what it created),
nothing silently wrong (settings out of range, a resumed model that is not the one asked for, a checkpoint of
another tokenizer, binary files read as text), and one message instead of a traceback. Everything happens in
temporary folders; most tests run in-process, and the few real processes are tiny runs."""
import errno
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, TINY_RUN, run_train, write_dataset, real_text
from configurator import ConfigError, check_train_settings, defaults_from_script, user_error_message
from data import prepare
from data.loader import Batcher, DataError, check_tokenizer, domain_loss, load_meta, tokenizer_record
from data.prepare import PrepareError, files_source
from runs import CheckpointError, checkpoint_paths, load_checkpoint, save_checkpoint

TRAIN_DEFAULTS = defaults_from_script(os.path.join(REPO, "train.py"))


def texts(folder, n=40, words=60):
    """n small text files, enough documents for a val split at val_fraction=0.2."""
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        with open(os.path.join(folder, f"doc{i}.txt"), "w") as f:
            f.write(f"document {i}: " + " ".join(f"word{(i * 7 + j) % 97}" for j in range(words)) + "\n")
    return str(folder)


def run_prepare(*args):
    """data/prepare.py's command line, in this process (workers=1)."""
    return prepare.main(list(args) + ["--tokenizer=byte", "--workers=1"])


def snapshot(root):
    """Every file and folder under root, with file contents: what must survive a refused command."""
    out = {}
    for d, dirs, files in os.walk(root):
        out.update({os.path.join(d, x): None for x in dirs})
        out.update({os.path.join(d, f): open(os.path.join(d, f), "rb").read() for f in files})
    return out


# --- 1. a name is a name: nothing outside data/<name> is ever deleted ---------------------------------------------

@pytest.mark.parametrize("name", [".", "..", "ABSOLUTE", "a/b", "../x", "", ".hidden"])
def test_1_names_that_are_not_one_folder_name_are_refused_and_nothing_is_deleted(tmp_path, name):
    """`--name=.` used to delete the whole data/ folder, and `--name=..` the folder above it."""
    root = tmp_path / "work"
    data = root / "data"
    texts(root / "src", n=5)
    (data / "keep").mkdir(parents=True)
    (data / "keep" / "meta.json").write_text("{}")
    (data / "prepare.py").write_text("# a file beside the datasets")
    (root / "unrelated.txt").write_text("beside data/")
    name = str(tmp_path / "elsewhere") if name == "ABSOLUTE" else name
    if name.startswith(str(tmp_path)):
        os.makedirs(name)
        open(os.path.join(name, "mine.txt"), "w").write("an absolute folder that is not a dataset")
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit, match=r"prepare.py: --name: dataset name .* is not one folder name"):
        run_prepare(f"--name={name}", f"--out_root={data}", f"--source=a={root / 'src'}/*.txt", "--overwrite")
    assert snapshot(tmp_path) == before


def test_1_only_a_dataset_is_replaced_with_overwrite(tmp_path):
    """A folder of the dataset's name that prepare.py did not write (no meta.json) is never deleted."""
    src = texts(tmp_path / "src")
    (tmp_path / "data" / "mine").mkdir(parents=True)
    (tmp_path / "data" / "mine" / "notes.txt").write_text("my own folder")
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit, match="exists and is not a dataset \\(no meta.json\\): prepare.py replaces only"):
        run_prepare("--name=mine", f"--out_root={tmp_path / 'data'}", f"--source=a={src}/*.txt", "--overwrite")
    assert snapshot(tmp_path) == before


# --- 2. an existing dataset is kept; temporary folders never stay behind -----------------------------------------

def test_2_an_existing_dataset_is_kept_unless_overwrite(tmp_path, capsys):
    src, data = texts(tmp_path / "src"), str(tmp_path / "data")
    args = ["--name=ds", f"--out_root={data}", f"--source=a={src}/*.txt", "--val_fraction=0.2"]
    run_prepare(*args)
    first = snapshot(tmp_path / "data")
    run_prepare(*args)  # the same command again: kept, and said so
    assert "built with these settings already: kept" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="data/ds already holds a dataset \\(tokenizer 'byte', domains a\\); pass "
                                         "--overwrite to replace it"):
        run_prepare(*args[:-1], "--val_fraction=0.3")  # another recipe under the same name
    assert snapshot(tmp_path / "data") == first
    run_prepare(*args[:-1], "--val_fraction=0.3", "--overwrite")
    assert load_meta(os.path.join(data, "ds"))["recipe"]["val_fraction"] == 0.3
    assert os.listdir(data) == ["ds"]  # the old dataset moved aside and removed, no temporary folder left


def test_2_a_failed_build_leaves_nothing_and_a_killed_ones_folder_goes_on_the_next_start(tmp_path):
    src, data = texts(tmp_path / "src"), tmp_path / "data"

    def broken():
        yield from files_source([f"{src}/*.txt"])
        raise OSError(errno.EIO, "the disk went away")
    with pytest.raises(OSError, match="the disk went away"):
        prepare.prepare("ds", {"a": broken}, tokenizer="byte", workers=1, out_root=str(data))
    assert os.listdir(data) == []
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer exists: a killed prepare.py's temporary folder
    stale = data / f".ds.tmp.{dead.pid}"
    (stale / "a").mkdir(parents=True)
    (stale / prepare.TEMP_MARK).write_text("")
    (stale / "a" / "train.bin").write_bytes(b"\x01\x00" * 1000)
    not_ours = data / f".ds.tmp.{dead.pid + 1}"  # the same pattern, but without prepare.py's mark: left alone
    not_ours.mkdir()
    prepare.prepare("ds", {"a": lambda: files_source([f"{src}/*.txt"])}, tokenizer="byte", val_fraction=0.2,
                    workers=1, out_root=str(data))
    assert sorted(os.listdir(data)) == sorted(["ds", not_ours.name])


# --- 3. a negative min_lr, and every other setting out of its range --------------------------------------------------

@pytest.mark.parametrize("override,msg", [
    ({"min_lr": -1e-4}, "min_lr=-0.0001: must be >= 0 and <= learning_rate=0.002"),
    ({"min_lr": 3e-3}, "min_lr=0.003: must be <= learning_rate=0.002"),
    ({"learning_rate": -1.0}, "learning_rate=-1.0: must be >= 0"),
    ({"batch_size": 0}, "batch_size=0: must be an integer >= 1"),
    ({"eval_interval": 0}, "eval_interval=0: must be an integer >= 1"),
    ({"eval_iters": 0}, "eval_iters=0: must be an integer >= 1"),
    ({"log_interval": -5}, "log_interval=-5: must be an integer >= 1"),
    ({"block_size": 0}, "block_size=0: must be an integer >= 1"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps=0: must be an integer >= 1"),
    ({"max_iters": -1}, "max_iters=-1: must be >= 0"),
    ({"beta2": 1.0}, "beta2=1.0: must be in \\[0, 1\\)"),
    ({"dropout": -0.1}, "dropout=-0.1: must be in \\[0, 1\\)"),
    ({"lr_decay_iters": 0}, "lr_decay_iters=0: must be None or an integer >= 1"),
    ({"grow_learning_rate": 1e-5}, "min_lr=0.0001: must be <= grow_learning_rate=1e-05"),
    ({"grow_op": "stack"}, "grow_op='stack': must be one of 'direct', 'zero', 'random', 'learn'"),
])
def test_3_and_10_settings_out_of_range_are_named_with_their_range(override, msg):
    with pytest.raises(ConfigError, match=msg):
        check_train_settings({**TRAIN_DEFAULTS, **override})
    assert check_train_settings({**TRAIN_DEFAULTS, "max_tokens": 2e4})["max_tokens"] == 20000


@pytest.mark.parametrize("bad,msg", [
    ("--min_lr=-1e-4", "train.py: min_lr=-0.0001: must be >= 0"),  # once: the lr went negative, exit 0
    ("--n_embd=30", "train.py: model settings: n_embd=30 is not divisible by n_head=4"),
])
def test_3_and_10_train_py_refuses_before_building_anything(tmp_path, tiny_dataset, bad, msg):
    p = run_train([f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / 'o'}", "--device=cpu", "--n_head=4", bad],
                  check=False)
    assert p.returncode != 0 and msg in p.stderr and "Traceback" not in p.stderr
    assert not os.path.exists(tmp_path / "o")


# --- 4 and 5: resume keeps the run's model; checkpoints of another tokenizer are refused ------------------------------

@pytest.fixture(scope="module")
def byte_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("byte_run") / "run"
    run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--max_iters=2", "--eval_interval=2"])
    return out


def test_4_resume_refuses_a_model_setting_that_would_change_the_model(byte_run):
    before = snapshot(byte_run)
    p = run_train([f"--out_dir={byte_run}", "--init_from=resume", "--n_layer=4", "--n_embd=32"], check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert (f"init_from='resume' continues the model of {byte_run}, which these settings would change: n_layer=4 "
            f"(the run's: 2). Drop them") in p.stderr  # n_embd=32 is the run's own: no clash
    assert snapshot(byte_run) == before
    assert json.load(open(byte_run / "config.json"))["n_layer"] == 2


def test_4_a_grown_run_records_its_model_and_takes_the_source_block_size(byte_run, tiny_dataset, tmp_path):
    """config.json records the model actually trained (rerunning it builds that model), and init_from='grow'
    takes the source's block_size (32 here; the default, 128, is longer than its context)."""
    out = tmp_path / "grown"
    p = run_train([f"--dataset={tiny_dataset}", f"--out_dir={out}", "--init_from=grow", f"--grow_from={byte_run}",
                   "--grow_factor=2", "--max_iters=1", "--eval_interval=1", "--eval_iters=1", "--batch_size=2",
                   "--device=cpu", "--n_layer=3"])
    assert f"block_size=32: the context of {byte_run}'s model" in p.stdout
    assert "settings are ignored: n_layer=3 (the model's: 4)" in p.stdout
    cfg = json.load(open(out / "config.json"))
    assert (cfg["n_layer"], cfg["n_embd"], cfg["block_size"], cfg["vocab_size"]) == (4, 32, 32, 256)
    assert load_checkpoint(checkpoint_paths(str(out))[-1])["model_args"]["n_layer"] == 4


def test_5_a_checkpoint_of_another_tokenizer_is_refused_by_name(byte_run, tmp_path):
    gpt2_data = write_dataset(tmp_path / "gpt2", {k: v[:3000] for k, v in real_text().items()}, tokenizer="gpt2")
    ckpt = load_checkpoint(checkpoint_paths(str(byte_run))[-1])
    assert ckpt["tokenizer"] == {"kind": "byte", "vocab_size": 256, "fingerprint": None}  # conftest's dataset
    with pytest.raises(DataError, match="was trained with tokenizer 'byte' \\(256 tokens\\), but dataset .* holds "
                                        "ids of tokenizer 'gpt2' \\(50257 tokens\\) \\(kind, vocab_size differ\\)"):
        check_tokenizer(ckpt, load_meta(gpt2_data), "checkpoint X", gpt2_data)
    # the same kind with another ranks file is refused on the fingerprint
    meta = load_meta(gpt2_data)
    with pytest.raises(DataError, match="fingerprint differ"):
        check_tokenizer({"tokenizer": dict(tokenizer_record(meta), fingerprint="sha256:0")},
                        dict(meta, tokenizer_fingerprint="sha256:1"), "checkpoint X", gpt2_data)
    # a real resume: refused before it trains
    p = run_train([f"--out_dir={byte_run}", "--init_from=resume", f"--dataset={gpt2_data}"], check=False)
    assert p.returncode != 0 and "was trained with tokenizer 'byte'" in p.stderr and "Traceback" not in p.stderr


def test_6_binary_files_are_skipped_and_counted_and_nul_is_not_counted_as_text(tmp_path):
    src = texts(tmp_path / "src", n=30)
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:  # a tar of text files: its headers are NUL-padded
        tar.add(os.path.join(src, "doc0.txt"), arcname="doc0.txt")
    open(os.path.join(src, "archive.txt"), "wb").write(buf.getvalue())
    open(os.path.join(src, "zeros.txt"), "wb").write(bytes(4096))
    rng = np.random.default_rng(0)
    noise = rng.integers(1, 32, 4096, dtype=np.uint8).tobytes()  # control bytes: valid UTF-8, not text
    open(os.path.join(src, "noise.txt"), "wb").write(noise)
    open(os.path.join(src, "latin1.txt"), "wb").write("a café in Zürich, ".encode("latin-1") * 50)  # text, a few bad bytes
    _, meta = prepare.prepare("ds", {"a": lambda: files_source([f"{src}/*.txt"])}, tokenizer="byte",
                              val_fraction=0.2, workers=1, out_root=str(tmp_path / "data"))
    c = meta["domains"]["a"]
    assert c["skipped_binary"] == 3 and c["docs"] == 31 and c["skipped_unreadable"] == 0
    assert prepare.decode_text(b"text with a NUL\x00 inside") is None
    ids = np.concatenate([np.fromfile(tmp_path / "data" / "ds" / "a" / f"{s}.bin", dtype=np.uint16)
                          for s in ("train", "val")])
    assert (ids == 0).sum() == c["docs"]  # the only NULs are the documents' EOTs
    # NUL inside a document (a stream from another source) is neither tokenized nor counted as a byte of text
    prepare._init_worker("byte")
    nbytes, toks, _ = prepare._encode(("doc", "ab\0\0cd"))
    assert nbytes == 4 and toks == [97, 98, 99, 100, 0]


# --- 7-9 are in test_data.py (domain files against meta.json's counts) and test_reliability.py (the digest covers
# counters and settings; a killed writer's temp file is removed by the next save).


# --- 10. one message instead of a traceback ---------------------------------------------------------------------------

def test_10_invalid_meta_json_and_zero_eval_batches_are_named(tmp_path, tiny_dataset):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "meta.json").write_text('{"vocab_size": 256,')
    with pytest.raises(DataError, match="meta.json is not valid JSON .* at line 1, column \\d+\\): it was edited or "
                                        "cut short; rebuild the dataset"):
        load_meta(str(bad))
    from model import GPT, GPTConfig
    model = GPT(GPTConfig(block_size=16, vocab_size=256, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="iters=0: need at least 1 batch"):  # not a nan read as divergence
        domain_loss(model, Batcher(tiny_dataset, 16, 2), "code", "val", iters=0)


def test_10_a_full_disk_is_one_message_naming_the_folder_and_its_free_space(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt_0000010.pt")

    def disk_full(obj, f):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match=f"no space left to write checkpoint {path}: {tmp_path} has [0-9,.]+ "
                                              f"MiB free and it needs at least .* continue with --init_from=resume"):
        save_checkpoint({"model": {}, "model_args": {}}, path)
    assert os.listdir(tmp_path) == []  # the half-written temp file is gone: it is what filled the disk
    # anywhere else (metrics, config.json): the excepthook's message, with the file or out_dir
    err = OSError(errno.ENOSPC, "No space left on device")
    msg = user_error_message(err, (ConfigError,), folder=str(tmp_path))
    assert msg.startswith(f"no space left on the device writing {tmp_path} (") and "MiB free there)" in msg
    assert user_error_message(OSError(errno.EROFS, "ro", "out/metrics.jsonl"), ()) == \
        "read-only file system writing out/metrics.jsonl"
    assert user_error_message(KeyError("a bug"), (ConfigError,)) is None  # a bug keeps its traceback
    assert user_error_message(ConfigError("bad"), (ConfigError,)) == "bad"


def test_10_the_excepthook_prints_one_line(tmp_path):
    """A real process: the hook train.py installs turns a full disk into one line on stderr."""
    code = ("import errno, sys; sys.path.insert(0, %r); from configurator import install_error_hook; "
            "install_error_hook('train.py', (), folder=lambda: %r); "
            "raise OSError(errno.ENOSPC, 'No space left on device')" % (REPO, str(tmp_path)))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.startswith(f"train.py: no space left on the device writing {tmp_path}")
    assert len(p.stderr.strip().splitlines()) == 1


# --- 11. compressed sources; one big file split into documents so that val gets its share -----------------------------

def test_11_compressed_text_is_read_and_a_single_large_file_gets_a_val_share(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    book = "\n\n".join(f"Paragraph {i}. " + "The quick brown fox jumps over the lazy dog. " * 8 for i in range(900))
    for ext, opener in ((".gz", gzip.open), (".bz2", __import__("bz2").open), (".xz", __import__("lzma").open)):
        with opener(src / f"small{ext}", "wt", encoding="utf-8") as f:
            f.write(f"compressed with {ext}")
    (src / "book.txt").write_text(book)
    data = tmp_path / "data"
    _, meta = prepare.prepare("ds", {"books": lambda: files_source([f"{src}/book.txt"])}, tokenizer="byte",
                              val_fraction=0.05, workers=1, out_root=str(data), split_bytes=64000, piece_bytes=2048)
    c = meta["domains"]["books"]
    assert c["split_texts"] == 1 and c["docs"] > 100
    assert 0.02 < c["val_bytes"] / (c["train_bytes"] + c["val_bytes"]) < 0.09  # about its 5%, not all or nothing
    text = "".join(doc[1] for doc in files_source([f"{src}/small.*"]))
    assert text == "compressed with .bz2compressed with .gzcompressed with .xz"
    assert "".join(prepare.split_text(book, 2048)) == book  # cutting loses nothing
    assert max(len(p) for p in prepare.split_text(book, 2048)) <= 2048
    with pytest.raises(PrepareError, match="domain 'books': its val split is empty: none of its 1 documents fell in "
                                           "val .* lower --split_bytes and --piece_bytes"):
        prepare.prepare("one", {"books": lambda: files_source([f"{src}/book.txt"])}, tokenizer="byte",
                        val_fraction=0.05, workers=1, out_root=str(data), split_bytes=0)
    with pytest.raises(SystemExit, match="--source 'a=.*nothing/\\*.gz': no file matches"):
        run_prepare("--name=x", f"--out_root={data}", f"--source=a={tmp_path}/nothing/*.gz")
