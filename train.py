"""
One trainer for every experiment: scratch, resume, growth (Gstack and friends), inheritance (Inheritune) and data
mixtures (BiMix). Runs unchanged on a CPU, one GPU, or many under torchrun (DDP):

    python train.py                                          # small model on the offline corpus, CPU or GPU
    python train.py config/gstack_tiny.py --max_iters=500    # a config file, then --key=value overrides
    torchrun --standalone --nproc_per_node=8 train.py config/gstack_410m.py

Reads top to bottom: settings, setup, model, one training loop. Each run writes to out_dir: config.json,
metrics.jsonl (one JSON object per line; docs/training.md) and the last `keep_checkpoints` checkpoints.
"""

import atexit
import contextlib
import json
import math
import os
import random
import signal
import sys
import time
import warnings
from dataclasses import asdict, replace
from itertools import count

import numpy as np
import torch
from torch.distributed import destroy_process_group, init_process_group
from torch.nn.parallel import DistributedDataParallel as DDP

import grow
import inherit
from configurator import (ConfigError, check_device, check_train_settings, given_settings, install_error_hook,
                          model_args, model_settings, settings_help)
from data.loader import Batcher, DataError, check_tokenizer, dataset_dir, domain_losses, load_meta, tokenizer_record
from data.prepare import BusyError, hold_lock
from hf import from_hf, is_hf_folder, reference_info
from mix import resolve_mixture
from model import GPT, GPTConfig
from runs import CheckpointError, checkpoint_paths, find_checkpoint, read_metrics, save_checkpoint

# Our own errors (a bad setting, dataset or checkpoint; a full or read-only disk) already say what is wrong and
# what to do: they print as one message. Anything else is a bug and keeps its traceback.
install_error_hook("train.py", (ConfigError, DataError, CheckpointError, BusyError),
                   folder=lambda: globals().get("out_dir"),
                   then="continue with --init_from=resume (the checkpoints already written are whole)")

# ----------------------------------------------------------------------------------------------------------------
# settings (defaults train a small GPT-2 on the offline corpus in a few minutes on a laptop CPU)
# I/O
out_dir = "out"                 # the run's folder: config.json, metrics.jsonl, checkpoints
eval_interval = 50              # evaluate every domain's val split (and write a checkpoint) every N iterations
log_interval = 10               # log the training loss and throughput every N iterations
eval_iters = 5                  # batches per domain per evaluation
eval_only = False               # evaluate once and exit; writes nothing to out_dir
always_save_checkpoint = True   # False: write a checkpoint only when the val loss improves
keep_checkpoints = 2            # the last K checkpoints are kept, older ones deleted (a damaged newest falls back)
init_from = "scratch"           # 'scratch' | 'resume' | 'grow' | 'inherit' | a local Hugging Face model directory
wandb_log = False               # also log to Weights & Biases (pip install wandb)
wandb_project = "nanogrow"
wandb_run_name = "run"
# data
dataset = "pycorpus"            # a folder under data/ (built by data/prepare.py) or a path to one
mixture = None                  # None/'natural' (by size) | 'uniform' | 'se' | 'je' | 'ce' | {domain: proportion}
batch_size = 8                  # sequences per micro-batch per process
block_size = 128                # tokens per sequence (the context); init_from grow/inherit: the source's unless given
gradient_accumulation_steps = 1 # micro-batches per optimizer step over all processes (nanoGPT's meaning)
total_batch_tokens = 0          # >0: tokens per optimizer step; sets gradient_accumulation_steps from it
# model (resume keeps the run's and refuses a change; grow, inherit and a HF folder bring their own)
arch = "gpt2"                   # 'gpt2' | 'llama'
n_layer = 4                     # transformer blocks
n_head = 4                      # attention heads (n_embd must be divisible by it)
n_kv_head = None                # llama: key/value heads (grouped-query attention); None = n_head
n_embd = 128                    # hidden size
intermediate_size = None        # MLP hidden size; None = 4*n_embd (gpt2) or ~8/3*n_embd rounded to 64 (llama)
dropout = 0.0                   # in [0, 1)
bias = False                    # biases in Linear and LayerNorm layers
tie_embeddings = None           # share the input embedding and LM head; None = True for gpt2, False for llama
scale_attn_by_inverse_layer_idx = False  # gpt2: attention logits / (layer index + 1) (Inheritune's GPT-2)
gelu_approximate = "none"       # gpt2's GELU: 'none' (exact, nanoGPT's) | 'tanh' (GPT-2's own, Hugging Face's gelu_new)
vocab_size = None               # None: the tokenizer's, padded up to a multiple of 64
# optimizer and schedule
learning_rate = 2e-3            # peak learning rate, >= 0
max_iters = 200                 # optimizer steps
max_tokens = 0                  # >0: the budget in tokens instead of iterations
weight_decay = 0.1              # AdamW, on 2-D weights only
beta1 = 0.9                     # AdamW betas, in [0, 1)
beta2 = 0.95
grad_clip = 1.0                 # 0 disables clipping
decay_lr = True                 # linear warmup, then cosine decay to min_lr
warmup_iters = 20               # linear warmup steps
lr_decay_iters = None           # None: max_iters
min_lr = 1e-4                   # the end of the cosine: 0 <= min_lr <= learning_rate
nan_policy = "stop"             # a non-finite loss: 'stop' the run, or 'skip' that step's update
# growth (grow.py): init_from='grow' grows the checkpoint in grow_from; grow_at_tokens>0 grows inside this run
grow_from = ""                  # init_from='grow': the small run (folder) or checkpoint to grow
grow_data = "continue"          # init_from='grow': 'continue' the data stream after the batches the base run trained on
                                # (the official run skips them, --resume_id) | 'replay' them from the base's first step
grow_at_tokens = 0              # >0: grow inside this run once it has trained this many tokens; a list (e.g.
                                # [393216, 786432]) grows at each: gradual stacking, MIDAS (depthwise)
grow_dim = "depth"              # 'depth' | 'width'
grow_op = "direct"              # 'direct' (Gstack when depthwise) | 'zero' | 'random' | 'learn'
grow_factor = 4                 # depthwise: g, the number of times the layers are stacked
grow_layer_map = None           # depthwise: explicit source layer of each new layer, e.g. [0, 0, 1, 1]; with
                                # several growths one map each, e.g. grow.midas_layer_maps(2, 2, 3)
grow_n_embd = 0                 # widthwise: the new hidden size
grow_noise = 0.0                # W <- (1-a) W + a*eps on grown weights (Gstack paper, appendix I)
grow_ramp_steps = 100           # 'random': steps over which new weights are blended in
grow_learn_steps = 50           # 'learn' (LiGO): steps training the growth maps
grow_learn_lr = 1e-3            # 'learn': learning rate of the growth maps
grow_schedule = "restart"       # after growth: 'restart' warmup + cosine (the paper) or 'continue' the schedule
grow_learning_rate = 0.0        # peak LR of the grown model (0: learning_rate); the paper's base uses 1e-3
grow_opts = None                # more options of the operator (grow.py), e.g. {'schedule': 'single'} or
                                # {'layout': 'fan_out_zero', 'rescale_norms': False}; None: the operator's defaults
# inheritance (inherit.py): init_from='inherit' takes blocks of the reference in inherit_from
inherit_from = ""               # init_from='inherit': the reference run (folder) or checkpoint
inherit_n_layer = 0             # blocks to inherit (the first n)
inherit_layers = None           # or an explicit list of the reference's blocks, e.g. [0, 1, 5]
inherit_parts = None            # what to copy: None = inherit.py's default | 'attn+norm' | 'mlp+norm' | 'attn+mlp' | 'full' | 'all'
inherit_fresh_init = None       # what is not inherited: None/'model' (GPT's init) | 'torch' (official OpenLLaMA code)
# system
device = "auto"                 # 'auto' | 'cpu' | 'cuda' | 'cuda:1' | 'mps'
dtype = "auto"                  # 'auto' (bfloat16 on a GPU that has it, else float32) | 'float32' | 'bfloat16' | 'float16'
compile = None                  # torch.compile the model; None: on CUDA only
seed = 1337                     # model init, data order and dropout
# ----------------------------------------------------------------------------------------------------------------
setting_names = [k for k, v in globals().items() if not k.startswith("_") and k not in ("setting_names",)
                 and isinstance(v, (int, float, bool, str, list, dict, type(None)))]
defaults = {k: globals()[k] for k in setting_names}
if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
    print(__doc__.strip() + "\n\nSettings, with their defaults (a config file or --key=value changes them):\n\n"
          + settings_help(os.path.abspath(__file__)))
    sys.exit(0)
given = given_settings(defaults, sys.argv[1:])  # what this command line asks for, config files included
typed = given_settings(defaults, [a for a in sys.argv[1:] if a.startswith("--")])  # ... as --key=value itself
recorded = {}  # resume: the run's own settings, from its config.json, then whatever this command line changes
run_config = os.path.join(given.get("out_dir", defaults["out_dir"]), "config.json")
if given.get("init_from") == "resume" and os.path.isfile(run_config):
    recorded = given_settings(defaults, [run_config])
settings = check_train_settings({**defaults, **recorded, **given})  # every value in range, before anything is built
globals().update(settings)
check_device(device)
if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise ConfigError(f"out_dir={out_dir} is a file, not a folder: choose another out_dir")
if not eval_only and int(os.environ.get("RANK", 0)) == 0:  # one run per folder at a time (rank 0 writes it)
    os.makedirs(out_dir, exist_ok=True)
    atexit.register(hold_lock(os.path.join(out_dir, "train.lock"), f"out_dir={out_dir}", "choose another out_dir"))
if init_from != "resume" and checkpoint_paths(out_dir):  # a new run would mix its checkpoints with the earlier run's
    raise ConfigError(f"out_dir={out_dir} holds the checkpoints of an earlier run (newest: "
                      f"{os.path.basename(checkpoint_paths(out_dir)[-1])}); continue it with --init_from=resume, "
                      f"choose another out_dir, or delete them")
# ----------------------------------------------------------------------------------------------------------------
# processes, devices, precision
ddp = int(os.environ.get("RANK", -1)) != -1
if device == "auto":
    device = "cuda" if torch.cuda.is_available() else "cpu"
if ddp:
    rank, local_rank, world_size = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
else:
    rank, local_rank, world_size = 0, 0, 1
master = rank == 0
device_type = "cuda" if device.startswith("cuda") else device.split(":")[0]
if dtype == "auto":
    dtype = "bfloat16" if device_type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
if compile is None:
    compile = device_type == "cuda"
ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
ctx = contextlib.nullcontext() if dtype == "float32" else torch.autocast(device_type=device_type, dtype=ptdtype)
scaler = torch.amp.GradScaler(device_type, enabled=dtype == "float16")
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
torch.manual_seed(seed)
log = print if master else (lambda *a, **k: None)

source_given = grow_from if init_from == "grow" else inherit_from
hf_reference = init_from == "inherit" and is_hf_folder(inherit_from)  # a Hugging Face folder (Inheritune's setting)
if init_from in ("grow", "inherit"):  # the checkpoint this run starts from, read now: it may set block_size
    source_ckpt, source_path = (reference_info(inherit_from), inherit_from) if hf_reference else \
        find_checkpoint(source_given, log=log)
    if "block_size" not in given:  # the source's context, rather than a default it may not have
        block_size = settings["block_size"] = source_ckpt["model_args"]["block_size"]
        log(f"block_size={block_size}: the context of {source_given}'s model (--block_size=N trains on shorter "
            f"sequences)")

if total_batch_tokens:
    per_micro = batch_size * block_size * world_size
    if total_batch_tokens % per_micro:
        raise ConfigError(f"total_batch_tokens={total_batch_tokens} is not a multiple of batch_size*block_size*"
                          f"world_size={per_micro}; pick a multiple")
    gradient_accumulation_steps = total_batch_tokens // per_micro * world_size
elif gradient_accumulation_steps % world_size:  # it counts micro-batches over all processes: a multiple of them
    _rounded = -(-gradient_accumulation_steps // world_size) * world_size
    log(f"gradient_accumulation_steps={gradient_accumulation_steps} rounded up to {_rounded}, a multiple of the "
        f"{world_size} processes ({_rounded // world_size} micro-batch(es) each per step)")
    gradient_accumulation_steps = settings["gradient_accumulation_steps"] = _rounded
accum = gradient_accumulation_steps // world_size        # micro-batches per process per step
tokens_per_iter = batch_size * block_size * gradient_accumulation_steps
if max_tokens:
    max_iters = math.ceil(max_tokens / tokens_per_iter)
lr_decay_iters = lr_decay_iters or max_iters
data_dir = dataset_dir(dataset)
load_meta(data_dir)  # a missing or unfinished dataset is named before anything reads it
try:
    mixture_resolved = resolve_mixture(mixture, data_dir)
except ValueError as e:
    raise ConfigError(f"mixture={mixture!r}: {e}") from None
batcher = Batcher(data_dir, block_size, batch_size, steps_batch=batch_size * gradient_accumulation_steps,
                  mixture=mixture_resolved, seed=seed, device=device)
data_tokenizer = tokenizer_record(batcher.meta)  # recorded in every checkpoint: what its token ids mean


def grown(small, at_iter, layer_map):
    """The model grown from `small` with this run's growth settings (grow.py). G_learn fits its growth maps on
    the training batches of the steps ahead, so a resumed run draws the same ones."""
    learn = {}
    if grow_op == "learn":
        learn = {"batches": (batcher.get("train", data_offset + at_iter + k, 0, rank, world_size) for k in count()),
                 "steps": grow_learn_steps, "lr": grow_learn_lr}
    torch.manual_seed(seed + at_iter)  # every rank draws the same new weights
    opts = {**(grow_opts or {}), **learn}
    if grow_dim == "depth":
        return grow.grow_depth(small, grow_op, factor=grow_factor, layer_map=layer_map, noise=grow_noise, **opts)
    return grow.grow_width(small, grow_n_embd, grow_op, noise=grow_noise, **opts)


def learn_flops(big):
    """G_learn's compute fitting its maps: grow_learn_steps training steps of the grown model on one micro-batch
    per process (its tokens are the batches of the steps ahead, which the run trains on anyway: not counted)."""
    if grow_op != "learn":
        return 0
    return grow_learn_steps * batch_size * block_size * world_size * big.flops_per_token(block_size)


# ----------------------------------------------------------------------------------------------------------------
# the model: from scratch, a checkpoint (resume), a grown small model, an inherited reference, or Hugging Face
iter_num, tokens_seen, flops_seen, best_val_loss = 0, 0, 0.0, float("inf")
grow_iter = None            # iteration at which this run last grew (restarts the schedule, starts G_random's ramp)
# in-run growths, at these token counts, with these layer maps (several: gradual or MIDAS stacking)
growths = grow_at_tokens if isinstance(grow_at_tokens, list) else [grow_at_tokens] if grow_at_tokens else []
several_maps = bool(grow_layer_map) and isinstance(grow_layer_map[0], list)
layer_maps = grow_layer_map if several_maps else [grow_layer_map] * len(growths)
growths_done = 0
data_offset = 0             # step iter_num trains on the batches of data step data_offset + iter_num (data/loader.py)
schedule_start = 0
ckpt = None
if init_from == "scratch":
    model = GPT(GPTConfig(**dict(model_args(settings), vocab_size=vocab_size or 64 * math.ceil(batcher.meta["vocab_size"] / 64))))
elif init_from == "resume":
    ckpt, ckpt_path = find_checkpoint(out_dir, log=log)
    log(f"resuming from {ckpt_path}")
    check_tokenizer(ckpt, batcher.meta, f"checkpoint {ckpt_path}", data_dir)
    model = grow.load_model(ckpt)
    iter_num, tokens_seen, flops_seen = ckpt["iter_num"], ckpt["tokens_seen"], ckpt["flops"]
    best_val_loss, grow_iter, schedule_start = ckpt["best_val_loss"], ckpt["grow_iter"], ckpt["schedule_start"]
    growths_done = ckpt.get("growths_done", int(grow_iter is not None))  # a checkpoint of one growth at most
    data_offset = ckpt["data_offset"]
    _was = ckpt["config"]  # the run's own end of the cosine, to say so when this command moves it
    decay_was = _was.get("lr_decay_iters") or (math.ceil(_was["max_tokens"] / tokens_per_iter) if _was.get("max_tokens")
                                                else _was["max_iters"])
elif init_from in ("grow", "inherit"):
    check_tokenizer(source_ckpt, batcher.meta, f"{init_from}_from checkpoint {source_path}", data_dir)
    source = {"checkpoint": os.path.abspath(source_path), "iter_num": source_ckpt.get("iter_num"),
              "digest": source_ckpt.get("digest"), "init_from": init_from,
              "given": os.path.abspath(source_given)}
    try:
        # a Hugging Face reference: only the blocks to inherit are read (a 7B reference is never whole in memory)
        small = from_hf(source_path, n_layer=max(inherit_layers or [inherit_n_layer - 1]) + 1) if hf_reference \
            else grow.load_model(source_ckpt)
        if init_from == "grow":
            grow.validate_growth(small.config, grow_dim, grow_op, grow_factor, grow_layer_map, grow_n_embd, grow_opts)
            # the base trained on data steps [its offset, its offset + its iter_num); batches are a function of
            # (seed, step), so starting at step 0 would train the large model first on exactly those batches again
            data_offset = source_ckpt["data_offset"] + (source_ckpt["iter_num"] if grow_data == "continue" else 0)
            model = grown(small.to(device), 0, grow_layer_map)
            # the small phase is part of this run's cost (Gstack compute accounting: C = C_small + C_large)
            tokens_seen, flops_seen = source_ckpt["tokens_seen"], source_ckpt["flops"] + learn_flops(model)
            grow_iter, growths_done = 0, len(growths)  # this run grew once, at its start
            log(f"grew {grow_from} ({small.config.n_layer} layers, {small.config.n_embd} wide) with {grow_dim} "
                f"{grow_op} to {model.config.n_layer} layers, {model.config.n_embd} wide; data from step "
                f"{data_offset} ({grow_data})")
        else:
            kwargs = {k: v for k, v in (("parts", inherit_parts), ("fresh_init", inherit_fresh_init)) if v is not None}
            model = inherit.inherit(small, inherit_n_layer, layers=inherit_layers, **kwargs)
            log(f"inherited {model.config.n_layer} of {source_ckpt['model_args']['n_layer']} layers from "
                f"{inherit_from}")
    except (ValueError, TypeError, ImportError, FileNotFoundError) as e:
        raise ConfigError(f"init_from={init_from!r} from {source_given}: {e}") from None
    del source_ckpt  # its optimizer state is not needed
elif os.path.isdir(init_from):
    try:
        model = from_hf(init_from)
    except (ValueError, FileNotFoundError, ImportError) as e:  # they name the file and what is not supported
        raise ConfigError(f"init_from={init_from!r}: {e}") from None
else:
    raise ConfigError(f"init_from={init_from!r}: use 'scratch', 'resume', 'grow', 'inherit' or a local Hugging Face "
                      f"model directory (config.json + weights)")
# config.json records the model actually trained; resume refuses a command line that would change it
settings.update(model_settings(init_from, asdict(model.config), recorded, given, typed, out_dir, log))
if growths_done < len(growths):  # refuse bad growth settings now, not at the growth step hours later
    try:
        _config = model.config
        for _map in layer_maps[growths_done:]:  # each growth against the model the one before it makes
            grow.validate_growth(_config, grow_dim, grow_op, grow_factor, _map, grow_n_embd, grow_opts)
            _config = replace(_config, n_layer=len(_map) if _map else _config.n_layer * grow_factor)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"growth settings: {e}") from None
if block_size > model.config.block_size:
    raise ConfigError(f"block_size={block_size} is longer than the model's context ({model.config.block_size}): pass "
                      f"--block_size={model.config.block_size} or less")
model.to(device)
batcher.require_vocab(model.config.vocab_size)


def setup_training(model, optimizer_state=None):
    """Optimizer, compilation and DDP for a model; called again after an in-run growth."""
    optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type)
    if optimizer_state is not None:  # the saved groups bring their AdamW kernel: a run resumes as it ran
        optimizer.load_state_dict(optimizer_state)
    train_model = torch.compile(model) if compile else model
    if ddp:
        # buffers (RoPE tables, growth ramps) are set identically on every rank: no need to broadcast them (newer
        # torch warns about the flag on every rank; it is meant)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*broadcast_buffers", category=FutureWarning)
            train_model = DDP(train_model, device_ids=[local_rank] if device_type == "cuda" else None,
                              broadcast_buffers=False)
    return optimizer, train_model


optimizer, train_model = setup_training(model, ckpt["optimizer"] if ckpt else None)
flops_per_token = model.flops_per_token(block_size)
if ckpt is not None:  # the exact RNG streams of the interrupted run (dropout, growth inits)
    torch.set_rng_state(ckpt["rng"]["torch"])
    if device_type == "cuda" and ckpt["rng"]["cuda"] is not None:
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"])
    np.random.set_state(ckpt["rng"]["numpy"])
    random.setstate(ckpt["rng"]["python"])
    scaler.load_state_dict(ckpt["scaler"])
ckpt = None  # free memory


def get_lr(it):
    """Linear warmup then cosine decay to min_lr at lr_decay_iters; after a growth with grow_schedule='restart' the
    warmup and the cosine start again at the growth step (the Gstack recipe) and still end at lr_decay_iters."""
    peak = grow_learning_rate if grow_learning_rate and grow_iter is not None and it >= grow_iter else learning_rate
    if not decay_lr:
        return peak
    it, end = it - schedule_start, lr_decay_iters - schedule_start
    if it < warmup_iters:
        return peak * (it + 1) / (warmup_iters + 1)
    if it >= end:
        return min_lr
    ratio = (it - warmup_iters) / max(1, end - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (peak - min_lr)


# ----------------------------------------------------------------------------------------------------------------
# logging and checkpoints
metrics_path = os.path.join(out_dir, "metrics.jsonl")
if wandb_log:  # on every rank, so that none is left waiting for the others when it is missing
    try:
        import wandb
    except ImportError:
        raise ConfigError("wandb_log=True needs wandb: pip install wandb") from None
if master and not eval_only:  # eval_only only prints: it leaves the run's folder as it was
    os.makedirs(out_dir, exist_ok=True)
    if init_from == "resume" and os.path.exists(metrics_path):
        # drop what the interrupted run logged after its checkpoint (those steps are about to be redone; a train
        # line's iter counts the steps already done), and a last line cut short by the crash
        keep = [m for m in read_metrics(metrics_path, log) if m["iter"] <= iter_num]
        with open(metrics_path + ".tmp", "w") as f:
            f.writelines(json.dumps(m) + "\n" for m in keep)
        os.replace(metrics_path + ".tmp", metrics_path)
    elif os.path.exists(metrics_path):
        os.remove(metrics_path)  # a fresh run in an old out_dir starts a fresh log
    # resume is a way of continuing a run, not how it started: config.json keeps its init_from, so that giving
    # it to train.py again repeats the run
    origin = recorded.get("init_from") if init_from == "resume" and recorded.get("init_from") != "resume" else None
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(dict(settings, mixture=mixture_resolved, **({"init_from": origin} if origin else {})), f, indent=2)
    if init_from in ("grow", "inherit"):  # the checkpoint this run started from: reusing the run checks it
        with open(os.path.join(out_dir, "source.json"), "w") as f:
            json.dump(source, f, indent=2)
    if wandb_log:
        wandb.init(project=wandb_project, name=wandb_run_name, config=settings)


def log_metrics(**m):
    if not master or eval_only:
        return
    with open(metrics_path, "a") as f:
        f.write(json.dumps(m) + "\n")
    if wandb_log:
        wandb.log({k: v for k, v in m.items() if isinstance(v, (int, float))}, step=m["iter"])


if init_from == "grow":  # the same event an in-run growth logs, so eval.py finds every run's growth the same way
    log_metrics(event="grow", iter=0, tokens=tokens_seen, flops=flops_seen, two_step=True, before=asdict(small.config),
                after=asdict(model.config), op=grow_op, dim=grow_dim)


def write_checkpoint():
    """Save everything needed to continue exactly, then delete all but the newest keep_checkpoints."""
    if not master:
        return
    ckpt = {"model": model.state_dict(), "model_args": asdict(model.config), "optimizer": optimizer.state_dict(),
            "config": settings, "iter_num": iter_num, "tokens_seen": tokens_seen, "flops": flops_seen,
            "best_val_loss": best_val_loss, "grow_iter": grow_iter, "growths_done": growths_done,
            "schedule_start": schedule_start,
            "data_offset": data_offset, "scaler": scaler.state_dict(), "tokenizer": data_tokenizer,
            "sampler": {"seed": seed, "step": data_offset + iter_num},  # batches are a function of (seed, step)
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state() if device_type == "cuda" else None}}
    save_checkpoint(ckpt, os.path.join(out_dir, f"ckpt_{iter_num:07d}.pt"))
    for old in checkpoint_paths(out_dir)[:-keep_checkpoints]:
        os.remove(old)


# Preemption (SIGTERM from a cluster scheduler, SIGINT from Ctrl-C): finish the current step, write a checkpoint,
# exit cleanly. The signal handler only sets a flag; the loop acts on it between steps, where the state is whole.
stop_signal = None


def request_stop(signum, frame):
    global stop_signal
    stop_signal = signum


signal.signal(signal.SIGTERM, request_stop)
signal.signal(signal.SIGINT, request_stop)


def stop_requested():
    """Every rank must agree to stop at the same step (a rank leaving early would hang the others)."""
    if not ddp:
        return stop_signal is not None
    flag = torch.tensor([stop_signal is not None], dtype=torch.int32, device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


def grow_now():
    """Growth inside the run: grow the trained small model, then a fresh optimizer, a recompile and DDP again."""
    global model, optimizer, train_model, grow_iter, growths_done, schedule_start, flops_per_token, flops_seen
    before = asdict(model.config)
    model.eval()  # LiGO's inner training should not see dropout
    model = grown(model, iter_num, layer_maps[growths_done]).to(device).train()
    growths_done += 1
    if ddp:  # one model on every rank (G_learn fitted its maps on each rank's own batches)
        for t in model.state_dict().values():
            torch.distributed.broadcast(t, src=0)
    optimizer, train_model = setup_training(model)  # the official code builds a new AdamW: no state carries over
    flops_per_token = model.flops_per_token(block_size)
    flops_seen += learn_flops(model)
    grow_iter = iter_num
    if grow_schedule == "restart":
        schedule_start = iter_num
    log_metrics(event="grow", iter=iter_num, tokens=tokens_seen, flops=flops_seen, before=before,
                after=asdict(model.config), op=grow_op, dim=grow_dim)
    log(f"iter {iter_num}: grew {grow_dim}wise with {grow_op}: {before['n_layer']} -> {model.config.n_layer} layers, "
        f"{before['n_embd']} -> {model.config.n_embd} wide ({model.num_params() / 1e6:.2f}M non-embedding params)")


def check_finite():
    """nan_policy='stop': end the run, naming the first step whose loss was not finite (checked at log steps and
    before a checkpoint, so the check costs no host sync per step and no bad weights are ever written)."""
    if ddp:
        torch.distributed.all_reduce(first_bad_step, op=torch.distributed.ReduceOp.MAX)
    if nan_policy == "stop" and first_bad_step.item() >= 0:
        raise SystemExit(f"non-finite training loss at iter {first_bad_step.item()} (nan_policy='stop'); no "
                         f"checkpoint was written after it. Lower learning_rate, or set nan_policy='skip', and "
                         f"resume from the last good checkpoint in {out_dir}")


# ----------------------------------------------------------------------------------------------------------------
# the training loop
log(f"{model.num_params() / 1e6:.2f}M non-embedding parameters, {tokens_per_iter:,} tokens per step "
    f"({batch_size} x {block_size} x {gradient_accumulation_steps} accumulation), {world_size} process(es), "
    f"{device}, {dtype}, compile={compile}, mixture {({d: round(r, 3) for d, r in mixture_resolved.items()})}")
if init_from == "resume" and decay_was != lr_decay_iters and decay_lr:
    log(f"note: the cosine now ends at iter {lr_decay_iters}, not at {decay_was} as the run began, so the learning "
        f"rate at iter {iter_num} is now {get_lr(iter_num):.2e}; --lr_decay_iters={decay_was} keeps the run's schedule")
_left = flops_per_token * tokens_per_iter * (max_iters - iter_num)  # a GPU-sized run on a CPU: say so up front
if device_type == "cpu" and not eval_only and _left / 100e9 > 3600:
    log(f"note: {max_iters - iter_num:,} steps of this model are {_left:.2g} FLOPs, about {_left / 100e9 / 3600:.0f} "
        f"hours on a CPU at 100 GFLOP/s: is this config meant for a GPU?")
progress = None
if master:
    from tqdm import tqdm
    progress = tqdm(total=max_iters, initial=iter_num, unit="it", dynamic_ncols=True, disable=None)
start_iter = iter_num
first_bad_step = torch.full((), -1, dtype=torch.long, device=device)  # first non-finite loss, kept on device
t0, timed_steps = time.time(), 0  # throughput counts training steps only: the clock restarts after evals and growth
while True:
    while growths_done < len(growths) and tokens_seen >= growths[growths_done]:
        check_finite()  # never grow (and checkpoint) a model whose training has already gone non-finite
        grow_now()
        write_checkpoint()
        t0, timed_steps = time.time(), 0
    if grow_iter is not None and grow_op == "random":
        grow.set_ramp(model, grow.ramp_value(iter_num - grow_iter, grow_ramp_steps))
    lr = get_lr(iter_num)
    for group in optimizer.param_groups:
        group["lr"] = lr

    resumed_here = iter_num == start_iter and init_from == "resume"  # this step was evaluated before the stop
    if (iter_num % eval_interval == 0 or iter_num == max_iters) and not resumed_here or eval_only:
        losses = domain_losses(model, batcher, "val", eval_iters, ctx=ctx, rank=rank, world_size=world_size)
        val_loss = sum(losses.values()) / len(losses)
        log_metrics(iter=iter_num, tokens=tokens_seen, flops=flops_seen, val_loss=losses, val_loss_mean=val_loss,
                    mixture=mixture_resolved)
        msg = f"iter {iter_num}: val loss {val_loss:.4f} (" + ", ".join(f"{d} {v:.3f}" for d, v in losses.items()) + ")"
        progress.write(msg) if progress else log(msg)
        if not math.isfinite(val_loss):
            raise SystemExit(f"iter {iter_num}: validation loss is {val_loss}; no checkpoint written. Lower "
                             f"learning_rate or resume from the last good checkpoint in {out_dir}")
        if (val_loss < best_val_loss or always_save_checkpoint or iter_num == max_iters) and not eval_only:
            best_val_loss = min(best_val_loss, val_loss)  # the last step is always saved: resume needs it
            write_checkpoint()
        t0, timed_steps = time.time(), 0
    if eval_only or iter_num >= max_iters:
        break
    if (not ddp or iter_num % log_interval == 0) and stop_requested():  # under DDP: agreed on at log steps
        check_finite()
        write_checkpoint()
        log(f"stopped by signal {stop_signal} at iter {iter_num}: checkpoint written to {out_dir}; continue with "
            f"--init_from=resume")
        break

    # one optimizer step: accum micro-batches per process, gradients averaged over all processes
    loss_sum = torch.zeros((), device=device)
    for micro in range(accum):
        x, y = batcher.get("train", data_offset + iter_num, micro, rank, world_size)
        if ddp:  # all-reduce the gradients only on the last micro-step
            train_model.require_backward_grad_sync = micro == accum - 1
        with ctx:
            _, loss = train_model(x, y)
            loss = loss / accum
        scaler.scale(loss).backward()
        loss_sum += loss.detach()
    if grad_clip or scaler.is_enabled():  # float16: unscaling records the inf check that scaler.update() needs
        scaler.unscale_(optimizer)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    finite = torch.isfinite(loss_sum)
    if ddp and nan_policy == "skip":  # every rank must take the same decision
        finite = finite.int()
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        finite = finite.bool()
    first_bad_step = torch.where(~finite & (first_bad_step < 0), iter_num, first_bad_step)
    if nan_policy == "skip" and not finite.item():  # a host sync every step: only paid when skipping is asked for
        log(f"iter {iter_num}: non-finite loss, update skipped (nan_policy='skip')")
    else:
        scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    iter_num += 1
    timed_steps += 1
    tokens_seen += tokens_per_iter
    flops_seen += flops_per_token * tokens_per_iter

    if iter_num % log_interval == 0 or iter_num == max_iters:
        check_finite()
        dt = (time.time() - t0) / timed_steps  # seconds per step
        t0, timed_steps = time.time(), 0
        if ddp:
            torch.distributed.all_reduce(loss_sum)  # gloo has no AVG
            loss_sum /= world_size
        mfu = model.estimate_mfu(tokens_per_iter // world_size, dt, seq_len=block_size)
        log_metrics(iter=iter_num, tokens=tokens_seen, flops=flops_seen, train_loss=loss_sum.item(), lr=lr,
                    tokens_per_s=tokens_per_iter / dt, mfu=mfu)
        if progress and not progress.disable:
            progress.set_postfix(loss=f"{loss_sum.item():.4f}", tok_s=f"{tokens_per_iter / dt:,.0f}",
                                 **({"mfu": f"{mfu:.1%}"} if mfu else {}))
        else:  # no terminal (a log file, a cluster job): plain lines instead of the bar, with the time left
            left = round(dt * (max_iters - iter_num))  # seconds, at this step time (evaluations not counted)
            log(f"iter {iter_num}/{max_iters}: loss {loss_sum.item():.4f}, lr {lr:.2e}, {tokens_per_iter / dt:,.0f} "
                f"tokens/s" + (f", MFU {mfu:.1%}" if mfu else "") + f", {left // 3600}:{left // 60 % 60:02d}:"
                f"{left % 60:02d} left")
    if progress:
        progress.update(1)

if progress:
    progress.close()
if not eval_only and stop_signal is None and checkpoint_paths(out_dir):
    log(f"checkpoint: {checkpoint_paths(out_dir)[-1]}; see what the model learned: python eval.py sample {out_dir}")
if ddp:  # no process tears down its connections while another is still writing the last checkpoint
    torch.distributed.barrier()
    destroy_process_group()
