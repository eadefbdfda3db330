"""
Run folders: what train.py writes to out_dir, and the one way to read it back.

  ckpt_<iter>.pt   checkpoints, written atomically (temp file, fsync, rename) with a SHA-256 digest of all they hold,
                   so a crash never leaves half a file under the real name and a damaged one is named when read
  metrics.jsonl    one JSON object per line: evaluations, training logs, growth events (docs/training.md)
  config.json      every setting of the run; source.json: the checkpoint a grown or inherited run started from
  train.log        a run's output when a script started it (run_logged)
"""

import errno
import glob
import hashlib
import json
import os
import shutil
import subprocess
import threading

import numpy as np
import torch

from data.prepare import alive


REPO_DIR = os.path.dirname(os.path.abspath(__file__))


class CheckpointError(RuntimeError):
    pass


def _digest(obj):
    """SHA-256 of everything in a checkpoint: every tensor's bytes, dtype and shape, and every counter, setting
    and RNG state a resumed run trusts, so a changed iter_num or learning rate is caught like a flipped weight."""
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
            h.update(b"[")
            for v in o:
                walk(v)
        elif isinstance(o, np.ndarray):  # numpy's RNG state
            h.update(str((o.dtype, o.shape)).encode() + np.ascontiguousarray(o).tobytes())
        else:  # numbers, strings, None: repr is exact for floats and ints
            h.update(f"{type(o).__name__}:{o!r};".encode())
    walk(obj)
    return h.hexdigest()


def save_checkpoint(ckpt, path):
    """Atomically write a checkpoint dict: the file under `path` is always either the old one or the new one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    for tmp in glob.glob(os.path.join(glob.escape(folder), "*.pt.tmp.*")):  # a killed writer's: ckpt_*.pt.tmp.<pid>
        pid = tmp.rsplit(".", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            os.remove(tmp)
    ckpt = dict(ckpt, digest=_digest({k: v for k, v in ckpt.items() if k != "digest"}))
    tmp, w = f"{path}.tmp.{os.getpid()}", None
    try:
        with open(tmp, "wb") as f:
            w = _Writes(f)
            torch.save(ckpt, w)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        # torch.save reports a failed write as RuntimeError("... unexpected pos ..."): the OSError is in w.error
        err = e if isinstance(e, OSError) else w and w.error
        if err is None or err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        os.remove(tmp)  # before measuring: the half-written file is what filled the disk
        need = _tensor_bytes(ckpt) / 2**20
        if err.errno == errno.EFBIG:
            why = f"cannot write checkpoint {path}: the file size limit (ulimit -f) is below its {need:,.2f} MiB"
            fix = "Raise the limit"
        else:
            why = (f"no space left to write checkpoint {path}: {folder} has "
                   f"{shutil.disk_usage(folder).free / 2**20:,.2f} MiB free and it needs at least {need:,.2f} MiB")
            fix = "Free some space (or lower keep_checkpoints)"
        kept = [p for p in checkpoint_paths(folder) if os.path.abspath(p) != os.path.abspath(path)]
        raise CheckpointError(f"{why}. {fix}, then continue with --init_from=resume: "
                              + (f"the earlier checkpoints are whole (newest: {os.path.basename(kept[-1])})" if kept
                                 else "no earlier checkpoint was written")) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class _Writes:
    """A file that keeps the OSError of a failed write (torch.save replaces it by a RuntimeError)."""
    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, b):
        try:
            return self.f.write(b)
        except OSError as e:
            self.error = e
            raise

    def flush(self):
        self.f.flush()


def _tensor_bytes(obj):
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


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
    if ckpt.get("digest") != _digest({k: v for k, v in ckpt.items() if k != "digest"}):
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
    """A checkpoint file, or the newest good one of a run folder: (ckpt, its path). A damaged newest checkpoint is
    named and skipped for the one before it, so a crash during a write costs one interval, not the run."""
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


def stale_source(run_dir):
    """None, or why a run started with init_from='grow' or 'inherit' no longer matches the run it started from
    (that run was trained again or further since): train.py records the source in out_dir/source.json."""
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
    """The records of a run's metrics.jsonl (run_dir may also be the file itself), oldest first. A line that is
    not JSON, the one a killed run was writing, is named and skipped."""
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


def read_evals(run_dir, log=print):
    """(evaluation lines, events) of a run, in training order: every reader of a run's losses uses this. A resumed
    run re-logs from its checkpoint on, so an evaluation whose iter does not exceed the previous one's replaces
    the points the interrupted attempt had written past it."""
    evals, events = [], {}
    for rec in read_metrics(run_dir, log):
        if "event" in rec:
            events[rec["event"], rec.get("tokens")] = rec
        elif rec.get("val_loss_mean") is not None:
            while evals and evals[-1]["iter"] >= rec["iter"]:
                evals.pop()
            evals.append(rec)
    if not evals:
        raise ValueError(f"{run_dir}/metrics.jsonl has no evaluation line (val_loss_mean); did the run evaluate?")
    return evals, list(events.values())


def final_eval(run_dir):
    """The last evaluation line of a run: its final val loss is val_loss_mean."""
    return read_evals(run_dir, log=lambda *a: None)[0][-1]


def is_done(run_dir, last_iter):
    """Whether a run has evaluated at last_iter (its last step: train.py always evaluates there) or later."""
    try:
        return final_eval(run_dir)["iter"] >= last_iter
    except (FileNotFoundError, ValueError):  # not run yet, or stopped before its first evaluation
        return False


def run_logged(cmd, run_dir, name, echo=True, env=None):
    """Run cmd (a train.py command) from the repository root, its output appended to <run_dir>/train.log and echoed
    as '  [name] line'; SystemExit with the last lines of the log when it fails. Stopped (Ctrl-C, SIGTERM, an
    error), the caller stops its train.py too (stop_children)."""
    if _STOPPING.is_set():
        raise SystemExit(f"{name}: not started: the script is stopping")
    os.makedirs(run_dir, exist_ok=True)
    tail = []
    with open(os.path.join(run_dir, "train.log"), "a") as logf:
        logf.write("$ " + " ".join(cmd) + "\n")
        logf.flush()
        proc = subprocess.Popen(cmd, cwd=REPO_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        _RUNNING.add(proc)

        def follow():
            nonlocal tail
            for line in proc.stdout:
                logf.write(line)
                tail = (tail + [line])[-25:]
                if echo:
                    print(f"  [{name}] {line.rstrip()}", flush=True)
        try:
            follow()
        except BaseException:
            stop_children()
            follow()  # what train.py says as it stops: where its checkpoint is
            raise
        finally:
            _RUNNING.discard(proc)
    if proc.wait() != 0:
        raise SystemExit(f"{name}: train.py exited with {proc.returncode} (command: {' '.join(cmd)}); last lines of "
                         f"{run_dir}/train.log:\n{''.join(tail)}")


_RUNNING = set()  # the train.py processes run_logged started and has not seen end
_STOPPING = threading.Event()  # set by stop_children: no new train.py starts


def stop_children():
    """SIGTERM every train.py this process started that still runs (each writes a checkpoint and exits), and wait."""
    _STOPPING.set()
    for proc in list(_RUNNING):
        proc.terminate()
    for proc in list(_RUNNING):
        proc.wait()
