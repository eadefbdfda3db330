"""
Settings for train.py, nanoGPT style: module-level defaults, then an optional config file, then --key=value.

    python train.py config/gstack_tiny.py --batch_size=32 --compile=False

A config file is plain Python (its top-level names are settings) or JSON (a run's own out_dir/config.json, so a
later run can repeat an earlier one). Every name must be a known setting and every value must have the
default's type (None defaults take anything; an int is accepted where a float is expected), so a typo stops
the run with the name and the list of valid settings instead of being silently ignored.
"""

import ast
import difflib
import json
import os


class ConfigError(ValueError):
    pass


def _check(key, value, defaults, source):
    if key not in defaults:
        close = difflib.get_close_matches(key, defaults, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown setting {key!r} in {source}{hint}. Valid settings: {', '.join(sorted(defaults))}")
    want = defaults[key]
    if want is None or value is None:
        return value
    if isinstance(want, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(want) is int and isinstance(value, float) and value.is_integer():  # --max_tokens=10e9
        return int(value)
    if type(value) is not type(want):
        raise ConfigError(f"setting {key!r} in {source} must be {type(want).__name__} like its default "
                          f"{want!r}, got {type(value).__name__} {value!r}")
    return value


def parse_value(text):
    """'3' -> 3, '1e-3' -> 0.001, 'True' -> True, '[0,1]' -> [0, 1]; anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(defaults, argv):
    """Return a copy of `defaults` updated by config files and --key=value arguments, in order."""
    config = dict(defaults)
    for arg in argv:
        if arg.startswith("--"):
            key, sep, text = arg[2:].partition("=")
            if not sep:
                raise ConfigError(f"argument {arg!r}: expected --key=value")
            config[key] = _check(key, parse_value(text), defaults, "the command line")
            continue
        if not os.path.isfile(arg):
            raise ConfigError(f"config file {arg!r} does not exist (arguments are config files or --key=value)")
        values = _read_config_file(arg)
        for key, value in values.items():
            config[key] = _check(key, value, defaults, arg)
    return config


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


def settings_help(path):
    """The settings block of a nanoGPT-style script as it is written: every setting with its default and its
    comment, under the section comments (what `--help` prints)."""
    with open(path) as f:
        lines = f.read().splitlines()
    names = defaults_from_script(path)
    tree = ast.parse("\n".join(lines), path)
    assigned = [n.lineno for n in tree.body if isinstance(n, ast.Assign) and len(n.targets) == 1
                and isinstance(n.targets[0], ast.Name) and n.targets[0].id in names]
    first, last = assigned[0] - 1, assigned[-1]
    while first > 0 and lines[first - 1].startswith("# ") and not lines[first - 1].startswith("# ---"):
        first -= 1  # the section comment above the first setting
    return "\n".join(lines[first:last])


def defaults_from_script(path):
    """The settings of a nanoGPT-style script: its top-level `name = literal` assignments, read without running
    it (bench.py and the tests take train.py's settings this way, so every config file works for them too)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    out = {}
    for node in tree.body:  # the settings block: the first run of `name = literal` statements
        try:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
                raise ValueError
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            if out:
                break  # e.g. setting_names = [...]: the block has ended
    return out
