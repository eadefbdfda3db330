"""A newcomer's first hour: the default run needs nothing outside the clone, every script answers
--help with its settings and a missing device with one line, and eval.py loss is sized to the data."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

# GPT-2's ids for a sample text (tiktoken's "gpt2" encoding)
SAMPLE = "Hello world"
SAMPLE_IDS = [15496, 995]


def test_gpt2_tokenizer_builds_from_the_clone_alone(tmp_path):
    """No network, no $NANOGROW_GPT2_RANKS, no tiktoken cache, nothing outside the clone. CI's clone has a
    sibling folder `shared/` that users do not: here the copy of the clone has one holding a wrong ranks file, and
    the test fails if anything outside the clone is opened."""
    clone = tmp_path / "clone"
    (clone / "data").mkdir(parents=True)
    for f in ("data/__init__.py", "data/prepare.py", "data/gpt2.tiktoken", "data/gpt2.tiktoken.LICENSE"):
        shutil.copy(os.path.join(REPO, f), clone / f)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "gpt2.tiktoken").write_bytes(b"a sibling's file, which users do not have")
    code = f"""
import socket, sys
def no_network(*a, **k):
    raise OSError("no network in this test")
socket.socket.connect = socket.create_connection = no_network
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" and args and isinstance(args[0], str) else None)
sys.path.insert(0, {str(clone)!r})
from data.prepare import get_tokenizer
tok = get_tokenizer("gpt2")
ids = tok.encode({SAMPLE!r})
outside = [p for p in opened if p.startswith({str(tmp_path)!r}) and not p.startswith({str(clone)!r})]
print(ids, tok.fingerprint, outside)
"""
    env = {k: v for k, v in os.environ.items() if k != "NANOGROW_GPT2_RANKS"}
    env["TIKTOKEN_CACHE_DIR"] = str(tmp_path / "empty_cache")  # tiktoken's own cache: empty, and never needed
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [*str(SAMPLE_IDS).split(), "sha256:306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7"
                                "ed9838dd930", "[]"]
    assert not (tmp_path / "empty_cache").exists()


# absolute paths of one machine (home folders, this project's work folders, Windows user folders), and the sibling
# folder of CI's clone; system locations every machine has (/usr/include, /tmp) are not a machine's
MACHINE_PATH = re.compile(r"(?<![\w.~-])(/(home|Users|root|work|mnt|scratch|private|var/folders)/[\w.-]|"
                          r"[A-Z]:\\\\?Users)|\.\.[/\\]shared|[\"']\.\.[\"'],\s*[\"']shared[\"']")


def test_no_tracked_file_names_a_path_outside_the_repository():
    """Every file that ships (outside tests/ and .ci/) works in a fresh clone in any folder: none names an absolute
    path of one machine, or the ../shared folder beside CI's clone."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for f in files:
        if f.startswith(("tests/", ".ci/")) or not os.path.isfile(os.path.join(REPO, f)):
            continue
        with open(os.path.join(REPO, f), "rb") as fh:
            text = fh.read().decode("utf-8", errors="replace")
        hits += [f"{f}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in MACHINE_PATH.finditer(text)]
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


def test_the_pattern_finds_what_it_should():
    for bad in ('"/work/main/.venv/bin/python"', "../shared/data/gpt2.tiktoken", '"..", "shared"', "/home/ann/x",
                "C:\\Users\\ann"):
        assert MACHINE_PATH.search(bad), bad
    for fine in ("/usr/include/**/*.h", "docs/papers.md", "out/run1", "~/data", "a/tmp/b", "https://x.org/home/a"):
        assert not MACHINE_PATH.search(fine), fine


def test_train_py_help_prints_every_setting_with_its_default_and_comment():
    p = subprocess.run([sys.executable, "train.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and not p.stderr
    from configurator import defaults_from_script
    for name in defaults_from_script(os.path.join(REPO, "train.py")):
        line = next((l for l in p.stdout.splitlines() if l.startswith(f"{name} = ")), None)
        assert line is not None, name
    assert "min_lr = 1e-4" in p.stdout and "# the end of the cosine" in p.stdout and "# I/O" in p.stdout


def test_every_script_answers_help(capsys):
    """grow.py (a library) as a process; the command-line scripts in this process (bench.py: test_configurator)."""
    p = subprocess.run([sys.executable, "grow.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "python train.py --init_from=grow" in p.stdout and not p.stderr
    import eval as E
    import inherit
    import mix
    from data import prepare
    from experiments import bimix, gstack, inheritune
    for mod in (inherit, mix, E, prepare, gstack, inheritune, bimix):
        with pytest.raises(SystemExit) as e:
            mod.main(["--help"])
        assert e.value.code == 0 and len(capsys.readouterr().out.splitlines()) >= 5, mod.__name__


def test_a_missing_device_is_one_line_in_every_script(tmp_path, capsys):
    import bench
    import eval as E
    import inherit
    from configurator import ConfigError, check_device
    for dev, msg in (("cuda:99", "device='cuda:99', but this machine has"), ("mps", "device='mps', but"),
                     ("gpu", "device='gpu' is not a device: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")):
        if dev == "mps":
            import torch
            if torch.backends.mps.is_available():
                continue
        with pytest.raises(ConfigError, match=re.escape(msg)):
            check_device(dev)
    with pytest.raises(ConfigError, match="device='cuda:99', but this machine has"):
        bench.settings(["--device=cuda:99"])
    assert E.main(["loss", str(tmp_path), "--dataset", str(tmp_path), "--device", "cuda:99"]) == 1
    assert "error: device='cuda:99', but this machine has" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="inherit.py rank: device='cuda:99', but this machine has"):
        inherit.main(["rank", str(tmp_path), "--device", "cuda:99"])
    p = subprocess.run([sys.executable, "train.py", "--device=cuda:99"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 1 and p.stderr.startswith("train.py: device='cuda:99', but this machine has")
    assert len(p.stderr.strip().splitlines()) == 1


def test_eval_loss_defaults_to_one_pass_over_each_val_split(tmp_path, capsys):
    """The default used to be 2^20 tokens per domain: 22 passes over a 46K-token val split, 10 minutes on a CPU."""
    import eval as E
    from test_eval import save_run, tiny_gpt, write_byte_dataset
    ds, meta = write_byte_dataset(tmp_path / "ds")
    model = tiny_gpt()
    res = E.eval_loss(model, ds, batch_size=4)  # block_size 16: 64 tokens a batch
    assert {d: r["tokens"] for d, r in res.items()} == {"code": 700 // 64 * 64, "prose": 500 // 64 * 64}
    res = E.eval_loss(model, ds, tokens=1e9, batch_size=4)  # more than the data: still one pass
    assert res["code"]["tokens"] == 700 // 64 * 64
    assert E.eval_iters(None, 4, 16, 10) == 1  # a split shorter than one batch: one batch
    run = save_run(tmp_path / "run", model, config={"dataset": ds})
    assert E.main(["loss", run, "--dataset", ds, "--batch_size", "4", "--device", "cpu"]) == 0
    assert "tokens" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        E.main(["loss", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert "default: one pass over each domain's val split" in out and "(default: 8)" in out


def test_bench_says_up_front_when_it_will_take_long(capsys):
    """A GPU config on a CPU used to start silently: 84 s a step and about 40 minutes for its default steps."""
    import bench
    bench.warn_if_long(30.0, {"warmup": 10, "steps": 20, "rounds": 5}, 1)
    assert "the first step took 30.0 s, so this benchmark may take up to 55 min" in capsys.readouterr().out
    bench.warn_if_long(0.05, {"warmup": 10, "steps": 20, "rounds": 5}, 2)
    assert capsys.readouterr().out == ""


def test_a_refusal_under_torchrun_is_printed_once(tiny_dataset, tmp_path):
    """Every process refuses alike (here: an out_dir that holds another run's checkpoints); rank 0 alone says so.
    torchrun's own failure report follows it: that is torchrun's, for any worker that exits non-zero."""
    from conftest import TINY_RUN, run_train
    out = tmp_path / "run"
    run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--max_iters=2"])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    p = subprocess.run(torchrun + ["train.py", *TINY_RUN, f"--dataset={tiny_dataset}", f"--out_dir={out}"], cwd=REPO,
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode != 0
    assert (p.stdout + p.stderr).count(f"train.py: out_dir={out} holds the checkpoints of an earlier run") == 1
