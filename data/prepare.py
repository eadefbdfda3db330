"""
Turn text sources into token files, one folder per dataset, one pair of files per domain:

    data/<name>/meta.json
    data/<name>/<domain>/train.bin, val.bin     (np.uint16, or uint32 when the vocabulary needs it)

The mixture of domains is chosen at train time (train.py's `mixture`), so nothing here weighs domains.

    python data/prepare.py                                   # offline default: data/pycorpus (code, prose, c)
    python data/prepare.py --name=mine --source code='src/**/*.py' --source prose='docs/**/*.md'
    python data/prepare.py --hf=openwebtext                  # needs `pip install datasets` and a network
    python data/prepare.py --tokenizer=byte                  # 256 byte ids, needs no tokenizer file

Documents stream through a pool of workers into the .bin files: the corpus is never held in memory. A document
goes to val when a hash of its id falls under val_fraction, so the split is stable across runs and machines.
"""

import argparse
import glob
import hashlib
import json
import os
import shutil
import sys
import sysconfig
from multiprocessing import Pool

import numpy as np
from tqdm import tqdm

DATA_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(DATA_DIR)
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
# where a local GPT-2 BPE ranks file (r50k_base.tiktoken) is looked for before tiktoken tries to download one
GPT2_RANKS_PATHS = [os.environ.get("NANOGROW_GPT2_RANKS", ""), os.path.join(DATA_DIR, "gpt2.tiktoken"),
                    os.path.join(REPO_DIR, "..", "shared", "data", "gpt2.tiktoken")]


# -------------------------------------------------------------------------------------------------------------
# Tokenizers

class ByteTokenizer:
    """UTF-8 bytes as ids 0..255; NUL (0), which text does not contain, separates documents."""
    name, n_vocab, eot = "byte", 256, 0

    def encode(self, text):
        return list(text.replace("\0", "").encode("utf-8"))

    def decode(self, ids):
        return bytes(int(i) for i in ids if 0 < int(i) < 256).decode("utf-8", errors="replace")

    def save_pretrained(self, path, model_max_length=None):
        """This tokenizer as Hugging Face files: a byte-level BPE without merges, so byte b (1..255) is id b, and
        id 0 is the special token <|endoftext|> (bos = eos), which decode(..., skip_special_tokens=True) drops."""
        enc = bytes_to_unicode()
        vocab = {HF_EOT: 0, **{enc[b]: b for b in range(1, 256)}}
        write_hf_tokenizer(path, vocab, [], 0, model_max_length)


class TiktokenTokenizer:
    def __init__(self, enc):
        self.enc, self.name, self.n_vocab, self.eot = enc, "gpt2", enc.n_vocab, enc.eot_token

    def encode(self, text):
        return self.enc.encode_ordinary(text)

    def decode(self, ids):
        return self.enc.decode([int(i) for i in ids])

    def __reduce__(self):  # workers rebuild it rather than pickling the Rust encoder
        return get_tokenizer, ("gpt2",)

    def save_pretrained(self, path, model_max_length=None):
        """GPT-2's tokenizer as Hugging Face files, built offline from the BPE ranks alone; it gives tiktoken's
        ids (tests/test_hf.py). The special token <|endoftext|> (50256) is bos and eos."""
        ranks = {b: self.enc.encode_single_token(b) for b in self.enc.token_byte_values()}
        enc = bytes_to_unicode()
        vocab = {"".join(enc[b] for b in token): rank for token, rank in ranks.items()}
        vocab[HF_EOT] = self.eot
        merges = [tuple("".join(enc[b] for b in part) for part in pair) for pair in bpe_merges(ranks)]
        write_hf_tokenizer(path, vocab, merges, self.eot, model_max_length)


def get_tokenizer(name):
    """'gpt2' (GPT-2 BPE through tiktoken, from a local ranks file when one is found) or 'byte'."""
    if name == "byte":
        return ByteTokenizer()
    if name != "gpt2":
        raise ValueError(f"unknown tokenizer {name!r}: use 'gpt2' or 'byte'")
    import tiktoken
    for path in GPT2_RANKS_PATHS:
        if path and os.path.isfile(path):
            from tiktoken.load import load_tiktoken_bpe
            from tiktoken_ext.openai_public import r50k_pat_str
            ranks = load_tiktoken_bpe(path, expected_hash=GPT2_RANKS_SHA256)
            enc = tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                                    special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)
            return TiktokenTokenizer(enc)
    try:
        return TiktokenTokenizer(tiktoken.get_encoding("gpt2"))
    except Exception as e:
        raise RuntimeError(
            f"cannot build the GPT-2 tokenizer: tiktoken could not download its ranks file ({type(e).__name__}) "
            f"and no local one was found at {[p for p in GPT2_RANKS_PATHS if p]}.\n"
            "Get r50k_base.tiktoken (sha256 306cd27f...) on a machine with a network "
            "(https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken, or from the openai-whisper "
            "sdist on PyPI: whisper/assets/gpt2.tiktoken), put it at data/gpt2.tiktoken or point "
            "NANOGROW_GPT2_RANKS at it; or use --tokenizer=byte.") from e


# Hugging Face tokenizer files, in GPT-2's byte-level BPE format: vocab.json maps each token (its bytes written
# with bytes_to_unicode's printable characters) to its id, merges.txt lists the merges in the order they apply,
# tokenizer_config.json names the class and special tokens; tokenizer.json (the same for the fast tokenizer) is
# written when the `tokenizers` package is installed. transformers' AutoTokenizer loads the folder.

HF_EOT = "<|endoftext|>"


def bytes_to_unicode():
    """GPT-2's map of the 256 byte values to printable characters, {byte: character}: printable Latin-1 bytes
    stand for themselves, the other 68 (control characters, space, ...) for chr(256), chr(257), ... in byte order."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(others)}}


def bpe_merges(ranks):
    """The merges of a byte-level BPE, in the order they apply, from its ranks {token bytes: id} (tiktoken's
    format, in which a merge's rank is its result's). Each token of two or more bytes is the merge of the two
    parts that BPE with the lower-ranked tokens leaves of it. [(left bytes, right bytes)]"""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = [token[i:i + 1] for i in range(len(token))]
        while len(parts) > 2:
            r, i = min((ranks.get(a + b, rank), i) for i, (a, b) in enumerate(zip(parts, parts[1:])))
            if r >= rank:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) != 2:
            raise ValueError(f"BPE ranks: token {token!r} (rank {rank}) is no merge of two lower-ranked tokens")
        merges.append(tuple(parts))
    return merges


def write_hf_tokenizer(path, vocab, merges, eot_id, model_max_length=None):
    """Write a byte-level BPE tokenizer to `path` as Hugging Face files: vocab {token string: id} (strings in
    bytes_to_unicode's characters, HF_EOT among them with id eot_id, the bos, eos and unk token), merges
    [(left, right)] in order of application, no prefix space, nothing added when encoding."""
    os.makedirs(path, exist_ok=True)
    vocab = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    with open(os.path.join(path, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(path, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special = {"bos_token": HF_EOT, "eos_token": HF_EOT, "unk_token": HF_EOT}
    added = {"content": HF_EOT, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
             "special": True}
    config = {"tokenizer_class": "GPT2Tokenizer", **special, "add_bos_token": False, "add_prefix_space": False,
              "clean_up_tokenization_spaces": False, "added_tokens_decoder": {str(eot_id): added}}
    if model_max_length:
        config["model_max_length"] = int(model_max_length)
    for name, obj in (("tokenizer_config.json", config), ("special_tokens_map.json", special)):
        with open(os.path.join(path, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
    try:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    except ImportError:
        return  # transformers builds the fast tokenizer from vocab.json and merges.txt
    tk = Tokenizer(models.BPE(vocab=vocab, merges=list(merges)))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's pre-tokenizer regex
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(HF_EOT, special=True, normalized=False)])
    tk.save(os.path.join(path, "tokenizer.json"))


# -------------------------------------------------------------------------------------------------------------
# Sources: each yields (doc_id, text) pairs, in a fixed order

def files_source(patterns, exclude=()):
    """Text files matching glob patterns (recursive '**' allowed), sorted so the order is reproducible."""
    paths = sorted({p for pat in patterns for p in glob.glob(os.path.expanduser(pat), recursive=True)
                    if os.path.isfile(p) and not any(x in p for x in exclude)})
    for p in paths:
        try:
            with open(p, encoding="utf-8") as f:
                yield p, f.read()
        except (UnicodeDecodeError, OSError):
            continue  # binary or unreadable: not text


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


def docstrings_source(patterns):
    for path, src in files_source(patterns):
        yield path, src, docstrings


def pycorpus_sources():
    """The offline default: real text found on any machine with Python, in three domains.
    code: Python sources of the standard library and installed packages; prose: their docstrings plus package
    docs and licences (and Debian's Python manual and GCIDE dictionary when installed); c: C headers."""
    py = [os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"),
          os.path.join(sysconfig.get_paths()["purelib"], "**", "*.py")]
    # tests, and generated tables that are Python only in name (the codecs' charmaps, packages' data/ folders:
    # near-copies of one another, which would put much the same text in train and val)
    not_code = ("/test/", "/tests/", "/idlelib/", "/lib2to3/", "/encodings/", "/data/")
    docs = ["/usr/share/doc/**/*.txt", "/usr/share/doc/**/copyright", "/usr/share/doc/python3*-doc/**/*.rst.txt",
            os.path.join(sysconfig.get_paths()["purelib"], "**", "LICENSE*")]

    def prose():
        yield from docstrings_source(py)
        yield from files_source(docs)
        yield from gcide_source()
    return {"code": lambda: files_source(py, exclude=not_code), "prose": prose,
            "c": lambda: files_source(["/usr/include/**/*.h"])}


def gcide_source():
    """Debian's dict-gcide (a large English dictionary), when installed; entries grouped a thousand at a time."""
    import gzip
    for path in sorted(glob.glob("/usr/share/dictd/gcide.dict.dz")):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            buf = []
            for i, line in enumerate(f):
                buf.append(line)
                if len(buf) == 20000:
                    yield f"{path}:{i}", "".join(buf)
                    buf = []
            if buf:
                yield f"{path}:end", "".join(buf)


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
    raw = text.encode("utf-8", "surrogatepass")
    ids = _TOKENIZER.encode(text)
    ids.append(_TOKENIZER.eot)
    return len(raw), ids, hashlib.sha1(raw).digest()[:8]


def is_val(digest, val_fraction):
    """The split is a function of the document's text, not of its name or position: the same on every run and
    machine, and a copy of a document can never sit on the other side of it (site-packages holds many files
    that are byte-identical under different names)."""
    return int.from_bytes(digest, "little") / 2 ** 64 < val_fraction


def write_domain(docs, out_dir, tokenizer, dtype, val_fraction, max_bytes, workers, desc):
    """Tokenize a stream of documents into out_dir/{train,val}.bin; returns the domain's token and byte counts."""
    os.makedirs(out_dir, exist_ok=True)
    counts = {"train_tokens": 0, "val_tokens": 0, "train_bytes": 0, "val_bytes": 0, "docs": 0, "duplicates": 0}
    seen = set()  # digests of the documents written: exact copies are dropped (8 bytes each, ~60 with the set)
    files = {s: open(os.path.join(out_dir, f"{s}.bin"), "wb") for s in ("train", "val")}

    def capped(it):  # stop reading once max_bytes of text went out (an estimate: characters ~ bytes)
        seen = 0
        for doc in it:
            if max_bytes and seen >= max_bytes:
                return
            seen += len(doc[1]) // (4 if len(doc) > 2 else 1)  # docstrings are roughly a quarter of a file
            yield doc
    with Pool(workers, initializer=_init_worker, initargs=(tokenizer.name,)) as pool, \
            tqdm(desc=desc, unit="B", unit_scale=True, total=max_bytes or None, disable=None) as bar:
        for nbytes, ids, digest in pool.imap(_encode, capped(docs), chunksize=16):
            if nbytes == 0:
                continue
            if digest in seen:
                counts["duplicates"] += 1
                continue
            seen.add(digest)
            split = "val" if is_val(digest, val_fraction) else "train"
            np.asarray(ids, dtype=dtype).tofile(files[split])
            counts[f"{split}_tokens"] += len(ids)
            counts[f"{split}_bytes"] += nbytes
            counts["docs"] += 1
            bar.update(nbytes)
    for f in files.values():
        f.close()
    return counts


def prepare(name, sources, tokenizer="gpt2", val_fraction=0.02, max_bytes=0, workers=None, out_root=DATA_DIR):
    """Build data/<name>/ from {domain: callable returning an iterator of (doc_id, text)}. The folder is written
    under a temporary name and renamed at the end, so an interrupted run never leaves a half-built dataset."""
    tok = get_tokenizer(tokenizer)
    dtype = np.uint16 if tok.n_vocab <= 2 ** 16 else np.uint32
    final = os.path.join(out_root, name)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    domains = {}
    for dom, make_docs in sources.items():
        counts = write_domain(make_docs(), os.path.join(tmp, dom), tok, dtype, val_fraction, max_bytes,
                              workers or os.cpu_count(), desc=f"{name}/{dom}")
        if counts["train_tokens"] == 0 or counts["val_tokens"] == 0:
            raise SystemExit(f"domain {dom!r} got {counts['train_tokens']} train and {counts['val_tokens']} val "
                             f"tokens: give it more documents or raise --val_fraction")
        domains[dom] = counts
    meta = {"tokenizer": tok.name, "vocab_size": tok.n_vocab, "dtype": np.dtype(dtype).name, "eot": tok.eot,
            "domains": domains}
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final, meta


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default=None, help="dataset folder under data/ (default: pycorpus, or the --hf name)")
    p.add_argument("--source", action="append", default=[], metavar="DOMAIN=GLOB",
                   help="a domain of local text files; repeat for several domains (GLOB may repeat, comma-separated)")
    p.add_argument("--hf", default=None, help="openwebtext | fineweb-edu | slimpajama (needs datasets + network)")
    p.add_argument("--tokenizer", default="gpt2", choices=["gpt2", "byte"])
    p.add_argument("--val_fraction", type=float, default=0.02)
    p.add_argument("--max_bytes", type=float, default=20e6, help="text per domain to read (0 = all)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--out_root", default=DATA_DIR)
    a = p.parse_args(argv)
    if a.source:
        sources = {}
        for s in a.source:
            dom, sep, pats = s.partition("=")
            if not sep or not dom or not pats:
                raise SystemExit(f"--source {s!r}: expected DOMAIN=GLOB, e.g. --source code='src/**/*.py'")
            sources[dom] = lambda pats=pats: files_source(pats.split(","))
        name = a.name or "custom"
    elif a.hf:
        sources, name = hf_sources(a.hf), a.name or a.hf
    else:
        sources, name = pycorpus_sources(), a.name or "pycorpus"
    path, meta = prepare(name, sources, a.tokenizer, a.val_fraction, int(a.max_bytes), a.workers, a.out_root)
    print(f"wrote {path}")
    for dom, c in meta["domains"].items():
        print(f"  {dom:>10}: {c['train_tokens']:>12,} train tokens, {c['val_tokens']:>10,} val tokens, {c['docs']:,} docs "
              f"({c['duplicates']:,} exact duplicates dropped)")


if __name__ == "__main__":
    sys.exit(main())
