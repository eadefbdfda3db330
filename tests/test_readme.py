"""Every command in the README runs as written, in order, in a fresh copy of the repository, so that the README
cannot drift from the code. The slow ones run with a few settings added (fast(), which says which); experiments run
as --dry_run (every arm's train.py command is built and checked); a multi-GPU launch is checked for its config, and
a command on a Hugging Face checkpoint the user has (/models/...) for its settings."""
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from conftest import REPO
from experiments.common import resolve

# A slow command gets a few settings added to fit the test suite; the rest runs as written.
def fast(argv):
    """train.py: a tenth of the steps it asks for (the README's steps keep their order: a resume goes further),
    or 4, with tiny evaluations; prepare.py: a small slice of the corpus; experiments: --dry_run."""
    cmd = " ".join(argv)
    if argv[1] == "train.py" and "_tiny.py" not in cmd:
        asked = [int(a.split("=")[1]) for a in argv if a.startswith("--max_iters=")]
        return argv + [f"--max_iters={max(2, asked[-1] // 10) if asked else 4}", "--eval_interval=2",
                       "--eval_iters=1", "--batch_size=2"]
    if argv[1] == "data/prepare.py" and "--source" not in cmd:
        return argv + ["--max_bytes=2e6"]
    if argv[1].startswith("experiments/"):
        return argv + ["--dry_run"]
    return argv


SKIP = re.compile(r"^(pip install|python -m pytest|torchrun .*nproc_per_node=8|.*/models/)")


def readme_commands():
    """The README's shell commands, in order: each line of its ```bash blocks, comments and `&&` chains split."""
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            cmds += [c.strip() for c in line.split("&&") if c.strip()]
    return cmds


def test_every_readme_command_runs_as_written(tmp_path):
    clone = tmp_path / "clone"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if os.path.isfile(os.path.join(REPO, f)):
            os.makedirs(clone / os.path.dirname(f), exist_ok=True)
            shutil.copy(os.path.join(REPO, f), clone / f)
    cmds = readme_commands()
    assert len(cmds) >= 15 and cmds[0].startswith("pip install")
    for cmd in cmds:
        if cmd.startswith("torchrun"):  # a cluster launch: its config exists and parses
            cfg = next(a for a in shlex.split(cmd) if a.startswith("config/"))
            compile(open(clone / cfg).read(), cfg, "exec")
        if "/models/" in cmd and " train.py " in f" {cmd} ":  # a checkpoint the user has: its settings are valid
            resolve(shlex.split(cmd)[2:])  # (tests/test_hf.py runs the same commands on a tiny folder)
    # two chains on the 2 cores, each in the README's order: the byte-level datasets and what uses them, and the
    # rest (the default corpus and the runs in out/); no command of one chain reads what the other writes
    cmds = [c for c in cmds if not SKIP.match(c)]
    bytes_chain = [c for c in cmds if re.search(r"mine|pybytes|experiments/", c)]
    chains = [bytes_chain, [c for c in cmds if c not in bytes_chain]]
    with ThreadPoolExecutor(2) as pool:
        failed = [f for fs in pool.map(lambda chain: run_chain(chain, clone), chains) for f in fs]
    assert not failed, "\n\n".join(failed)
    assert sum(map(len, chains)) >= 12


def run_chain(cmds, clone):
    """Run the commands in order in clone; the failures, each with its output (a chain stops at its first)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for cmd in cmds:
        argv = fast(shlex.split(cmd))
        argv[0] = sys.executable if argv[0] == "python" else argv[0]
        p = subprocess.run(argv, cwd=clone, env=env, capture_output=True, text=True, timeout=300)
        if cmd.startswith("python mix.py --fit") and "the law has no interior optimum" in p.stderr:
            continue  # runs of a few steps fit the law but cannot place its optimum: the refusal that says so
        if p.returncode != 0:
            return [f"README command failed: {cmd}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"]
    return []
