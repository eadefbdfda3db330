"""
Run folders: everything that reads or writes a train.py out_dir. Checkpoints are written atomically (temp file,
fsync, rename) and verified on load with a digest of every tensor, so a crash mid-write never leaves a half-written
file under the real name, and a damaged file is named. Also the newest good checkpoint of a run, the metrics log
reader, and the check that a grown or inherited run still matches the run it started from.
"""

import errno
import glob
import hashlib
import json
import os
import shutil

import numpy as np
import torch

import grow
from model import GPT, config_from_dict

DIGEST = "v2:"  # digests of everything in the checkpoint; older ones (no prefix) covered its tensors only


class CheckpointError(RuntimeError):
    pass


def _digest(obj, tensors_only=False):
    """SHA-256 of a checkpoint's contents: every tensor's bytes, dtype and shape, and (unless tensors_only, the
    format of checkpoints written before the counters were covered) every counter, setting and RNG state that a
    resumed run trusts, so a changed iter_num or learning rate is caught like a flipped weight."""
    h = hashlib.sha256()

    def walk(o):
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous().reshape(-1)  # 1-D: 0-dim tensors cannot be viewed as bytes
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(o, dict):
            for k in sorted(o, key=str):
                h.update(str(k).encode())
                walk(o[k])
        elif isinstance(o, (list, tuple)):
            h.update(b"[" if not tensors_only else b"")
            for v in o:
                walk(v)
        elif tensors_only:
            return
        elif isinstance(o, np.ndarray):  # numpy's RNG state
            h.update(str((o.dtype, o.shape)).encode() + np.ascontiguousarray(o).tobytes())
        else:  # numbers, strings, None: repr is exact for floats and ints
            h.update(f"{type(o).__name__}:{o!r};".encode())
    walk(obj)
    return h.hexdigest()


def _remove_stale_temp_files(folder):
    """Temp files of checkpoint writes whose process is gone (killed mid-write): ckpt_*.pt.tmp.<pid>."""
    for tmp in glob.glob(os.path.join(glob.escape(folder), "*.pt.tmp.*")):
        pid = tmp.rsplit(".", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            os.remove(tmp)
        except PermissionError:  # alive, another user's
            pass


def save_checkpoint(ckpt, path):
    """Atomically write a checkpoint dict: the file under `path` is always either the old one or the new one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    _remove_stale_temp_files(folder)
    ckpt = dict(ckpt, digest=DIGEST + _digest({k: v for k, v in ckpt.items() if k != "digest"}))
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        os.remove(tmp)  # before measuring: the half-written file is what filled the disk
        raise CheckpointError(f"no space left to write checkpoint {path}: {folder} has "
                              f"{shutil.disk_usage(folder).free / 2**20:,.1f} MiB free and the checkpoint needs more "
                              f"than the {written / 2**20:,.1f} MiB written before the disk filled. Free some space "
                              f"(or lower keep_checkpoints), then continue with --init_from=resume: the checkpoints "
                              f"already written are whole") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path, map_location="cpu"):
    """Load and verify a checkpoint; raises CheckpointError naming the file when it is missing or damaged."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupted and cannot be read "
                              f"({type(e).__name__}: {e}); use an earlier checkpoint") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        raise CheckpointError(f"{path} is not a nanogrow checkpoint (no 'model' / 'model_args' entries)")
    digest, rest = ckpt.get("digest"), {k: v for k, v in ckpt.items() if k != "digest"}
    if digest is not None and digest != (DIGEST + _digest(rest) if digest.startswith(DIGEST) else
                                         _digest(rest, tensors_only=True)):
        raise CheckpointError(f"checkpoint {path} is corrupted: its contents (weights, counters or settings) do not "
                              f"match the digest written with it; use an earlier checkpoint")
    return ckpt


def checkpoint_paths(out_dir):
    """A run's checkpoints, oldest first (ckpt_<iter>.pt, zero-padded so names sort by iteration)."""
    if not os.path.isdir(out_dir):
        return []
    return sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir)
                  if f.startswith("ckpt_") and f.endswith(".pt"))


def find_checkpoint(path, map_location="cpu", log=print):
    """Load a checkpoint file, or the newest good one of a run folder. A damaged newest checkpoint is named and
    skipped for the one before it, so a crash during a write (or a bad disk block) costs one interval, not the run."""
    if os.path.isfile(path):
        return load_checkpoint(path, map_location), path
    paths = checkpoint_paths(path)
    if not paths:
        raise CheckpointError(f"no checkpoint found at {path}: expected a ckpt_*.pt file or a run folder "
                              f"holding them (train.py writes them to out_dir)")
    for p in reversed(paths):
        try:
            return load_checkpoint(p, map_location), p
        except CheckpointError as e:
            log(f"WARNING: {e}; falling back to the checkpoint before it")
    raise CheckpointError(f"every checkpoint in {path} is damaged: {[os.path.basename(p) for p in paths]}")


def model_from_checkpoint(path_or_ckpt, device="cpu"):
    """Build the GPT stored in a checkpoint (a file, a run folder, or a loaded dict). Returns (model, ckpt)."""
    ckpt = find_checkpoint(path_or_ckpt)[0] if isinstance(path_or_ckpt, str) else path_or_ckpt
    model = GPT(config_from_dict(ckpt["model_args"]))
    # checkpoints of torch.compile'd models carry an '_orig_mod.' prefix
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    grow.load_state(model, state)  # G_random blocks saved mid-ramp carry on ramping
    return model.to(device), ckpt


def stale_source(run_dir):
    """None, or why a run started with init_from='grow' or 'inherit' no longer matches the run it started from:
    its grow_from / inherit_from (a checkpoint, or a run folder's newest one) now holds other weights, because
    that run was trained again or further. train.py records the source in out_dir/source.json."""
    path = os.path.join(run_dir, "source.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        try:
            src = json.load(f)
        except json.JSONDecodeError as e:
            return f"its {path} is not valid JSON ({e.msg} at line {e.lineno}), so its source cannot be checked"
    try:
        now, now_path = find_checkpoint(src["given"], log=lambda *a: None)
    except CheckpointError as e:
        return f"it started from {src['checkpoint']}, and {src['given']} has no usable checkpoint now ({e})"
    if now.get("digest") != src["digest"]:
        return (f"it started from {src['checkpoint']} (iter {src['iter_num']}), but {src['given']} now gives "
                f"{now_path} (iter {now.get('iter_num')}), with other weights")
    return None


def read_metrics(run_dir, log=print):
    """The records of a run's metrics.jsonl (run_dir may also be the file itself), oldest first; the format is in
    docs/contracts.md. A line that is not JSON, the one a killed run was writing, is named and skipped."""
    path = run_dir if os.path.isfile(run_dir) else os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {run_dir} a train.py out_dir?")
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                log(f"note: {path}:{n} is not valid JSON (cut short by a crash?); skipped")
    return records
