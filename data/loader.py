"""
Reading token files: validation, deterministic batches, and per-domain losses.

Batches are a pure function of (seed, split, step): the global batch of a step is drawn once from
np.random.default_rng([seed, split, step]) and every (micro-step, rank) takes its own slice of it. So
 - resuming needs no sampler state beyond the step number, and continues exactly;
 - one process with gradient accumulation and N DDP ranks with 1/N of the accumulation see the same sequences;
 - a mixture is honoured per sequence: each sequence's domain is drawn with the mixture's probabilities.
"""

import json
import math
import os

import numpy as np
import torch


DATA_DIR = os.path.dirname(os.path.abspath(__file__))


class DataError(ValueError):
    pass


def dataset_dir(name):
    """Where a `dataset` setting points: an existing folder or a path as given, else a folder under data/."""
    return name if os.path.isdir(name) or os.sep in name else os.path.join(DATA_DIR, name)


def load_meta(dataset_dir):
    path = os.path.join(dataset_dir, "meta.json")
    if not os.path.isdir(dataset_dir):
        raise DataError(f"dataset folder {dataset_dir} does not exist: build it first with "
                        f"`python data/prepare.py` (see its --help for other sources)")
    if not os.path.isfile(path):
        raise DataError(f"{path} is missing: {dataset_dir} was not written by data/prepare.py "
                        f"(or was interrupted); run data/prepare.py again")
    with open(path) as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}): it was edited "
                            f"or cut short; rebuild the dataset with data/prepare.py") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path} must hold a JSON object; rebuild the dataset with data/prepare.py")
    for key in ("vocab_size", "dtype", "domains"):
        if key not in meta:
            raise DataError(f"{path} has no {key!r} entry; rebuild the dataset with data/prepare.py")
    if not meta["domains"]:
        raise DataError(f"{path} lists no domains; rebuild the dataset with data/prepare.py")
    return meta


def tokenizer_record(meta):
    """What a dataset's token ids mean, as checkpoints record it: {"kind": 'gpt2' | 'byte', "vocab_size",
    "fingerprint"} (the ranks file's sha256)."""
    return {"kind": meta.get("tokenizer"), "vocab_size": meta["vocab_size"],
            "fingerprint": meta.get("tokenizer_fingerprint")}


def _describe(rec):
    return f"{rec.get('kind')!r} ({rec.get('vocab_size')} tokens" + (
        f", {rec['fingerprint'][:19]}...)" if rec.get("fingerprint") else ")")


def check_tokenizer(ckpt, meta, what, dataset_dir):
    """Refuse a checkpoint trained on another tokenizer than the dataset's: its ids mean other text, so training
    on (or evaluating) this data would quietly give nonsense. A model's vocabulary being at least the data's is
    not enough: GPT-2 BPE's model embeds byte ids just as well."""
    data, rec = tokenizer_record(meta), ckpt.get("tokenizer") or {}  # a checkpoint that does not say: nothing to check
    same_file = str(rec.get("kind")).startswith("hf:") and str(data.get("kind")).startswith("hf:")  # any folder
    differ = [k for k in ("kind", "vocab_size", "fingerprint") if rec.get(k) is not None and data.get(k) is not None
              and rec[k] != data[k] and not (k == "kind" and same_file)]
    if differ:
        raise DataError(f"{what} was trained with tokenizer {_describe(rec)}, but dataset {dataset_dir} holds ids of "
                        f"tokenizer {_describe(data)} ({', '.join(differ)} differ): use a dataset made with "
                        f"the checkpoint's tokenizer (python data/prepare.py --tokenizer={rec.get('kind')} "
                        f"--name=<new>)")


def open_tokens(dataset_dir, domain, split, meta=None, min_tokens=2):
    """Memory-map one domain's split, refusing a file that is missing, empty, too short or not whole tokens."""
    meta = meta or load_meta(dataset_dir)
    path = os.path.join(dataset_dir, domain, f"{split}.bin")
    if domain not in meta["domains"]:
        raise DataError(f"domain {domain!r} is not in {dataset_dir}/meta.json; its domains: {list(meta['domains'])}")
    if not os.path.isfile(path):
        raise DataError(f"token file {path} is missing; rebuild the dataset with data/prepare.py")
    size = os.path.getsize(path)
    if size == 0:
        raise DataError(f"token file {path} is empty; give domain {domain!r} more text and rebuild it")
    if size % np.dtype(meta["dtype"]).itemsize:
        raise DataError(f"token file {path} has {size} bytes, not a whole number of {meta['dtype']} tokens: "
                        f"it is truncated or not of this dataset's dtype; rebuild it")
    data = np.memmap(path, dtype=meta["dtype"], mode="r")
    counted = meta["domains"][domain].get(f"{split}_tokens")
    if counted is not None and len(data) != counted:  # e.g. two domain folders swapped, or one rebuilt alone
        raise DataError(f"token file {path} holds {len(data):,} tokens but {dataset_dir}/meta.json counts "
                        f"{counted:,} for domain {domain!r}: the file is not the one prepare.py wrote for this "
                        f"domain (folders swapped, edited or rebuilt separately); rebuild the dataset")
    if len(data) < min_tokens:
        raise DataError(f"token file {path} holds {len(data)} tokens, fewer than block_size + 1 = {min_tokens}: "
                        f"lower block_size or give domain {domain!r} more text")
    return data


def check_vocab(data, vocab_size, path, chunk=1 << 24, max_chunks=64):
    """Refuse token ids >= vocab_size (the model's embedding would index out of range, or worse, silently
    train on a different tokenizer's ids). A file over max_chunks * chunk tokens (1B) is checked on max_chunks
    evenly spaced contiguous blocks, so a start-up reads at most 2 GB of it rather than every page."""
    n_chunks = math.ceil(len(data) / chunk)
    starts = (np.linspace(0, n_chunks - 1, max_chunks).astype(np.int64) if n_chunks > max_chunks
              else np.arange(n_chunks)) * chunk
    hi = max((int(np.max(data[i:i + chunk])) for i in starts), default=0)
    if hi >= vocab_size:
        raise DataError(f"{path} holds token id {hi}, outside the vocabulary of size {vocab_size}: the data "
                        f"was made with another tokenizer, or the model's vocab_size is too small")


class Batcher:
    """Draws (x, y) batches of shape (batch_size, block_size) from a dataset's domains.

    mixture: {domain: proportion} summing to 1 (domains absent or at 0 are never drawn); None = natural
    (proportional to each domain's train tokens). steps_batch: sequences in one optimizer step over all ranks
    and micro-steps (train.py: batch_size * gradient_accumulation_steps, which counts over all processes)."""

    def __init__(self, dataset_dir, block_size, batch_size, steps_batch=None, mixture=None, seed=1337,
                 device="cpu", model_vocab_size=None):
        self.meta = load_meta(dataset_dir)
        self.dir, self.block_size, self.batch_size, self.seed, self.device = (
            dataset_dir, block_size, batch_size, seed, torch.device(device))
        self.steps_batch = steps_batch or batch_size
        self.domains = list(self.meta["domains"])
        if model_vocab_size is not None:
            self.require_vocab(model_vocab_size)
        self.data = {}
        for dom in self.domains:
            for split in ("train", "val"):
                d = open_tokens(dataset_dir, dom, split, self.meta, min_tokens=block_size + 1)
                check_vocab(d, self.meta["vocab_size"], os.path.join(dataset_dir, dom, split))
                self.data[dom, split] = d
        if mixture is None:
            total = sum(self.meta["domains"][d]["train_tokens"] for d in self.domains)
            mixture = {d: self.meta["domains"][d]["train_tokens"] / total for d in self.domains}
        self.mixture = {d: float(mixture.get(d, 0.0)) for d in self.domains}
        self.probs = np.array([self.mixture[d] for d in self.domains])
        self._cache = (None, None)

    def require_vocab(self, model_vocab_size):
        """Refuse a model whose embedding is smaller than the dataset's tokenizer (every token id is checked to be
        below the tokenizer's size, so a model at least that large can embed them all)."""
        if self.meta["vocab_size"] > model_vocab_size:
            raise DataError(f"{self.dir}/meta.json: tokenizer {self.meta.get('tokenizer')!r} has "
                            f"{self.meta['vocab_size']} tokens but the model's vocab_size is {model_vocab_size}; "
                            f"set vocab_size >= {self.meta['vocab_size']} or use a dataset of the model's tokenizer")

    def _step_batch(self, split, step):
        """Domains and start positions of every sequence of one optimizer step: (steps_batch,) each."""
        if self._cache[0] != (split, step):
            rng = np.random.default_rng([self.seed, split == "val", step])
            doms = rng.choice(len(self.domains), size=self.steps_batch, p=self.probs)
            highs = np.array([len(self.data[d, split]) - self.block_size for d in self.domains])
            self._cache = ((split, step), (doms, rng.integers(0, highs[doms])))
        return self._cache[1]

    def get(self, split, step, micro=0, rank=0, world_size=1):
        """The batch of micro-step `micro` on `rank` at optimizer step `step`."""
        doms, pos = self._step_batch(split, step)
        lo = (micro * world_size + rank) * self.batch_size
        return self._stack([(self.domains[d], p) for d, p in zip(doms[lo:lo + self.batch_size], pos[lo:lo + self.batch_size])], split)

    def get_domain(self, domain, split, k, batch_size=None):
        """The k-th fixed evaluation batch of one domain: the same for every run, seed and world size."""
        rng = np.random.default_rng([0, self.domains.index(domain), split == "val", k])
        pos = rng.integers(0, len(self.data[domain, split]) - self.block_size, size=batch_size or self.batch_size)
        return self._stack([(domain, p) for p in pos], split)

    def _stack(self, items, split):
        T = self.block_size
        buf = np.stack([self.data[d, split][p:p + T + 1].astype(np.int64) for d, p in items])  # (B, T+1)
        xy = torch.from_numpy(buf)
        if self.device.type == "cuda":  # pinned memory lets the copy overlap with compute
            xy = xy.pin_memory().to(self.device, non_blocking=True)
        return xy[:, :-1], xy[:, 1:]


@torch.no_grad()
def domain_losses(model, batcher, split="val", iters=20, batch_size=None, ctx=None, rank=0, world_size=1):
    """Mean loss on each domain's split over `iters` fixed batches. Under DDP the batches are shared out over
    ranks and the sums all-reduced, so the numbers do not depend on the number of ranks."""
    return {dom: domain_loss(model, batcher, dom, split, iters, batch_size, ctx, rank, world_size)
            for dom in batcher.domains}


@torch.no_grad()
def domain_loss(model, batcher, domain, split="val", iters=20, batch_size=None, ctx=None, rank=0, world_size=1,
                progress=None):
    """Mean loss on one domain's split over its first `iters` fixed batches (Batcher.get_domain); progress(n) is
    called after each batch."""
    import contextlib
    if iters < 1:  # no batches would average to 0/0 = nan, which reads like a diverged model
        raise ValueError(f"domain_loss: iters={iters}: need at least 1 batch")
    ctx = ctx or contextlib.nullcontext()
    was_training = model.training
    model.eval()
    total = torch.zeros(2, device=batcher.device)  # (sum of losses, count)
    for j in range(math.ceil(iters / world_size)):  # the same number of forwards on every rank
        k = j * world_size + rank
        x, y = batcher.get_domain(domain, split, k % iters, batch_size)
        with ctx:
            _, loss = model(x, y)
        if k < iters:
            total += torch.stack([loss.float(), torch.ones((), device=loss.device)])
        if progress:
            progress(1)
    if world_size > 1:
        torch.distributed.all_reduce(total)
    model.train(was_training)
    return (total[0] / total[1]).item()
