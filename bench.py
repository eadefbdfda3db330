"""
Time train.py's training step on synthetic tokens, compilation left out: tokens/s, ms/iter, MFU, peak memory.

    python bench.py                                        # GPT-2 124M's shapes (CPU defaults: nanoGPT's quick-start)
    python bench.py config/gstack_cpu.py --compile=False   # any train.py config and settings
    python bench.py --nanogpt=.nanogpt                     # nanoGPT's model.py beside ours, the two in turns
"""

import os
import resource
import runpy
import statistics
import sys
import time

import torch

import grow
from configurator import (ConfigError, apply_overrides, check_device, defaults_from_script, install_error_hook,
                          model_args, settings_help)
from model import GPT, GPTConfig, device_peak_flops

# bench.py's own settings (every train.py setting below is taken too)
warmup = 10                     # untimed steps first (compilation, autotuning, allocator growth)
steps = 20                      # steps per timed round
rounds = 5                      # timed rounds; with --nanogpt the two models take turns round by round
peak_flops = 0.0                # the device's dense bf16 FLOP/s for MFU (0: looked up from the device name)
nanogpt = ""                    # a folder holding nanoGPT's model.py, timed beside ours
adamw = "own"                   # 'own': each model's configure_optimizers | 'fused' | 'foreach': that kernel for both
GPU_SHAPES = dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, batch_size=12, vocab_size=50304)
CPU_SHAPES = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, vocab_size=256)
TRAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")


def settings(argv):
    """train.py's settings with the benchmark's shapes and knobs on top, then config files and --key=value."""
    base = {**defaults_from_script(TRAIN), **defaults_from_script(__file__)}
    device = apply_overrides({**base, **GPU_SHAPES}, argv)["device"]
    check_device(device)  # one line for a device this machine does not have
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    s = {**apply_overrides({**base, **(CPU_SHAPES if device == "cpu" else GPU_SHAPES)}, argv), "device": device}
    s["device_type"] = dev = "cuda" if device.startswith("cuda") else device.split(":")[0]
    if s["dtype"] == "auto":
        s["dtype"] = "bfloat16" if dev == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    s["compile"] = dev == "cuda" if s["compile"] is None else s["compile"]
    if s["adamw"] not in ("own", "fused", "foreach"):
        raise ConfigError(f"adamw={s['adamw']!r}: must be one of own, fused, foreach")
    return s


def build_ours(s):
    """Our GPT at the settings' shapes; grown in-run (grow.py) when grow_at_tokens is set, as train.py has it."""
    model = GPT(GPTConfig(**dict(model_args(s), vocab_size=s["vocab_size"] or 50304)))
    if s["grow_at_tokens"]:
        model = (grow.grow_depth(model, s["grow_op"], factor=s["grow_factor"], layer_map=s["grow_layer_map"])
                 if s["grow_dim"] == "depth" else grow.grow_width(model, s["grow_n_embd"], s["grow_op"]))
        grow.set_ramp(model, 1.0)
    return model


def build_nanogpt(s, path):
    """nanoGPT's GPT (its model.py, in the folder `path`) at the same GPT-2 shapes: bias-free, tied head."""
    file = os.path.join(path, "model.py") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ConfigError(f"nanogpt={path!r}: no model.py there; put nanoGPT's model.py in a folder (e.g. .nanogpt/)")
    if s["arch"] != "gpt2" or s["bias"] or s["tie_embeddings"] is False:
        raise ConfigError("nanoGPT's model is a GPT-2 with a tied head: compare with arch='gpt2', bias=False")
    mod = runpy.run_path(file)
    return mod["GPT"](mod["GPTConfig"](bias=False, vocab_size=s["vocab_size"] or 50304, dropout=s["dropout"],
                                       **{k: s[k] for k in ("block_size", "n_layer", "n_head", "n_embd")}))


def make_step(model, s, fused=None):
    """One optimizer step of `model` on a fixed synthetic batch, as train.py takes it: step() -> loss. The model's
    own configure_optimizers; fused=False / True: the same groups with the for-each / the fused AdamW kernel."""
    model.to(s["device"])
    opt = model.configure_optimizers(s["weight_decay"], s["learning_rate"], (s["beta1"], s["beta2"]), s["device_type"])
    if fused is not None:  # the groups without their own 'fused' and 'foreach', which would win
        groups = [{k: g[k] for k in ("params", "weight_decay", "lr", "betas")} for g in opt.param_groups]
        opt = torch.optim.AdamW(groups, fused=fused, foreach=not fused)
    train_model = torch.compile(model) if s["compile"] else model
    ctx = torch.autocast(s["device_type"], dtype=getattr(torch, s["dtype"]), enabled=s["dtype"] != "float32")
    B, T, total = s["batch_size"], s["block_size"], s["total_batch_tokens"]
    if total % (B * T):
        raise ConfigError(f"total_batch_tokens={total} is not a multiple of batch_size * block_size = {B * T}")
    accum = total // (B * T) or s["gradient_accumulation_steps"]  # one process's step, as train.py derives it
    x, y = torch.randint(0, model.config.vocab_size, (2, B, T), generator=torch.Generator().manual_seed(s["seed"]))
    x, y = x.to(s["device"]), y.to(s["device"])

    def step():
        for _ in range(accum):
            with ctx:
                _, loss = train_model(x, y)
            (loss / accum).backward()
        if s["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    step.tokens, step.optimizer = B * T * accum, opt
    return step


def time_steps(fns, s):
    """Warm up each step function {name: step}, then time them in turns: {name: dict(ms, tokens_per_s, rounds_ms,
    mem_gib on CUDA)}. ms is the median over rounds of the mean step time within a round."""
    out, dev = {}, s["device_type"]  # kernels run asynchronously: wait for them before reading the clock
    sync = getattr(torch, dev).synchronize if dev in ("cuda", "mps") else lambda: None
    for name, step in fns.items():
        if dev == "cuda":  # each model's own peak memory, with the others resident
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for i in range(s["warmup"]):
            step()
            if i == 0 and not out:  # the first step tells how long the whole benchmark may take
                warn_if_long(time.perf_counter() - t0, s, len(fns))
        sync()
        out[name] = {"rounds_ms": [], "mem_gib": torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else None}
    for _ in range(s["rounds"]):
        for name, step in fns.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(s["steps"]):
                step()
            sync()
            out[name]["rounds_ms"].append((time.perf_counter() - t0) / s["steps"] * 1000)
    for name, r in out.items():
        r["ms"] = statistics.median(r["rounds_ms"])
        r["tokens_per_s"] = fns[name].tokens / r["ms"] * 1000
    return out


def warn_if_long(first_step_s, s, n_models):
    """Say up front when the benchmark will take long (a GPU config on a CPU), from the first step's time."""
    total = first_step_s * (s["warmup"] + s["steps"] * s["rounds"]) * n_models
    if total > 120:
        print(f"note: the first step took {first_step_s:.1f} s, so this benchmark may take up to {total / 60:.0f} min; "
              f"Ctrl-C and pass fewer --warmup/--steps/--rounds or smaller shapes to shorten it", flush=True)


def main(argv):
    if "--help" in argv or "-h" in argv:
        print(f"{__doc__.strip()}\n\n{settings_help(__file__)}\n\ntrain.py's settings:\n{settings_help(TRAIN)}")
        return None
    s = settings(argv)
    if s["device_type"] == "cuda" and torch.device(s["device"]).index is not None:
        torch.cuda.set_device(s["device"])  # 'cuda:1': synchronize(), memory counters and the name are its own
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    models = {"nanogrow": build_ours(s), **({"nanoGPT": build_nanogpt(s, s["nanogpt"])} if s["nanogpt"] else {})}
    fns = {name: make_step(m, s, None if s["adamw"] == "own" else s["adamw"] == "fused") for name, m in models.items()}
    ours, c = models["nanogrow"], models["nanogrow"].config
    where = torch.cuda.get_device_name() if s["device_type"] == "cuda" else s["device"].upper()
    print(f"{c.arch} {c.n_layer}L {c.n_embd}d, {ours.num_params() / 1e6:.1f}M non-embedding params, batch "
          f"{s['batch_size']}x{s['block_size']}x{fns['nanogrow'].tokens // (s['batch_size'] * s['block_size'])}, "
          f"{where}, {s['dtype']}, compile={s['compile']}, AdamW: {s['adamw']}")
    res = time_steps(fns, s)
    peak = s["peak_flops"] or (device_peak_flops() if s["device_type"] == "cuda" else None)  # dense bf16 FLOP/s
    for name, r in res.items():  # nanoGPT's model has the same shapes, so the same FLOPs per token
        mfu = f"{ours.flops_per_token() * r['tokens_per_s'] / peak:.1%}" if peak else "n/a (pass --peak_flops)"
        mem = (f"{r['mem_gib']:.2f} GiB peak allocated" if r["mem_gib"] is not None else  # or the process's
               f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB peak RSS")
        print(f"{name:>9}: {r['ms']:.2f} ms/iter, {r['tokens_per_s']:,.0f} tokens/s, MFU {mfu}, {mem}")
    if len(res) == 2:  # step time over step time, round by round (the two took turns)
        ratios = sorted(a / b for a, b in zip(res["nanogrow"]["rounds_ms"], res["nanoGPT"]["rounds_ms"]))
        print(f"step time nanogrow / nanoGPT: median {statistics.median(ratios):.3f} (min {ratios[0]:.3f}, max "
              f"{ratios[-1]:.3f}) over {len(ratios)} pairs of {s['steps']} step(s)")
    return res


if __name__ == "__main__":
    install_error_hook("bench.py", ConfigError)
    main(sys.argv[1:])
