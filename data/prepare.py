"""
Turn text sources into token files, one folder per dataset, one pair of files per domain:

    data/<name>/meta.json
    data/<name>/<domain>/train.bin, val.bin     (np.uint16, or uint32 when the vocabulary needs it)

    python data/prepare.py                                   # offline default: data/pycorpus (code, prose, c)
    python data/prepare.py --name=mine --source code='src/**/*.py' --source prose='docs/**/*.md'
    python data/prepare.py --hf=openwebtext                  # needs `pip install datasets` and a network
    python data/prepare.py --name=pybytes --tokenizer=byte   # 256 byte ids instead of GPT-2 BPE

Documents stream through a pool of workers into the .bin files; a document goes to val when a hash of its text
falls under val_fraction, so the split is the same on every machine. A dataset is built in a temporary folder and
renamed into place when whole; an existing one is kept unless --overwrite. docs/training.md has the options.
"""

import argparse
import base64
import bz2
import errno
import glob
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import sys
import sysconfig
from multiprocessing import Pool

import numpy as np
from tqdm import tqdm

DATA_DIR = os.path.dirname(os.path.abspath(__file__))
GPT2_RANKS_FILE = os.path.join(DATA_DIR, "gpt2.tiktoken")  # ships with the repository (see its .LICENSE)
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"


class PrepareError(ValueError):
    """A dataset that cannot be built as asked (a bad name, a domain without text, an empty split, ...)."""


class TokenizerError(RuntimeError):
    """The GPT-2 tokenizer cannot be built here; the message says what is missing and the command that fixes it."""


# -------------------------------------------------------------------------------------------------------------
# Tokenizers

class ByteTokenizer:
    """UTF-8 bytes as ids 0..255; NUL (0), which text does not contain, separates documents. Its fingerprint is
    fixed: the SHA-256 of the 256 byte values, its whole "vocabulary"."""
    name, n_vocab, eot = "byte", 256, 0
    fingerprint = "sha256:" + hashlib.sha256(bytes(range(256))).hexdigest()

    def encode(self, text):
        return list(text.replace("\0", "").encode("utf-8"))

    def decode(self, ids):
        return bytes(int(i) for i in ids if 0 < int(i) < 256).decode("utf-8", errors="replace")


class TiktokenTokenizer:
    """GPT-2 BPE; its fingerprint is the SHA-256 of its ranks file (checked when the file is read)."""
    fingerprint = "sha256:" + GPT2_RANKS_SHA256

    def __init__(self, enc):
        self.enc, self.name, self.n_vocab, self.eot = enc, "gpt2", enc.n_vocab, enc.eot_token

    def encode(self, text):
        return self.enc.encode_ordinary(text)

    def decode(self, ids):
        return self.enc.decode([int(i) for i in ids])

    def __reduce__(self):  # workers rebuild it rather than pickling the Rust encoder
        return get_tokenizer, ("gpt2",)


class HFTokenizer:
    """A Hugging Face model folder's tokenizer.json (the `tokenizers` package), for data that a public checkpoint
    (e.g. a Llama for Inheritune) reads as it was trained to. Named 'hf:<folder>'; its fingerprint is the SHA-256
    of tokenizer.json, so the same file in another folder is the same tokenizer."""

    def __init__(self, folder):
        folder = os.path.abspath(folder)
        path = os.path.join(folder, "tokenizer.json")
        if not os.path.isfile(path):
            raise ValueError(f"--tokenizer={folder}: it has no tokenizer.json; transformers writes one: python -c "
                             f"\"from transformers import AutoTokenizer as T; T.from_pretrained('{folder}')"
                             f".save_pretrained('{folder}')\"")
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ImportError(f"{path} needs the tokenizers package: pip install tokenizers") from None
        self.tok, self.name = Tokenizer.from_file(path), "hf:" + folder
        self.n_vocab = self.tok.get_vocab_size(with_added_tokens=True)
        with open(path, "rb") as f:
            self.fingerprint = "sha256:" + hashlib.sha256(f.read()).hexdigest()
        self.eot = _eos_id(folder, self.tok)

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids):
        return self.tok.decode([int(i) for i in ids])

    def __reduce__(self):  # workers rebuild it from the file
        return get_tokenizer, (self.name,)


def _eos_id(folder, tok):
    """The end-of-sequence id that separates documents: the folder's eos_token (tokenizer_config.json), else the
    model's eos_token_id (config.json)."""
    for file in ("tokenizer_config.json", "config.json"):
        try:
            with open(os.path.join(folder, file)) as f:
                cfg = json.load(f)
        except (OSError, ValueError):
            continue
        eos = cfg.get("eos_token")
        eos = eos.get("content") if isinstance(eos, dict) else eos
        if isinstance(eos, str) and tok.token_to_id(eos) is not None:
            return tok.token_to_id(eos)
        if isinstance(cfg.get("eos_token_id"), int):
            return cfg["eos_token_id"]
        if isinstance(cfg.get("eos_token_id"), list) and cfg["eos_token_id"]:
            return cfg["eos_token_id"][0]
    raise ValueError(f"--tokenizer={folder}: no end-of-sequence token in its tokenizer_config.json or config.json "
                     f"(eos_token / eos_token_id), which separates documents")


def get_tokenizer(name):
    """'gpt2' (GPT-2 BPE through tiktoken, from the ranks file in the repository), 'byte', or a Hugging Face model
    folder ('hf:<folder>' or the folder itself) with a tokenizer.json."""
    if name == "byte":
        return ByteTokenizer()
    if name.startswith("hf:") or os.path.isdir(name):
        return HFTokenizer(name.removeprefix("hf:"))
    if name != "gpt2":
        raise ValueError(f"unknown tokenizer {name!r}: use 'gpt2', 'byte' or a Hugging Face model folder")
    try:
        import tiktoken
    except ImportError:
        raise TokenizerError(_gpt2_unavailable("the tiktoken package is missing", "pip install tiktoken")) from None
    from tiktoken_ext.openai_public import r50k_pat_str
    problems = []
    # GPT-2's BPE ranks: $NANOGROW_GPT2_RANKS (another copy, if wanted), then the repository's, then tiktoken's download
    for path in [p for p in (os.environ.get("NANOGROW_GPT2_RANKS", ""), GPT2_RANKS_FILE) if p]:
        try:
            return TiktokenTokenizer(tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=read_gpt2_ranks(
                path), special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257))
        except FileNotFoundError:
            problems.append(f"{os.path.relpath(path)} is missing")
        except ValueError as e:
            problems.append(str(e))
    try:
        return TiktokenTokenizer(tiktoken.get_encoding("gpt2"))
    except Exception as e:
        what = f"{'; '.join(problems)}, and tiktoken could not download the file ({type(e).__name__})"
        raise TokenizerError(_gpt2_unavailable(what, "git checkout -- data/gpt2.tiktoken   (in the repository: "
                                                     "the file ships with it)")) from e


def _gpt2_unavailable(what, fix):
    """Three lines: what is missing, the one command that fixes it, and the tokenizer that needs nothing."""
    return (f"cannot build the GPT-2 tokenizer: {what}\n  fix: {fix}\n"
            f"  or use 256 byte ids instead, which need no file: --tokenizer=byte")


def read_gpt2_ranks(path):
    """GPT-2's BPE ranks {token bytes: rank} from a tiktoken ranks file (one 'base64-token rank' per line),
    refused unless it is byte for byte the known file (its SHA-256)."""
    with open(path, "rb") as f:
        raw = f.read()
    if hashlib.sha256(raw).hexdigest() != GPT2_RANKS_SHA256:
        raise ValueError(f"{os.path.relpath(path)} is not GPT-2's ranks file (its sha256 is not "
                         f"{GPT2_RANKS_SHA256[:12]}...)")
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}


# -------------------------------------------------------------------------------------------------------------
# Sources: each yields (doc_id, text) pairs, in a fixed order; a file that is not text is yielded as
# (path, None, why) so that it is counted (meta.json) instead of silently missing

OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}  # compressed text, read as the text inside
# bytes that occur in text: tab, newline, form feed, escape, ..., printable ASCII, and every byte of UTF-8's
# multi-byte characters (whether they form valid UTF-8 is checked by decoding)
TEXT_BYTES = bytes([7, 8, 9, 10, 11, 12, 13, 27]) + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
MAX_NONTEXT = 0.3  # a file with more than this share of control bytes and invalid UTF-8 is binary (random
# bytes: over half; a Latin-1 text, whose accented letters are invalid UTF-8: a few percent)


def matching_files(patterns, exclude=()):
    """The files that glob patterns (recursive '**' allowed; a folder: every file under it) match, sorted so the
    order is reproducible."""
    patterns = [os.path.expanduser(p) for p in patterns]
    patterns = [os.path.join(p, "**", "*") if os.path.isdir(p) else p for p in patterns]
    return sorted({p for pat in patterns for p in glob.glob(pat, recursive=True)
                   if os.path.isfile(p) and not any(x in p for x in exclude)})


def files_source(patterns, exclude=()):
    """Text files matching glob patterns, .gz / .bz2 / .xz ones decompressed; binary and unreadable files are
    yielded as (path, None, 'binary' | 'unreadable')."""
    for p in matching_files(patterns, exclude):
        try:
            opener = OPENERS.get(os.path.splitext(p)[1], open)
            with opener(p, "rb") as f:
                raw = f.read()
        except (OSError, EOFError, lzma.LZMAError):  # a permission, or a damaged compressed file
            yield p, None, "unreadable"
            continue
        text = decode_text(raw)
        yield (p, text) if text is not None else (p, None, "binary")


def decode_text(raw):
    """The text in a file's bytes, or None when they are not text: a NUL byte (archives, images, a file of zeros,
    UTF-16), or more than MAX_NONTEXT of control bytes and invalid UTF-8 (such files can decode as UTF-8 and still
    be binary). A few bad bytes in a text (a Latin-1 name in a UTF-8 file) become U+FFFD."""
    if b"\0" in raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    nontext = len(raw.translate(None, TEXT_BYTES)) + text.count("\ufffd")
    return None if nontext > MAX_NONTEXT * max(1, len(text)) else text


def split_text(text, piece):
    """A long text as pieces of at most `piece` characters, cut at paragraph breaks (blank lines), else at line
    ends, else anywhere; joined, the pieces give the text back."""
    pieces, buf = [], ""
    for unit in _text_units(text, piece):
        if buf and len(buf) + len(unit) > piece:
            pieces.append(buf)
            buf = ""
        buf += unit
    return pieces + [buf] if buf else pieces


def _text_units(text, piece):
    for para in re.split(r"(?<=\n\n)", text):  # each paragraph keeps the blank line after it
        if len(para) <= piece:
            yield para
            continue
        for line in para.splitlines(keepends=True):
            yield from (line[i:i + piece] for i in range(0, len(line), piece)) if len(line) > piece else (line,)


def split_large(docs, split_bytes, piece_bytes, counts):
    """Documents over split_bytes characters (a book, a dictionary, a log: one file that would land whole in train
    or whole in val) as documents of about piece_bytes, so that each piece is split on its own and val gets its
    share. Documents whose text a worker computes (docstrings) pass as they are."""
    for doc in docs:
        if split_bytes and len(doc) == 2 and len(doc[1]) > split_bytes:
            counts["split_texts"] += 1
            for i, part in enumerate(split_text(doc[1], piece_bytes)):
                yield f"{doc[0]}#{i}", part
        else:
            yield doc


def docstrings(src):
    """English prose from Python source: its module, class and function docstrings (runs in the workers)."""
    import ast
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        return ""
    docs = [ast.get_docstring(n) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    return "\n\n".join(d for d in docs if d and len(d) > 80 and " " in d)


def pycorpus_sources():
    """The offline default: real text found on any machine with Python, in three domains.
    code: Python sources of the standard library and installed packages; prose: their docstrings plus package
    docs and licences (and Debian's Python manual when installed); c: C headers."""
    py = [os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"),
          os.path.join(sysconfig.get_paths()["purelib"], "**", "*.py")]
    # tests, and generated tables that are Python only in name (the codecs' charmaps, packages' data/ folders:
    # near-copies of one another, which would put much the same text in train and val)
    not_code = ("/test/", "/tests/", "/idlelib/", "/lib2to3/", "/encodings/", "/data/")
    docs = ["/usr/share/doc/**/*.txt", "/usr/share/doc/**/copyright", "/usr/share/doc/python3*-doc/**/*.rst.txt",
            os.path.join(sysconfig.get_paths()["purelib"], "**", "LICENSE*")]

    def prose():
        for path, src, *skipped in files_source(py):  # a worker turns each file into its docstrings
            yield (path, src, docstrings) if src is not None else (path, src, *skipped)
        yield from files_source(docs)
    return {"code": lambda: files_source(py, exclude=not_code), "prose": prose,
            "c": lambda: files_source(["/usr/include/**/*.h"])}


def hf_sources(name):
    """OpenWebText, FineWeb-Edu or SlimPajama through Hugging Face `datasets`, streamed (needs a network)."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise SystemExit(f"--hf={name} needs Hugging Face datasets: pip install datasets (and a network)") from None
    if name == "openwebtext":
        return {"owt": lambda: ((str(i), d["text"]) for i, d in
                                enumerate(load_dataset("Skylion007/openwebtext", split="train", streaming=True)))}
    if name == "fineweb-edu":
        return {"fineweb": lambda: ((d["id"], d["text"]) for d in load_dataset(
            "HuggingFaceFW/fineweb-edu", name="sample-10BT", split="train", streaming=True))}
    if name == "slimpajama":  # one domain per RedPajama source (the BiMix / Gstack data). Each domain streams the
        # dataset and keeps its own source's documents: simple, but with --max_bytes=0 that is one pass per domain
        domains = ["RedPajamaCommonCrawl", "RedPajamaC4", "RedPajamaGithub", "RedPajamaBook", "RedPajamaArXiv",
                   "RedPajamaWikipedia", "RedPajamaStackExchange"]

        def one(dom):
            ds = load_dataset("cerebras/SlimPajama-627B", split="train", streaming=True)
            return ((str(i), d["text"]) for i, d in enumerate(ds) if d["meta"]["redpajama_set_name"] == dom)
        return {d.removeprefix("RedPajama").lower(): (lambda d=d: one(d)) for d in domains}
    raise SystemExit(f"--hf={name}: unknown; use openwebtext, fineweb-edu or slimpajama")


# -------------------------------------------------------------------------------------------------------------
# Writing

_TOKENIZER = None


def _init_worker(tok_name):
    global _TOKENIZER
    _TOKENIZER = get_tokenizer(tok_name)


def _encode(doc):
    """(text bytes, token ids ending in EOT, digest of the text) of one document; runs in the workers."""
    doc_id, text, *transform = doc  # a source may name a function to apply first, e.g. docstrings
    if transform:
        text = transform[0](text)
    # NUL separates documents (the byte tokenizer's EOT): it is no text, so it is neither tokenized nor counted
    # as a byte of text (bits per byte divides by these bytes)
    raw = text.replace("\0", "").encode("utf-8", "surrogatepass")
    ids = _TOKENIZER.encode(text)
    ids.append(_TOKENIZER.eot)
    return len(raw), ids, hashlib.sha1(raw).digest()[:8]


def write_domain(docs, out_dir, tokenizer, dtype, val_fraction, max_bytes, workers, desc, split_bytes=0,
                 piece_bytes=4096):
    """Tokenize a stream of documents into out_dir/{train,val}.bin; returns the domain's token and byte counts,
    and how many files were skipped as binary or unreadable and how many large texts were split."""
    os.makedirs(out_dir, exist_ok=True)
    counts = {"train_tokens": 0, "val_tokens": 0, "train_bytes": 0, "val_bytes": 0, "docs": 0, "duplicates": 0,
              "skipped_binary": 0, "skipped_unreadable": 0, "split_texts": 0, "capped": False}
    seen = set()  # digests of the documents written: exact copies are dropped (8 bytes each, ~60 with the set)

    def texts(it):  # files that are not text are counted, not tokenized
        for doc in it:
            if doc[1] is None:
                counts[f"skipped_{doc[2]}"] += 1
            else:
                yield doc

    def capped(it):  # stop reading once max_bytes of text went out (an estimate: characters ~ bytes)
        seen = 0
        for doc in it:
            if max_bytes and seen >= max_bytes:
                counts["capped"] = True  # said by main(): the domain had more text than it read
                return
            seen += len(doc[1]) // (4 if len(doc) > 2 else 1)  # docstrings are roughly a quarter of a file
            yield doc
    stream = capped(split_large(texts(docs), split_bytes, piece_bytes, counts))
    try:  # a full disk raises as a buffer is flushed, the last one as the files close: name the domain
        with open(os.path.join(out_dir, "train.bin"), "wb") as train, \
                open(os.path.join(out_dir, "val.bin"), "wb") as val, \
                Pool(workers, initializer=_init_worker, initargs=(tokenizer.name,)) as pool, \
                tqdm(desc=desc, unit="B", unit_scale=True, total=max_bytes or None, disable=None) as bar:
            files = {"train": train, "val": val}
            for nbytes, ids, digest in pool.imap(_encode, stream, chunksize=16):
                if nbytes == 0:
                    continue
                if digest in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(digest)
                # the split is a function of the text, not of its name or position: the same on every run and
                # machine, and a copy can never sit on the other side of it (site-packages holds many identical files)
                split = "val" if int.from_bytes(digest, "little") / 2 ** 64 < val_fraction else "train"
                files[split].write(np.asarray(ids, dtype=dtype).tobytes())  # not tofile: its OSError has no errno
                counts[f"{split}_tokens"] += len(ids)
                counts[f"{split}_bytes"] += nbytes
                counts["docs"] += 1
                bar.update(nbytes)
    except OSError as e:
        e.filename = e.filename or out_dir
        raise
    return counts


def check_split(dom, counts, val_fraction):
    """A domain needs text on both sides of the split: say which side is empty, why, and what to do."""
    skipped = counts["skipped_binary"] + counts["skipped_unreadable"]
    if counts["docs"] == 0:
        raise PrepareError(f"domain {dom!r} has no text: no document was read"
                           + (f" ({counts['skipped_binary']} binary and {counts['skipped_unreadable']} unreadable "
                              f"files skipped)" if skipped else "") + "; check its source (--source DOMAIN=GLOB)")
    for split, fix in (("val", "raise --val_fraction"), ("train", "lower --val_fraction")):
        if counts[f"{split}_tokens"] == 0:
            raise PrepareError(
                f"domain {dom!r}: its {split} split is empty: none of its {counts['docs']} documents fell in {split} "
                f"(a document goes to val when a hash of its text is below --val_fraction={val_fraction}). Give it "
                f"more documents, {fix}, or lower --split_bytes and --piece_bytes so that its large files are cut "
                f"into more, smaller documents")


# -------------------------------------------------------------------------------------------------------------
# The dataset folder: names are names, nothing is deleted that prepare.py did not create

TEMP_MARK = ".prepare_in_progress"  # in every temporary folder prepare.py makes: only such folders are removed


def check_name(name, kind="dataset"):
    """A dataset (or domain) name is one folder name under out_root (the dataset): never empty, '.', '..', hidden,
    absolute or a path (each would put the data, and what replacing it deletes, somewhere else); a domain is not
    called meta.json either (the dataset's own file)."""
    seps = [sep for sep in ("/", "\\", os.sep, os.altsep) if sep]
    if (not name or name in (".", "..") or name.startswith(".") or os.path.isabs(name) or "\0" in name
            or any(sep in name for sep in seps) or (kind == "domain" and name == "meta.json")):
        flag, where = ("--name", "<out_root>/<name>") if kind == "dataset" else ("--source", "<dataset>/<domain>")
        raise PrepareError(f"{flag}: {kind} name {name!r} is not one folder name (not empty, '.', '..', hidden, "
                           f"absolute, containing a path separator{', or meta.json' if kind == 'domain' else ''}): "
                           f"the {kind} goes to {where}")


def existing_dataset(final):
    """The meta.json of a dataset already at `final`, None when there is nothing there; anything else there is not
    prepare.py's to replace."""
    if not os.path.lexists(final):
        return None
    meta_path = os.path.join(final, "meta.json")
    if os.path.islink(final) or not os.path.isdir(final) or not os.path.isfile(meta_path):
        raise PrepareError(f"{final} exists and is not a dataset (no meta.json): prepare.py replaces only datasets "
                           f"it wrote; choose another --name, or move it away yourself")
    try:
        with open(meta_path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return {}  # a dataset whose meta.json is damaged: replaceable with --overwrite


def remove_stale_temp_folders(out_root, name):
    """prepare.py's own temporary folders for `name` (.<name>.tmp.<pid>, .<name>.old.<pid>, marked inside) whose
    process is gone (killed mid-build)."""
    pattern = re.compile(rf"\.{re.escape(name)}\.(tmp|old)\.(\d+)$")
    for f in os.listdir(out_root) if os.path.isdir(out_root) else ():
        m, path = pattern.match(f), os.path.join(out_root, f)
        if m and os.path.isfile(os.path.join(path, TEMP_MARK)) and int(m[2]) != os.getpid() and not alive(int(m[2])):
            shutil.rmtree(path)


class BusyError(RuntimeError):
    """Another live process holds the lock of a run folder or a dataset."""


def hold_lock(path, what, fix):
    """Lock `path` (a file, created if missing) for this process, or raise BusyError naming the process that holds
    it. Returns release(), which removes it; keep it, the lock lasts as long as it does. An flock, not the file's
    existence, is the lock: the kernel drops it when the process dies, so a killed run leaves no stale lock."""
    import fcntl
    while True:
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            f.close()
            raise BusyError(f"{what} is in use by another process (pid {pid}); wait for it to finish or stop it, "
                            f"or {fix}") from None
        try:  # the holder may have released (removed) it as we opened it: then lock the new file
            if os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        f.close()
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()

    def release():
        if not f.closed:
            os.remove(path)
            f.close()
    return release


def alive(pid):
    """Whether process pid exists (runs.py asks it too, of a killed checkpoint writer)."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def prepare(name, sources, tokenizer="gpt2", val_fraction=0.02, max_bytes=0, workers=None, out_root=DATA_DIR,
            overwrite=False, split_bytes=256 * 1024, piece_bytes=4096, recipe=None):
    """Build <out_root>/<name>/ from {domain: callable returning an iterator of (doc_id, text)}; returns (folder,
    meta). Built in a temporary folder beside it, renamed into place when whole. An existing dataset is returned as
    it is when its meta.json records this `recipe` (the command that built it), refused otherwise (unless overwrite)."""
    check_name(name)
    if not out_root:
        raise PrepareError("--out_root is empty: give the folder that holds the datasets (default: data/)")
    if os.path.exists(out_root) and not os.path.isdir(out_root):
        raise PrepareError(f"--out_root={out_root} is a file, not a folder: give the folder that holds the datasets")
    for dom in sources:
        check_name(dom, "domain")
    if workers is not None and workers < 1:
        raise PrepareError(f"--workers={workers}: give at least 1 tokenizing process (default: one per CPU)")
    os.makedirs(out_root, exist_ok=True)
    release = hold_lock(os.path.join(out_root, f".{name}.lock"), f"dataset {name!r} in {out_root}",
                        "choose another --name")
    try:
        final = os.path.join(out_root, name)
        old = existing_dataset(final)
        if old is not None and not overwrite:
            if recipe is not None and old.get("recipe") == recipe:
                return final, dict(old, kept=True)
            raise PrepareError(f"{final} already holds a dataset" + (f" (tokenizer {old.get('tokenizer')!r}, domains "
                               f"{', '.join(old.get('domains', {}))})" if old else "")
                               + "; pass --overwrite to replace it, or choose another --name")
        remove_stale_temp_folders(out_root, name)
        try:
            tok = get_tokenizer(tokenizer)
        except (ValueError, ImportError) as e:  # an unknown name, a folder without tokenizer.json, no tokenizers
            raise PrepareError(str(e)) from None
        dtype = np.uint16 if tok.n_vocab <= 2 ** 16 else np.uint32
        tmp = os.path.join(out_root, f".{name}.tmp.{os.getpid()}")
        os.mkdir(tmp)  # fails if it exists: this folder is ours alone
        open(os.path.join(tmp, TEMP_MARK), "w").close()
        try:
            domains = {}
            for dom, make_docs in sources.items():
                def write(split_at, piece):
                    return write_domain(make_docs(), os.path.join(tmp, dom), tok, dtype, val_fraction, max_bytes,
                                        workers or os.cpu_count(), desc=f"{name}/{dom}", split_bytes=split_at,
                                        piece_bytes=piece)
                counts = write(split_bytes, piece_bytes)
                if val_fraction and split_bytes and counts["docs"] and not counts["val_tokens"]:
                    # too few documents for the val split (a small folder of files): cut the texts into pieces, about
                    # 5 / val_fraction of them (at least 256 bytes each), and write the domain again
                    few, size = counts["docs"], counts["train_bytes"] + counts["val_bytes"]
                    piece = max(256, min(piece_bytes, int(size * val_fraction / 5)))
                    counts = write(piece, piece)
                    if counts["docs"] > few:  # (texts a worker computes, such as docstrings, are not cut)
                        print(f"{name}/{dom}: its {few} documents gave no val split, so its texts were cut into "
                              f"{counts['docs']} documents of about {piece} bytes")
                check_split(dom, counts, val_fraction)
                domains[dom] = counts
            meta = {"tokenizer": tok.name, "vocab_size": tok.n_vocab, "tokenizer_fingerprint": tok.fingerprint,
                    "dtype": np.dtype(dtype).name, "eot": tok.eot, "domains": domains,
                    **({"recipe": recipe} if recipe is not None else {})}
            with open(os.path.join(tmp, "meta.json"), "w") as f:
                json.dump(meta, f, indent=2)
            os.remove(os.path.join(tmp, TEMP_MARK))
            if old is not None:  # the old dataset is moved aside first, then removed
                aside = os.path.join(out_root, f".{name}.old.{os.getpid()}")
                open(os.path.join(final, TEMP_MARK), "w").close()  # marks it as ours to delete, should we be killed now
                os.rename(final, aside)
            os.rename(tmp, final)
            if old is not None:
                shutil.rmtree(aside)
        except BaseException:  # a failure or Ctrl-C: nothing half-built stays behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final, meta
    finally:
        release()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default=None, help="dataset folder under out_root (default: pycorpus, custom with "
                                                "--source, or the --hf name)")
    p.add_argument("--source", action="append", default=[], metavar="DOMAIN=GLOB",
                   help="a domain of local text files; repeat for several domains (GLOB may repeat, comma-separated)")
    p.add_argument("--hf", default=None, help="openwebtext | fineweb-edu | slimpajama (needs datasets + network)")
    p.add_argument("--tokenizer", default="gpt2", help="gpt2, byte, or a Hugging Face model folder with a "
                   "tokenizer.json: the tokenizer of a checkpoint to inherit from (default: %(default)s)")
    p.add_argument("--val_fraction", type=float, default=0.02, help="share of documents in val (default: %(default)s)")
    p.add_argument("--max_bytes", type=float, default=20e6, help="text per domain to read, 0 = all (default: 20e6)")
    p.add_argument("--split_bytes", type=float, default=256 * 1024,
                   help="a text longer than this is cut into documents of about --piece_bytes (0 = never; "
                        "default: %(default)d)")
    p.add_argument("--piece_bytes", type=float, default=4096, help="(default: %(default)d)")
    p.add_argument("--workers", type=int, default=None, help="tokenizing processes (default: one per CPU)")
    p.add_argument("--out_root", default=DATA_DIR, help="where dataset folders go (default: the repository's data/)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of this name")
    a = p.parse_args(argv)
    name = None
    try:
        sources, name = _sources(a)
        recipe = {"sources": a.source or (f"hf:{a.hf}" if a.hf else "pycorpus"), "tokenizer": a.tokenizer,
                  "val_fraction": a.val_fraction, "max_bytes": int(a.max_bytes), "split_bytes": int(a.split_bytes),
                  "piece_bytes": int(a.piece_bytes)}
        if a.piece_bytes < 1 or a.split_bytes < 0 or not 0 <= a.val_fraction < 1:
            raise PrepareError("--piece_bytes must be >= 1, --split_bytes >= 0 and --val_fraction in [0, 1)")
        path, meta = prepare(name, sources, a.tokenizer, a.val_fraction, int(a.max_bytes), a.workers, a.out_root,
                             a.overwrite, int(a.split_bytes), int(a.piece_bytes), recipe)
    except (PrepareError, TokenizerError, BusyError) as e:
        raise SystemExit(f"prepare.py: {e}") from None
    except ConnectionError as e:  # --hf without a network (the unfinished dataset is gone already)
        raise SystemExit(f"prepare.py: cannot reach the Hugging Face Hub ({e}): --hf needs a network; offline, build "
                         f"the default corpus (python data/prepare.py) or one of your own files (--source)") from None
    except OSError as e:  # a full, read-only or foreign disk: one line (the unfinished dataset is gone already)
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES):
            raise
        where, free = (e.filename or a.out_root).replace(f".{name}.tmp.{os.getpid()}", str(name)), ""
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            folder = os.path.abspath(where)
            while not os.path.isdir(folder):
                folder = os.path.dirname(folder)
            free = f" ({shutil.disk_usage(folder).free / 2 ** 20:,.1f} MiB free there)"
        if e.errno == errno.EFBIG:
            free = " (larger than the file size limit: see ulimit -f)"
        final = os.path.join(a.out_root, name or "")
        kept = f"; the dataset already in {final} is intact" if name and os.path.isfile(f"{final}/meta.json") else ""
        raise SystemExit(f"prepare.py: {e.strerror} writing {where}{free}; nothing half-built was left behind{kept}: "
                         f"make room and run it again") from None
    if meta.get("kept"):
        print(f"{path} holds a dataset built with these settings already: kept (--overwrite rebuilds it)")
        return 0
    print(f"wrote {path} (tokenizer {meta['tokenizer']}, {meta['vocab_size']:,} ids)")
    for dom, c in meta["domains"].items():
        print(f"  {dom:>10}: {c['train_tokens']:>12,} train tokens, {c['val_tokens']:>10,} val tokens, {c['docs']:,} "
              f"docs ({c['duplicates']:,} exact duplicates dropped"
              + (f", {c['split_texts']:,} large text(s) cut into documents" if c["split_texts"] else "")
              + (f", {c['skipped_binary']:,} binary files skipped" if c["skipped_binary"] else "")
              + (f", {c['skipped_unreadable']:,} unreadable files skipped" if c["skipped_unreadable"] else "") + ")"
              + (f"; stopped at --max_bytes={a.max_bytes:g} with more text left (--max_bytes=0 reads it all)"
                 if c.get("capped") else ""))
    return 0


def _sources(a):
    if a.source:
        sources = {}
        for s in a.source:
            dom, sep, pats = s.partition("=")
            if not sep or not dom or not pats:
                raise PrepareError(f"--source {s!r}: expected DOMAIN=GLOB, e.g. --source code='src/**/*.py'")
            if not matching_files(pats.split(",")):
                raise PrepareError(f"--source {s!r}: no file matches {pats!r} (relative to {os.getcwd()}; quote the "
                                   f"pattern so that the shell leaves '**' to prepare.py)")
            sources[dom] = lambda pats=pats: files_source(pats.split(","))
        return sources, "custom" if a.name is None else a.name  # --name= (empty) is refused by check_name
    if a.hf:
        return hf_sources(a.hf), a.hf if a.name is None else a.name
    return pycorpus_sources(), "pycorpus" if a.name is None else a.name


if __name__ == "__main__":
    sys.exit(main())
