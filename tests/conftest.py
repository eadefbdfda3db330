import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def write_dataset(root, domains, tokenizer="byte", val_fraction=0.1):
    """A dataset folder in data/prepare.py's layout from {domain: text}: the last val_fraction of each domain's
    tokens is its val split. Byte-level, so it needs no tokenizer file."""
    from data.prepare import get_tokenizer
    tok = get_tokenizer(tokenizer)
    meta = {"tokenizer": tok.name, "vocab_size": tok.n_vocab, "dtype": "uint16", "eot": tok.eot, "domains": {}}
    for dom, text in domains.items():
        ids = np.array(tok.encode(text), dtype=np.uint16)
        n_val = int(len(ids) * val_fraction)
        os.makedirs(os.path.join(root, dom), exist_ok=True)
        ids[:-n_val].tofile(os.path.join(root, dom, "train.bin"))
        ids[-n_val:].tofile(os.path.join(root, dom, "val.bin"))
        meta["domains"][dom] = {"train_tokens": len(ids) - n_val, "val_tokens": n_val,
                                "train_bytes": len(ids) - n_val, "val_bytes": n_val}
    with open(os.path.join(root, "meta.json"), "w") as f:
        json.dump(meta, f)
    return str(root)


def real_text():
    """Two real domains from the standard library: Python code, and English prose (its docstrings)."""
    import argparse, collections, email.message, json as js, logging, pathlib, string, textwrap
    mods = [argparse, collections, email.message, js, logging, pathlib, string, textwrap]
    code = "\n".join(inspect.getsource(m) for m in mods)
    prose = "\n\n".join(inspect.getdoc(obj) or "" for m in mods for _, obj in inspect.getmembers(m)
                        if inspect.isclass(obj) or inspect.isfunction(obj))
    return {"code": code, "prose": prose}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "tiny", real_text())


# a model and run small enough that a training process takes a few seconds on 2 CPU cores
TINY_RUN = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4", "--max_iters=20",
            "--eval_interval=10", "--eval_iters=2", "--log_interval=5", "--warmup_iters=2", "--device=cpu",
            "--compile=False", "--learning_rate=3e-3"]


# What libstdc++ prints when a gloo (CPU) worker aborts while its process exits. Seen once in CI (FSDP on 2 CPU
# processes, after the run had logged its last evaluation; 0 of 63 such launches failed here): a race in torch's
# gloo teardown, not in train.py.
GLOO_TEARDOWN_ABORT = "terminate called without an active exception"


def run_train(args, check=True, timeout=300, env=None, launcher=None):
    """Run train.py as a real process from the repo root; returns the CompletedProcess (stdout+stderr text).
    PYTHONFAULTHANDLER makes a native crash print the Python stack of every thread. A torchrun launch that died
    of the gloo teardown abort is run once more (runs are deterministic, so the retry must give the same
    results; every other failure fails the test)."""
    cmd = (launcher or [sys.executable]) + [os.path.join(REPO, "train.py")] + list(args)
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1", **(env or {}))
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=e)
    if launcher and p.returncode != 0 and GLOO_TEARDOWN_ABORT in p.stderr:
        import shutil
        import warnings
        warnings.warn(f"torchrun run hit the gloo teardown abort; running it again:\n{p.stderr[-2000:]}")
        out_dir = next(a.split("=", 1)[1] for a in args if a.startswith("--out_dir="))
        if "--init_from=resume" not in args:  # a fresh run again: train.py refuses an out_dir with checkpoints
            shutil.rmtree(out_dir)
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=e)
    if check and p.returncode != 0:
        raise AssertionError(f"train.py failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def read_metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]
