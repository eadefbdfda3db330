"""Config files and --key=value: a bad file is one clear message naming the file and line; --help lists every
setting with its default and comment."""
import os
import subprocess
import sys

import pytest

from conftest import REPO
from configurator import ConfigError, apply_overrides, defaults_from_script, settings_help

DEFAULTS = {"learning_rate": 1e-3, "n_layer": 4, "out_dir": "out"}


@pytest.mark.parametrize("name,text,msg", [
    ("bad.py", "n_layer = 4\nlearning_rate = (1e-3\n", r"config file .*bad.py has a syntax error at line 2"),
    ("boom.py", "n_layer = 2 // 0\n", r"config file .*boom.py failed to run: ZeroDivisionError"),
    ("bad.json", '{"n_layer": 4,}', r"config file .*bad.json is not valid JSON: .* at line 1, column \d+"),
    ("list.json", "[4]", r"config file .*list.json must hold a JSON object of settings, not a list"),
])
def test_a_broken_config_file_is_named_with_its_line(tmp_path, name, text, msg):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=msg):
        apply_overrides(DEFAULTS, [str(tmp_path / name)])


def test_train_settings_help_lists_every_setting_with_its_comment():
    path = os.path.join(REPO, "train.py")
    text = settings_help(path)
    for name in defaults_from_script(path):
        assert f"\n{name} = " in "\n" + text, name
    assert "min_lr = 1e-4" in text and "# I/O" in text


def test_bench_help_prints_its_settings_and_trains():
    out = subprocess.run([sys.executable, "bench.py", "--help"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert "nanogpt = \"\"" in out and "learning_rate = " in out and "CPU defaults" in out
