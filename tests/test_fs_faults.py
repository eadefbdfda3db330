"""The file system's faults: a full disk (a file size limit, ulimit -f, makes one without root), paths that are
files, and two processes on one run folder or dataset. Each is one line that names the problem, and loses nothing.
A full disk while train.py writes a checkpoint: tests/test_reliability.py."""
import os
import resource
import signal
import subprocess
import sys

from conftest import REPO, run_train
from test_bad_input import snapshot, texts
from test_reliability import RUN, start_train, wait_for


def limited(max_bytes):
    """preexec_fn: no file of the child may grow past max_bytes, as if the disk filled there (writes get EFBIG)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


def prepare(*args, preexec_fn=None):
    return subprocess.run([sys.executable, os.path.join(REPO, "data", "prepare.py"), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, preexec_fn=preexec_fn)


def test_a_full_disk_while_preparing_keeps_the_old_dataset(tmp_path):
    src, data = texts(tmp_path / "src", n=40), tmp_path / "data"
    args = ["--name=mine", f"--out_root={data}", f"--source=a={src}/*.txt", "--val_fraction=0.2", "--tokenizer=byte"]
    assert prepare(*args).returncode == 0
    before = snapshot(data)
    p = prepare(*args, "--overwrite", "--split_bytes=0", preexec_fn=limited(2000))
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith(f"prepare.py: File too large writing {data}/mine/a (larger than the file size limit: "
                               f"see ulimit -f); nothing half-built was left behind; the dataset already in "
                               f"{data}/mine is intact"), p.stderr
    assert snapshot(data) == before  # no temporary folder, no lock file, the old dataset byte for byte


def test_paths_that_are_files_and_bad_names_are_refused(tiny_dataset, tmp_path):
    src, taken = texts(tmp_path / "src", n=5), tmp_path / "a_file"
    taken.write_text("mine")
    p = run_train([f"--dataset={tiny_dataset}", f"--out_dir={taken}", "--max_iters=1"], check=False)
    assert p.returncode == 1 and p.stderr.strip() == \
        f"train.py: out_dir={taken} is a file, not a folder: choose another out_dir"
    for args, says in (([f"--out_root={taken}"], f"--out_root={taken} is a file, not a folder"),
                       (["--workers=-1"], "--workers=-1: give at least 1 tokenizing process"),
                       ([f"--source=meta.json={src}/*.txt"], "--source: domain name 'meta.json' is not one folder "
                                                              "name")):
        p = prepare("--name=x", f"--source=a={src}/*.txt", f"--out_root={tmp_path / 'data'}", *args)
        assert p.returncode == 1 and p.stderr.startswith(f"prepare.py: {says}"), p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    assert taken.read_text() == "mine" and not (tmp_path / "data").exists()


def test_a_second_train_on_the_same_out_dir_refuses_and_a_killed_one_leaves_no_stale_lock(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    args = RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--max_iters=100000", "--lr_decay_iters=60"]
    first = start_train(args)
    try:
        wait_for(out / "ckpt_0000005.pt", first)
        second = run_train(args, check=False)
        assert second.returncode == 1 and second.stderr.strip() == (
            f"train.py: out_dir={out} is in use by another process (pid {first.pid}); wait for it to finish or stop "
            "it, or choose another out_dir")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (out / "train.lock").exists()  # the kill left the file, but no lock: the kernel dropped it
    run_train(RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--init_from=resume", "--max_iters=60"])
    assert not (out / "train.lock").exists()  # a run that ends removes it


def test_a_second_prepare_of_the_same_name_refuses_until_the_first_is_killed(tmp_path):
    src, data = texts(tmp_path / "src", n=40), tmp_path / "data"
    data.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", f"import sys, time; sys.path.insert(0, {REPO!r}); "
                               "from data.prepare import hold_lock; "
                               f"release = hold_lock({str(data / '.mine.lock')!r}, 'x', 'y'); "
                               "print('locked', flush=True); time.sleep(300)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        args = ["--name=mine", f"--out_root={data}", f"--source=a={src}/*.txt", "--val_fraction=0.2"]
        p = prepare(*args)
        assert p.returncode == 1 and p.stderr.strip() == (
            f"prepare.py: dataset 'mine' in {data} is in use by another process (pid {holder.pid}); wait for it to "
            "finish or stop it, or choose another --name")
        assert sorted(os.listdir(data)) == [".mine.lock"]  # the holder's: nothing written beside it
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert prepare(*args).returncode == 0
    assert sorted(os.listdir(data)) == ["mine"]


def test_a_folder_of_a_few_files_becomes_a_dataset_and_a_cap_is_said(tmp_path):
    """Your own text: --source DOMAIN=<folder> (absolute or not) reads every file under it; 14 files, too few
    documents for a val split at the default 2%, are cut into smaller documents, saying so; a domain stopped by
    --max_bytes says that it had more text."""
    notes = tmp_path / "notes"
    for i in range(14):
        (notes / f"sub{i % 3}").mkdir(parents=True, exist_ok=True)
        (notes / f"sub{i % 3}" / f"note{i}.md").write_text(
            f"# Note {i}\n\n" + " ".join(f"point {j} of note {i} is about topic {(i * j) % 31}." for j in range(300)))
    p = prepare("--name=notes", f"--out_root={tmp_path / 'data'}", f"--source=notes={notes}", "--tokenizer=byte")
    assert p.returncode == 0, p.stderr
    assert "notes/notes: its 14 documents gave no val split, so its texts were cut into" in p.stdout
    meta = __import__("json").loads((tmp_path / "data" / "notes" / "meta.json").read_text())["domains"]["notes"]
    assert meta["val_tokens"] > 0 and meta["docs"] > 14 and not meta["capped"]
    p = prepare("--name=capped", f"--out_root={tmp_path / 'data'}", f"--source=notes={notes}", "--tokenizer=byte",
                "--max_bytes=20000", "--val_fraction=0.2")
    assert p.returncode == 0 and "stopped at --max_bytes=20000 with more text left (--max_bytes=0 reads it all)" \
        in p.stdout, p.stdout + p.stderr
