"""
Settings for train.py, nanoGPT style: module-level defaults, then config files (plain Python, or a run's own
config.json), then --key=value:  python train.py config/gstack_tiny.py --batch_size=32 --compile=False

Every name must be a known setting and every value of the default's type, so a typo stops the run with the valid
settings instead of being silently ignored; check_train_settings then range-checks every value before anything is
built, and install_error_hook prints the errors a user can fix as one line.
"""

import ast
import difflib
import errno
import json
import os
import shutil
import sys
import time


class ConfigError(ValueError):
    pass


def given_settings(defaults, argv):
    """The settings that config files and --key=value arguments give, in order (later ones win): what a user asked
    for, as opposed to a default (train.py refuses a given model setting that a resumed run cannot honour)."""
    given = {}
    for arg in argv:
        if arg.startswith("--"):
            key, sep, text = arg[2:].partition("=")
            if not sep:
                raise ConfigError(f"argument {arg!r}: expected --key=value")
            try:  # '3' -> 3, '1e-3' -> 0.001, 'True' -> True, '[0,1]' -> [0, 1]; anything else stays a string
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text
            given[key] = _check(key, value, defaults, "the command line")
        elif not os.path.isfile(arg):
            raise ConfigError(f"config file {arg!r} does not exist (arguments are config files or --key=value)")
        else:
            given.update({k: _check(k, v, defaults, arg) for k, v in _read_config_file(arg).items()})
    return given


def apply_overrides(defaults, argv):
    """A copy of `defaults` updated by config files and --key=value arguments, in order."""
    return {**defaults, **given_settings(defaults, argv)}


def _check(key, value, defaults, source):
    if key not in defaults:
        close = difflib.get_close_matches(key, defaults, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown setting {key!r} in {source}{hint}. Valid settings: {', '.join(sorted(defaults))}")
    want = defaults[key]
    if want is None or value is None or (key == "grow_at_tokens" and isinstance(value, list)):  # several growths
        return value
    if isinstance(want, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(want) is int and isinstance(value, float) and value.is_integer():  # --max_tokens=10e9
        return int(value)
    if type(value) is not type(want):
        raise ConfigError(f"setting {key!r} in {source} must be {type(want).__name__} like its default "
                          f"{want!r}, got {type(value).__name__} {value!r}")
    return value


def _read_config_file(path):
    """The settings a config file assigns: JSON (a run's config.json) or plain Python. A file that does not parse
    or run is a ConfigError naming the file and the line, not a traceback."""
    with open(path) as f:
        text = f.read()
    if path.endswith(".json"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {path} is not valid JSON: {e.msg} at line {e.lineno}, column "
                              f"{e.colno}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must hold a JSON object of settings, not a {type(values).__name__}")
        return values
    namespace = {}
    try:
        exec(compile(text, path, "exec"), namespace)
    except SyntaxError as e:
        raise ConfigError(f"config file {path} has a syntax error at line {e.lineno}: {e.msg}"
                          + (f": {e.text.strip()}" if e.text else "")) from None
    except Exception as e:
        raise ConfigError(f"config file {path} failed to run: {type(e).__name__}: {e}") from None
    return {k: v for k, v in namespace.items() if not k.startswith("_") and not callable(v)
            and type(v).__name__ != "module"}


def _settings_block(tree):
    """The statements of a script's settings block: its first run of top-level `name = literal` assignments."""
    block = []
    for node in tree.body:
        try:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
                raise ValueError
            ast.literal_eval(node.value)
            block.append(node)
        except ValueError:
            if block:
                break  # e.g. setting_names = [...]: the block has ended
    return block


def defaults_from_script(path):
    """The settings of a nanoGPT-style script, read without running it (bench.py and the experiment scripts take
    train.py's settings this way, so every config file works for them too)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    return {node.targets[0].id: ast.literal_eval(node.value) for node in _settings_block(tree)}


def settings_help(path):
    """The settings block of a script as written, every setting with its default and comment under the section
    comments: what `--help` prints."""
    with open(path) as f:
        lines = f.read().splitlines()
    block = _settings_block(ast.parse("\n".join(lines), path))
    first, last = block[0].lineno - 1, block[-1].end_lineno
    while first > 0 and lines[first - 1].startswith("# ") and not lines[first - 1].startswith("# ---"):
        first -= 1  # the section comment above the first setting
    while last < len(lines) and lines[last].lstrip().startswith("#") and not lines[last].startswith("# ---"):
        last += 1  # a comment continued on the lines after the last setting
    return "\n".join(lines[first:last])


# -------------------------------------------------------------------------------------------------------------
# train.py's settings checked before anything is built: a bad value is named with what it may be, instead of a
# traceback from deep inside PyTorch or a run that trains on silently wrong numbers (a negative min_lr turns the
# learning rate negative mid-run)

CHOICES = {"grow_dim": ("depth", "width"), "grow_op": ("direct", "zero", "random", "learn"),
           "grow_schedule": ("restart", "continue"), "grow_data": ("continue", "replay"),
           "nan_policy": ("stop", "skip"), "dtype": ("auto", "float32", "bfloat16", "float16"),
           "arch": ("gpt2", "llama")}
# settings whose default is None, so the configurator accepts any type for them: their type when not None
NONE_DEFAULT_TYPES = {"n_kv_head": int, "intermediate_size": int, "tie_embeddings": bool, "vocab_size": int,
                      "lr_decay_iters": int, "grow_layer_map": list, "inherit_layers": list, "compile": bool,
                      "grow_opts": dict, "inherit_fresh_init": str}
RANGES = {**{k: ("an integer >= 1", lambda v: v >= 1) for k in (
              "batch_size", "block_size", "gradient_accumulation_steps", "eval_interval", "log_interval",
              "eval_iters", "keep_checkpoints", "n_layer", "n_head", "n_embd", "grow_learn_steps")},
          **{k: (">= 0", lambda v: v >= 0) for k in (
              "max_iters", "max_tokens", "total_batch_tokens", "warmup_iters", "learning_rate", "weight_decay",
              "grad_clip", "grow_ramp_steps", "grow_learning_rate", "grow_n_embd")},
          "grow_at_tokens": ("an integer >= 0, or a list of integers >= 1 in increasing order (one per growth)",
                             lambda v: v >= 0 if not isinstance(v, list) else v != [] and all(
                                 isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v)
                             and v == sorted(set(v))),
          **{k: ("None or an integer >= 1", lambda v: v is None or v >= 1) for k in (
              "n_kv_head", "intermediate_size", "vocab_size", "lr_decay_iters")},
          **{k: ("in [0, 1)", lambda v: 0 <= v < 1) for k in ("beta1", "beta2", "dropout")},
          "grow_noise": ("in [0, 1]", lambda v: 0 <= v <= 1)}
# the settings that describe the model; a model that comes from a checkpoint or a Hugging Face folder has its own
MODEL_SETTINGS = ("arch", "n_layer", "n_head", "n_kv_head", "n_embd", "intermediate_size", "dropout", "bias",
                  "tie_embeddings", "scale_attn_by_inverse_layer_idx", "gelu_approximate", "vocab_size")


def check_train_settings(s):
    """Refuse a train.py setting outside its range or a combination that cannot run, naming it and what it may be;
    returns the settings with integral floats of int settings made ints (2e4 written for 20000)."""
    s = dict(s)
    for name, allowed in CHOICES.items():
        if s[name] not in allowed:
            raise ConfigError(f"{name}={s[name]!r}: must be one of {', '.join(map(repr, allowed))}")
    for name, kind in NONE_DEFAULT_TYPES.items():
        if kind is int and isinstance(s[name], float) and s[name].is_integer():
            s[name] = int(s[name])
        if s[name] is not None and not isinstance(s[name], kind):
            raise ConfigError(f"{name}={s[name]!r}: must be of type {kind.__name__}, or None")
    for name, (allowed, ok) in RANGES.items():
        if not ok(s[name]):
            raise ConfigError(f"{name}={s[name]!r}: must be {allowed}")
    lr, min_lr, grow_lr = s["learning_rate"], s["min_lr"], s["grow_learning_rate"]
    if s["decay_lr"] and min_lr < 0:  # the cosine decays from the peak (learning_rate, grow_learning_rate) to min_lr
        raise ConfigError(f"min_lr={min_lr!r}: must be >= 0 and <= learning_rate={lr!r}")
    if s["decay_lr"] and min_lr > lr:
        raise ConfigError(f"min_lr={min_lr!r}: must be <= learning_rate={lr!r} (the cosine decays from learning_rate "
                          f"down to min_lr); lower min_lr or raise learning_rate")
    if s["decay_lr"] and grow_lr and min_lr > grow_lr:
        raise ConfigError(f"min_lr={min_lr!r}: must be <= grow_learning_rate={grow_lr!r} (the grown model's peak)")
    at, maps = s["grow_at_tokens"], s["grow_layer_map"]
    if isinstance(at, list) and len(at) > 1 and s["grow_dim"] != "depth":
        raise ConfigError(f"grow_at_tokens={at}: several growths are depthwise (gradual stacking); grow_dim='width' "
                          f"grows once")
    if maps and isinstance(maps[0], list) and len(maps) != (len(at) if isinstance(at, list) else 0):
        raise ConfigError(f"grow_layer_map holds {len(maps)} layer maps: give grow_at_tokens a list of as many token "
                          f"counts, one per growth (it is {at!r})")
    if s["grow_op"] == "learn" and not s["grow_learn_lr"] > 0:
        raise ConfigError(f"grow_learn_lr={s['grow_learn_lr']!r}: must be > 0 (grow_op='learn' trains its growth maps)")
    if s["init_from"] in ("grow", "inherit") and not s[f"{s['init_from']}_from"]:
        raise ConfigError(f"init_from={s['init_from']!r} needs {s['init_from']}_from: the checkpoint or run folder "
                          f"to start from")
    if s["init_from"] == "scratch":  # a shape that cannot be built (n_embd not divisible by n_head, ...) is named now
        from model import GPTConfig
        try:
            GPTConfig(**model_args(s))
        except ValueError as e:
            raise ConfigError(f"model settings: {str(e).removeprefix('GPTConfig: ').removeprefix('GPTConfig.')}") from None
    return s


def model_args(s):
    """GPTConfig's arguments from train.py settings s: the model settings and block_size (None: GPTConfig's default)."""
    return {"block_size": s["block_size"], **{k: s[k] for k in MODEL_SETTINGS if s[k] is not None}}


def model_settings(init_from, built, recorded, given, typed, out_dir, log=print):
    """The model settings config.json records: those of the model actually trained (`built`). resume keeps the
    run's model: a model setting typed on the command line (`typed`) that differs from the run's (`recorded`) is
    refused by name for a run trained from scratch, and one from a config file (the run's first command given
    again, as the experiment scripts do) is ignored, in one line. grow, inherit and a Hugging Face folder bring
    their own model: a model setting given for them is ignored, said in one line. None differs from nothing."""
    built = {k: v for k, v in built.items() if k in MODEL_SETTINGS}
    if init_from == "scratch":
        return {}
    if init_from == "resume":
        have = {k: recorded[k] if recorded.get(k) is not None else built[k] for k in MODEL_SETTINGS}
        clashes = [f"{k}={typed[k]!r} (the run's: {have[k]!r})" for k in MODEL_SETTINGS
                   if typed.get(k) is not None and typed[k] != have[k]]
        if clashes and recorded.get("init_from", "scratch") in ("scratch", "resume"):
            raise ConfigError(f"init_from='resume' continues the model of {out_dir}, which these settings would "
                              f"change: {', '.join(clashes)}. Drop them, or train another model in a new out_dir")
        why, keep = "the run being resumed keeps its model", {k: recorded.get(k, built[k]) for k in MODEL_SETTINGS}
    else:
        why, have, keep = f"the model comes from init_from={init_from!r}", built, built
    ignored = [f"{k}={given[k]!r} (the model's: {have[k]!r})" for k in MODEL_SETTINGS
               if given.get(k) is not None and given[k] != have[k]]
    if ignored:
        log(f"note: {why}, so these settings are ignored: {', '.join(ignored)}; config.json records the model's")
    return keep


def check_device(device):
    """Refuse a device this machine does not have, in one line (torch's own error is a 17-line traceback from the
    first tensor moved there). 'auto' and 'cpu' always work."""
    import torch
    if device in ("auto", "cpu"):
        return
    try:
        kind = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device={device!r} is not a device: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if kind.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build of torch" if torch.version.cuda is None else "no CUDA GPU visible"
        raise ConfigError(f"device={device!r}, but this machine has {build} (torch {torch.__version__}); "
                          f"use --device=cpu (or 'auto')")
    if kind.type == "cuda" and kind.index is not None and kind.index >= torch.cuda.device_count():
        raise ConfigError(f"device={device!r}, but this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                          f"numbered from 0")
    if kind.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={device!r}, but Apple's MPS is not available here; use --device=cpu (or 'auto')")


# -------------------------------------------------------------------------------------------------------------
# One message instead of a traceback, for every error a user can fix

DISK_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
               errno.EFBIG: "file larger than the file size limit (ulimit -f)",
               errno.EROFS: "read-only file system", errno.EACCES: "permission denied"}


def user_error_message(err, kinds, folder=None, then="continue with --init_from=resume"):
    """The message for an error a user can fix (one of `kinds`: a bad setting, dataset or checkpoint; or a disk that
    is full, read-only or not ours), or None for anything else, which is a bug and keeps its traceback. A disk error
    names the file (or `folder`) and, when the disk is full, the space left there."""
    if isinstance(err, kinds):
        return str(err)
    if not (isinstance(err, OSError) and err.errno in DISK_ERRORS):
        return None
    where = err.filename or folder or "."
    msg = f"{DISK_ERRORS[err.errno]} writing {where}"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        existing = os.path.abspath(where)
        while existing and not os.path.isdir(existing):
            existing = os.path.dirname(existing)
        try:
            free = f"{shutil.disk_usage(existing).free / 2**20:,.1f} MiB"
        except OSError:
            free = "unknown"
        msg += f" ({free} free there): free some space, then {then}"
    return msg


def install_error_hook(script, kinds, folder=lambda: None, then="run it again"):
    """Make uncaught user errors (user_error_message) print as `script: message`, without a traceback. folder()
    names where the script writes, for disk errors that carry no file name; `then` is what to do once there is space."""
    def hook(kind, err, tb, default=sys.excepthook):
        msg = user_error_message(err, kinds, folder(), then)
        if msg is None:
            default(kind, err, tb)
        elif os.environ.get("RANK", "0") == "0":  # under torchrun every process refuses alike: one says so
            print(f"{script}: {msg}", file=sys.stderr)
        else:  # and exits last: torchrun stops the other workers as soon as one fails, rank 0 before it could say it
            time.sleep(5)
    sys.excepthook = hook
    return hook
