"""Growth inside train.py runs: the Gstack pipeline in one command, resumable after the growth."""
import json

import pytest
import torch

import grow
from conftest import TINY_RUN, read_metrics, run_train
from data.loader import Batcher
from model import GPT, GPTConfig
from runs import checkpoint_paths, load_checkpoint

# 2-layer model trained 10 steps (10 * 128 tokens), then grown; 30 steps in all
GROWN = TINY_RUN + ["--max_iters=30", "--eval_interval=10", "--log_interval=1", "--warmup_iters=3",
                    "--grow_at_tokens=1280", "--grow_factor=2", "--dropout=0.1", "--grow_learning_rate=1.5e-3"]


@pytest.fixture(scope="module")
def gstack_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("gstack")
    run_train(GROWN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--keep_checkpoints=3"])  # iter 10 too
    return out


def test_growth_inside_a_run(gstack_run):
    m = read_metrics(gstack_run)
    events = [e for e in m if e.get("event") == "grow"]
    assert len(events) == 1
    ev = events[0]
    assert ev["iter"] == 10 and ev["tokens"] == 1280 and ev["before"]["n_layer"] == 2 and ev["after"]["n_layer"] == 4
    train = {e["iter"]: e for e in m if "train_loss" in e}
    assert max(train) == 30  # training went on after the growth
    # compute accounting: a step of the grown model costs more than one of the small model
    assert train[12]["flops"] - train[11]["flops"] > 1.5 * (train[10]["flops"] - train[9]["flops"])
    # the schedule restarts: warmup again right after the growth (the official Gstack recipe), here to a peak
    # grow_learning_rate of half the base's
    assert train[11]["lr"] < train[10]["lr"] and train[11]["lr"] == pytest.approx(train[1]["lr"] / 2)
    ck = load_checkpoint(checkpoint_paths(str(gstack_run))[-1])
    assert ck["model_args"]["n_layer"] == 4 and ck["grow_iter"] == 10 and ck["iter_num"] == 30
    # a checkpoint right after the growth holds the Gstack layout: block i = small block i mod 2
    at_growth = load_checkpoint(str(gstack_run / "ckpt_0000010.pt"))
    assert at_growth["model_args"]["n_layer"] == 4
    w = at_growth["model"]
    for i in range(4):
        assert torch.equal(w[f"blocks.{i}.mlp.up_proj.weight"], w[f"blocks.{i % 2}.mlp.up_proj.weight"])


def test_resume_after_growth_reproduces_the_run(gstack_run, tiny_dataset, tmp_path):
    args = GROWN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path}", "--lr_decay_iters=30"]
    run_train(args + ["--max_iters=20"])
    run_train(args + ["--init_from=resume"])
    full = [(e["iter"], e.get("train_loss"), e.get("val_loss_mean")) for e in read_metrics(gstack_run)]
    part = [(e["iter"], e.get("train_loss"), e.get("val_loss_mean")) for e in read_metrics(tmp_path)]
    assert full == part


# several growths in one run, every 5 steps (640 tokens): MIDAS 2 -> 4 -> 6 -> 8 layers, gradual stacking 2 -> 4 -> 8
MIDAS = TINY_RUN + ["--grow_at_tokens=[640,1280,1920]", "--log_interval=1",
                    "--grow_layer_map=" + str(grow.midas_layer_maps(2, 2, 3)).replace(" ", "")]
GRADUAL = TINY_RUN + ["--grow_at_tokens=[640,1280]", "--grow_factor=2", "--log_interval=1"]


def test_midas_and_gradual_schedules_grow_at_the_steps_they_name(tiny_dataset, tmp_path):
    for name, args in (("midas", MIDAS), ("gradual", GRADUAL)):
        run_train(args + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / name}", "--keep_checkpoints=9"])
    grows = {name: [(e["iter"], e["before"]["n_layer"], e["after"]["n_layer"]) for e in read_metrics(tmp_path / name)
                    if e.get("event") == "grow"] for name in ("midas", "gradual")}
    assert grows == {"midas": [(5, 2, 4), (10, 4, 6), (15, 6, 8)], "gradual": [(5, 2, 4), (10, 4, 8)]}

    def blocks(name, it):  # the blocks of the checkpoint written right after the growth at `it`
        w = load_checkpoint(str(tmp_path / name / f"ckpt_{it:07d}.pt"))["model"]
        return [w[f"blocks.{i}.attn.q_proj.weight"] for i in range(len({k.split(".")[1] for k in w if "blocks." in k}))]

    def copies(bs):  # the pairs of blocks that are equal
        return [(i, j) for i in range(len(bs)) for j in range(i + 1, len(bs)) if torch.equal(bs[i], bs[j])]
    # MIDAS: each stage repeats the middle block (2 layers) of the model it grows, the copy right after it
    assert [copies(blocks("midas", it)) for it in (5, 10, 15)] == [[(0, 2), (1, 3)], [(1, 3), (2, 4)], [(2, 4), (3, 5)]]
    # gradual: each stage stacks the whole model twice (the second: the 4 layers trained 5 steps since the first)
    assert [copies(blocks("gradual", it)) for it in (5, 10)] == [[(0, 2), (1, 3)], [(0, 4), (1, 5), (2, 6), (3, 7)]]


def test_resume_between_two_growths_reproduces_the_run(tiny_dataset, tmp_path):
    args = GRADUAL + [f"--dataset={tiny_dataset}", "--lr_decay_iters=20", "--eval_interval=4"]
    run_train(args + [f"--out_dir={tmp_path / 'full'}"])
    run_train(args + [f"--out_dir={tmp_path / 'part'}", "--max_iters=8"])  # after the first growth only
    run_train(args + [f"--out_dir={tmp_path / 'part'}", "--init_from=resume"])
    full, part = (read_metrics(tmp_path / d) for d in ("full", "part"))
    assert [(e["iter"], e.get("train_loss"), e.get("val_loss_mean")) for e in full] == \
        [(e["iter"], e.get("train_loss"), e.get("val_loss_mean")) for e in part]
    assert load_checkpoint(checkpoint_paths(str(tmp_path / "part"))[-1])["growths_done"] == 2


@pytest.fixture(scope="module")
def small_run(tiny_dataset, tmp_path_factory):
    """A finished small run to grow from (init_from='grow')."""
    out = tmp_path_factory.mktemp("small")
    run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={out}", "--max_iters=10"])
    return out


def batch_loss(run_dir, ckpt_iter, step):
    """The loss of run_dir's checkpoint at ckpt_iter on the training batch of data step `step` (the batch train.py
    draws there with the run's settings), and that batch's inputs."""
    with open(run_dir / "config.json") as f:
        c = json.load(f)
    batcher = Batcher(c["dataset"], c["block_size"], c["batch_size"],
                      steps_batch=c["batch_size"] * c["gradient_accumulation_steps"], mixture=c["mixture"],
                      seed=c["seed"])
    model = grow.load_model(load_checkpoint(str(run_dir / f"ckpt_{ckpt_iter:07d}.pt")))
    x, y = batcher.get("train", step)
    with torch.no_grad():
        return model(x, y)[1].item(), x


def test_init_from_grow_counts_the_small_phase_and_continues_its_data(tiny_dataset, tmp_path, small_run):
    """A run grown from a finished base (init_from='grow') counts the base's tokens and FLOPs, and trains on the
    data after the base's batches (as the official run skips them), also after a resume."""
    small = small_run
    big = tmp_path / "big"
    common = TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={big}", "--log_interval=1", "--keep_checkpoints=3"]
    run_train(common + ["--max_iters=5", "--init_from=grow", f"--grow_from={small}", "--grow_factor=3",
                        "--grow_op=zero"])
    run_train(common + ["--max_iters=10", "--init_from=resume"])
    s, b = read_metrics(small), read_metrics(big)
    first_eval = [e for e in b if "val_loss" in e][0]
    last_small = [e for e in s if "val_loss" in e][-1]
    assert first_eval["tokens"] == last_small["tokens"] and first_eval["flops"] == last_small["flops"]
    # G_zero keeps the function: the grown model's first val loss is the small model's last
    assert first_eval["val_loss_mean"] == pytest.approx(last_small["val_loss_mean"], abs=1e-5)
    # the growth is logged as an in-run growth's is (eval.py compare reads g and the base's tokens from it), once
    events = [e for e in b if e.get("event") == "grow"]
    assert len(events) == 1 and events[0]["two_step"] and events[0]["tokens"] == last_small["tokens"]
    assert (events[0]["before"]["n_layer"], events[0]["after"]["n_layer"]) == (2, 6)
    ck = load_checkpoint(checkpoint_paths(str(big))[-1])
    assert ck["model_args"]["n_layer"] == 6 and ck["data_offset"] == 10 and ck["sampler"]["step"] == 20
    # the base trained 10 steps on data steps 0..9; the grown run's first step trains on data step 10, a batch the
    # base never saw, and after the resume at iter 5 on data step 15
    train = {e["iter"]: e["train_loss"] for e in b if "train_loss" in e}
    loss, x = batch_loss(big, 0, 10)
    assert train[1] == pytest.approx(loss, abs=1e-5)
    assert not any(torch.equal(x, batch_loss(big, 0, k)[1]) for k in range(10))
    assert train[6] == pytest.approx(batch_loss(big, 5, 15)[0], abs=1e-5)


@pytest.mark.parametrize("dim,op,extra", [("depth", "random", ["--grow_ramp_steps=5"]),
                                          ("width", "random", ["--grow_n_embd=64", "--grow_ramp_steps=50"]),
                                          ("depth", "learn", ["--grow_learn_steps=3"])])
def test_ramped_and_learned_growth_in_a_run(tiny_dataset, tmp_path, dim, op, extra):
    """G_random ramps its new weights in over the run (a checkpoint mid-ramp still loads into a plain GPT);
    G_learn trains its growth maps on training batches at the growth step."""
    run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path}", "--max_iters=15", "--eval_interval=15",
                          "--grow_at_tokens=640", f"--grow_dim={dim}", f"--grow_op={op}"] + extra)
    m = read_metrics(tmp_path)
    assert [e["iter"] for e in m if e.get("event") == "grow"] == [5]
    assert all(e["train_loss"] == e["train_loss"] for e in m if "train_loss" in e)  # finite
    ck = load_checkpoint(checkpoint_paths(str(tmp_path))[-1])
    if dim == "width":
        # 10 of 50 ramp steps after growth, inside MSG's first phase: the checkpoint holds the masks, and
        # loading it (grow.load_model) ramps on from there
        assert ck["model_args"]["n_embd"] == 64
        assert float(ck["model"]["blocks.0.mlp.up_proj.ramp"]) == pytest.approx(0.6)
        assert float(ck["model"]["blocks.0.attn.q_proj.ramp"]) == 0.0
        model = grow.load_model(ck)
        assert grow.ramps_active(model)
        grow.set_ramp(model, 1.0)
        GPT(model.config).load_state_dict(model.state_dict())  # plain once the ramp is done
    else:
        model = GPT(GPTConfig(**ck["model_args"]))
        model.load_state_dict(ck["model"])  # plain keys: 10 steps after growth, past the ramp, a plain GPT


@pytest.mark.parametrize("bad,msg", [
    (["--grow_factor=0"], "growth settings: grow_depth: factor=0 must be >= 1: growth makes the model larger"),
    (["--grow_layer_map=[0, 1, 2]"], "layer_map[2]=2 names a layer that does not exist; the model has 2 layers"),
    (["--grow_dim=width", "--grow_n_embd=40"], "n_embd=40 is not a multiple of head_dim=16"),
    (["--grow_op=stack"], "grow_op='stack': must be one of 'direct', 'zero', 'random', 'learn'"),
    (["--grow_dim=width", "--grow_n_embd=64", "--grow_op=random", "--grow_opts={'schedule':'fast'}"],
     "schedule='fast'; expected 'msg' or 'single'"),
    (["--grow_opts={'layout':'official'}"], "unexpected option(s) ['layout'] for op='direct'"),
    (["--grow_at_tokens=[640,1280]", "--grow_layer_map=[[0,1,0,1],[0,1,2,5]]"],  # the second growth's map, checked
     "layer_map[3]=5 names a layer that does not exist; the model has 4 layers"),  # against the first's model
    (["--grow_layer_map=[[0,1,0,1],[0,1,2,1,2,3]]"], "grow_layer_map holds 2 layer maps: give grow_at_tokens a list"),
    (["--grow_at_tokens=[1280,640]"], "grow_at_tokens=[1280, 640]: must be an integer >= 0, or a list of integers")])
def test_bad_growth_settings_are_refused_before_training(tiny_dataset, tmp_path, bad, msg):
    p = run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path}", "--grow_at_tokens=1280"] + bad,
                  check=False)
    assert p.returncode != 0 and msg in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "ckpt_0000000.pt").exists()  # refused before training started


def test_growth_from_an_incompatible_checkpoint_is_named(tiny_dataset, tmp_path):
    run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / 'small'}", "--max_iters=1"])
    p = run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / 'big'}", "--init_from=grow",
                              f"--grow_from={tmp_path / 'small'}", "--grow_dim=width", "--grow_n_embd=16"], check=False)
    assert p.returncode != 0 and "n_embd=16 is smaller than the current n_embd=32; growth only widens" in p.stderr


def test_init_from_grow_with_learn_and_resume_after_a_mapped_zero_growth(tiny_dataset, tmp_path, small_run):
    """G_learn from a finished small run gets its training batches; grow_data='replay' trains the grown model on
    the base's batches from its first; a run grown in-run with an explicit layer map resumes (its growth settings
    are not re-checked against the already grown model)."""
    run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / 'learned'}", "--max_iters=2",
                          "--init_from=grow", f"--grow_from={small_run}", "--grow_op=learn",
                          "--grow_factor=2", "--grow_learn_steps=2", "--grow_data=replay", "--log_interval=1"])
    learned = load_checkpoint(checkpoint_paths(str(tmp_path / "learned"))[-1])
    assert learned["model_args"]["n_layer"] == 4 and learned["data_offset"] == 0
    first = [e for e in read_metrics(tmp_path / "learned") if "train_loss" in e][0]
    assert first["iter"] == 1
    assert first["train_loss"] == pytest.approx(batch_loss(tmp_path / "learned", 0, 0)[0], abs=1e-5)
    # G_learn's fitting is compute too: 2 steps of one 4 x 32-token micro-batch through the grown model
    small_flops = load_checkpoint(checkpoint_paths(str(small_run))[-1])["flops"]
    fitting = 2 * 4 * 32 * GPT(GPTConfig(**learned["model_args"])).flops_per_token(32)
    assert read_metrics(tmp_path / "learned")[0]["flops"] == pytest.approx(small_flops + fitting)
    args = TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / 'mapped'}", "--grow_at_tokens=640",
                       "--grow_op=zero", "--grow_layer_map=[0, 1, 1, 0]", "--eval_interval=5", "--lr_decay_iters=20"]
    run_train(args + ["--max_iters=10"])
    run_train(args + ["--init_from=resume"])  # settings come back from the run's config.json; max_iters=20 here
    ck = load_checkpoint(checkpoint_paths(str(tmp_path / "mapped"))[-1])
    assert ck["iter_num"] == 20 and ck["model_args"]["n_layer"] == 4


def test_growth_inheritance_and_resume_on_two_processes(tiny_dataset, tmp_path):
    """DDP on 2 CPU processes (gloo): an in-run Gstack growth gives every rank the same grown model, a run stopped
    after the growth resumes, and it ends where one process ends; a DDP run can start from an inherited model."""
    import sys
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    args = TINY_RUN + [f"--dataset={tiny_dataset}", "--gradient_accumulation_steps=2", "--grow_at_tokens=1280",
                       "--grow_factor=2", "--lr_decay_iters=20", "--eval_interval=5"]
    run_train(args + [f"--out_dir={tmp_path / 'one'}"])
    run_train(args + [f"--out_dir={tmp_path / 'two'}", "--max_iters=15"], launcher=torchrun)
    run_train(args + [f"--out_dir={tmp_path / 'two'}", "--init_from=resume"], launcher=torchrun)
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [e["iter"] for e in two if e.get("event") == "grow"] == [5]
    last = lambda ms: [e for e in ms if "val_loss" in e][-1]
    assert last(two)["iter"] == 20 and last(two)["val_loss_mean"] == pytest.approx(last(one)["val_loss_mean"], abs=1e-4)
    assert load_checkpoint(checkpoint_paths(str(tmp_path / "two"))[-1])["model_args"]["n_layer"] == 4
    run_train(TINY_RUN + [f"--dataset={tiny_dataset}", f"--out_dir={tmp_path / 'inherited'}",
                          "--init_from=inherit", f"--inherit_from={tmp_path / 'one'}", "--inherit_n_layer=2",
                          "--max_iters=2", "--gradient_accumulation_steps=2"], launcher=torchrun)
    assert load_checkpoint(checkpoint_paths(str(tmp_path / "inherited"))[-1])["model_args"]["n_layer"] == 2


def test_resume_mid_ramp_reproduces_the_run(tiny_dataset, tmp_path):
    """Depthwise G_random grown at iter 5 and blended in over 10 steps; a run stopped at iter 10, mid-ramp
    (its checkpoint holds the blend factors), and resumed logs exactly what the uninterrupted run logs."""
    args = TINY_RUN + [f"--dataset={tiny_dataset}", "--max_iters=20", "--eval_interval=5", "--log_interval=1",
                       "--grow_at_tokens=640", "--grow_op=random", "--grow_ramp_steps=10", "--lr_decay_iters=20"]
    run_train(args + [f"--out_dir={tmp_path / 'full'}"])
    run_train(args + [f"--out_dir={tmp_path / 'part'}", "--max_iters=10"])
    mid = load_checkpoint(str(tmp_path / "part" / "ckpt_0000010.pt"))["model"]
    assert {float(v) for k, v in mid.items() if k.endswith(".ramp")} == {0.5}  # the 6 new of 8 blocks, half in
    assert len([k for k in mid if k.endswith(".ramp")]) == 6
    run_train(args + [f"--out_dir={tmp_path / 'part'}", "--init_from=resume"])
    rows = lambda d: [(e["iter"], e.get("train_loss"), e.get("val_loss_mean")) for e in read_metrics(d)]
    assert rows(tmp_path / "full") == rows(tmp_path / "part")
