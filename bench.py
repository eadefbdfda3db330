"""
Time the training step of any train.py configuration: tokens/s, ms per iteration, MFU and peak memory.

    python bench.py                                           # GPU: GPT-2 124M shapes, context 1024, batch 12
    python bench.py config/gstack_mini.py --batch_size=16     # any train.py config and overrides
    python bench.py --compile=False --dtype=float32           # the switches one at a time
    python bench.py --grow_at_tokens=1 --grow_factor=2        # a step after an in-run growth
    python bench.py --nanogpt=.nanogpt --steps=1 --rounds=30  # nanoGPT's model.py beside ours, step by step
    python bench.py --nanogpt=.nanogpt --adamw=fused          # both with the same AdamW kernel: the models alone

Synthetic tokens on the device (no data loading in the timing), the model built from scratch, the same
optimizer, autocast and compile choices as train.py. The first `warmup` steps (compilation, autotuning,
allocator growth) are excluded; the rest are timed in `rounds` with the device synchronised only at the ends of
each round. With --nanogpt the two models take turns round by round, so a clock or thermal drift hits both.
On a CPU the defaults shrink to nanoGPT's CPU quick-start shapes (4 layers, 128 wide, context 64, batch 12; a
byte-sized vocabulary of 256), since the 124M model takes about a minute a step there.
"""

import contextlib
import importlib.util
import os
import statistics
import sys
import time

import torch

from configurator import ConfigError, apply_overrides, check_device, defaults_from_script, model_args
from model import GPT, GPTConfig

HERE = os.path.dirname(os.path.abspath(__file__))
GPT2_124M = dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, batch_size=12, vocab_size=50304)
CPU_SHAPES = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, vocab_size=256)
BENCH = dict(warmup=10, steps=20, rounds=5, peak_flops=0.0, nanogpt="", attention="auto", adamw="own")
BENCH_HELP = """bench.py's own settings (every train.py setting below is taken too):
warmup = 10                     # untimed steps first (compilation, autotuning, allocator growth)
steps = 20                      # steps per timed round
rounds = 5                      # timed rounds; with --nanogpt the two models take turns round by round
peak_flops = 0.0                # the device's dense bf16 FLOP/s for MFU (0: looked up from the device name)
nanogpt = ""                    # a folder holding nanoGPT's model.py, timed beside ours
attention = "auto"              # SDPA kernel: 'auto' | 'flash' | 'efficient' | 'cudnn' | 'math'
adamw = "own"                   # 'own': each model's configure_optimizers | 'fused' | 'foreach': that kernel for all
GPU defaults: n_layer=12, n_head=12, n_embd=768, block_size=1024, batch_size=12, vocab_size=50304 (GPT-2 124M)
CPU defaults: n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, vocab_size=256
"""


def settings(argv):
    """train.py's settings with the benchmark's shapes and knobs on top, then config files and --key=value.
    `attention`: 'auto' | 'flash' | 'efficient' | 'cudnn' | 'math' (the SDPA kernel, fixed while compiling)."""
    base = {**defaults_from_script(os.path.join(HERE, "train.py")), **GPT2_124M, **BENCH}
    s = apply_overrides(base, argv)
    check_device(s["device"])  # one line for a device this machine does not have (cuda, cuda:N, mps)
    if s["device"] == "auto":
        s["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    if s["device"] == "cpu":  # the same files and overrides over the CPU's shapes
        s = {**apply_overrides({**base, **CPU_SHAPES}, argv), "device": "cpu"}
    s["device_type"] = "cuda" if s["device"].startswith("cuda") else s["device"].split(":")[0]
    if s["dtype"] == "auto":
        s["dtype"] = "bfloat16" if s["device_type"] == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if s["compile"] is None:
        s["compile"] = s["device_type"] == "cuda"
    attention_context(s["attention"])  # a bad kernel name is named now, not after the model is built
    if s["adamw"] not in ("own", "fused", "foreach"):
        raise ConfigError(f"adamw={s['adamw']!r}: must be 'own' (each model's configure_optimizers), 'fused' or 'foreach'")
    return s


def build_ours(s):
    """Our GPT at the settings' shapes; grown in-run (grow.py) when grow_at_tokens is set, as train.py has it."""
    model = GPT(GPTConfig(**dict(model_args(s), vocab_size=s["vocab_size"] or 50304)))
    if s["grow_at_tokens"]:
        import grow
        model = (grow.grow_depth(model, s["grow_op"], factor=s["grow_factor"], layer_map=s["grow_layer_map"])
                 if s["grow_dim"] == "depth" else grow.grow_width(model, s["grow_n_embd"], s["grow_op"]))
        grow.set_ramp(model, 1.0)
    return model


def build_nanogpt(s, path):
    """nanoGPT's GPT (its model.py, in the folder `path`) at the same GPT-2 shapes: bias-free, tied head."""
    file = os.path.join(path, "model.py") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ConfigError(f"nanogpt={path!r}: no model.py there; put nanoGPT's model.py in a folder (e.g. .nanogpt/)")
    spec = importlib.util.spec_from_file_location("nanogpt_model", file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if s["arch"] != "gpt2" or s["bias"] or s["tie_embeddings"] is False:
        raise ConfigError("nanoGPT's model is a GPT-2 with a tied head: compare with arch='gpt2', bias=False")
    return mod.GPT(mod.GPTConfig(block_size=s["block_size"], vocab_size=s["vocab_size"] or 50304, n_layer=s["n_layer"],
                                 n_head=s["n_head"], n_embd=s["n_embd"], dropout=s["dropout"], bias=False))


def attention_context(kind):
    """The SDPA kernel to use, as a context manager ('auto': torch's own choice)."""
    if kind == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    names = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION", "math": "MATH"}
    if kind not in names:
        raise ConfigError(f"attention={kind!r}: must be 'auto' or one of {', '.join(names)}")
    return sdpa_kernel(getattr(SDPBackend, names[kind]))


def sync(device_type):
    """Kernels run asynchronously: wait for them before reading the clock."""
    if device_type == "cuda":
        torch.cuda.synchronize()
    elif device_type == "mps":
        torch.mps.synchronize()


def make_step(model, s, fused=None):
    """One optimizer step of `model` on a fixed synthetic batch, as train.py takes it. Returns step() -> loss.
    The model's own configure_optimizers (nanoGPT's model: nanoGPT's); fused=False / True: the same parameter
    groups with the for-each (multi-tensor) / the fused AdamW kernel instead."""
    dt, device = s["dtype"], s["device"]
    model.to(device)
    optimizer = model.configure_optimizers(s["weight_decay"], s["learning_rate"], (s["beta1"], s["beta2"]),
                                           s["device_type"])
    if fused is not None:  # only params and weight decay from the groups: a group's own 'fused' would win
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in optimizer.param_groups]
        optimizer = torch.optim.AdamW(groups, lr=s["learning_rate"], betas=(s["beta1"], s["beta2"]),
                                      fused=fused, foreach=not fused)
    train_model = torch.compile(model) if s["compile"] else model
    ctx = (contextlib.nullcontext() if dt == "float32" else
           torch.autocast(device_type=s["device_type"], dtype={"bfloat16": torch.bfloat16, "float16": torch.float16}[dt]))
    B, T, accum = s["batch_size"], s["block_size"], s["gradient_accumulation_steps"]
    if s["total_batch_tokens"]:  # one process's step, as train.py derives it
        if s["total_batch_tokens"] % (B * T):
            raise ConfigError(f"total_batch_tokens={s['total_batch_tokens']} is not a multiple of batch_size * "
                              f"block_size = {B * T}")
        accum = s["total_batch_tokens"] // (B * T)
    g = torch.Generator().manual_seed(s["seed"])
    xy = torch.randint(0, model.config.vocab_size, (B, T + 1), generator=g).to(device)
    x, y = xy[:, :-1].contiguous(), xy[:, 1:].contiguous()

    def step():
        with attention_context(s["attention"]):
            for _ in range(accum):
                with ctx:
                    _, loss = train_model(x, y)
                (loss / accum).backward()
        if s["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    step.tokens, step.optimizer = B * T * accum, optimizer
    return step


def time_steps(steps, s):
    """Warm up each step function, then time them in turns: {name: dict(ms, tokens_per_s, warmup_s, mem_gib)}.
    ms is the median over rounds of the mean step time within a round."""
    out = {}
    for name, step in steps.items():
        if s["device_type"] == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for i in range(s["warmup"]):
            step()
            if i == 0 and name == next(iter(steps)):
                sync(s["device_type"])
                warn_if_long(time.perf_counter() - t0, s, len(steps))
        sync(s["device_type"])
        out[name] = {"warmup_s": time.perf_counter() - t0, "rounds_ms": []}
        if s["device_type"] == "cuda":  # this model's own peak, with the other models resident
            out[name]["mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    for _ in range(s["rounds"]):
        for name, step in steps.items():
            sync(s["device_type"])
            t0 = time.perf_counter()
            for _ in range(s["steps"]):
                loss = step()
            sync(s["device_type"])
            out[name]["rounds_ms"].append((time.perf_counter() - t0) / s["steps"] * 1000)
            out[name]["loss"] = loss.item()
    for name, r in out.items():
        r["ms"] = statistics.median(r["rounds_ms"])
        r["tokens_per_s"] = steps[name].tokens / r["ms"] * 1000
    return out


def warn_if_long(first_step_s, s, n_models):
    """Say up front when the benchmark will take long (a GPU config on a CPU: minutes a step), from the first
    step's time, which includes compilation and so overstates the rest."""
    total = first_step_s * (s["warmup"] + s["steps"] * s["rounds"]) * n_models
    if total > 120:
        print(f"note: the first step took {first_step_s:.1f} s, so this benchmark may take up to {total / 60:.0f} min "
              f"({s['warmup']} warm-up + {s['rounds']} x {s['steps']} timed steps{f' x {n_models} models' if n_models > 1 else ''}); "
              f"Ctrl-C and pass fewer --warmup/--steps/--rounds or smaller shapes to shorten it", flush=True)


def mfu(model_flops_per_token, tokens_per_s, s):
    """Achieved FLOP/s over the device's dense bf16 peak (None where no peak is known: pass --peak_flops)."""
    from model import device_peak_flops
    peak = s["peak_flops"] or (device_peak_flops() if s["device_type"] == "cuda" else None)
    return model_flops_per_token * tokens_per_s / peak if peak else None


def main(argv):
    if "--help" in argv or "-h" in argv:
        from configurator import settings_help
        print(__doc__.strip() + "\n\n" + BENCH_HELP + "\ntrain.py's settings:\n" +
              settings_help(os.path.join(HERE, "train.py")))
        return None
    s = settings(argv)
    if s["device_type"] == "cuda" and torch.device(s["device"]).index is not None:
        torch.cuda.set_device(s["device"])  # 'cuda:1': synchronize(), memory counters and the name are its own
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(s["seed"])
    ours = build_ours(s)
    models = {"nanogrow": ours}
    if s["nanogpt"]:
        models["nanoGPT"] = build_nanogpt(s, s["nanogpt"])
    fused = {"own": None, "fused": True, "foreach": False}[s["adamw"]]
    steps = {name: make_step(m, s, fused) for name, m in models.items()}
    c = ours.config
    where = torch.cuda.get_device_name() if s["device_type"] == "cuda" else s["device"].upper()
    accum = steps["nanogrow"].tokens // (s["batch_size"] * s["block_size"])
    print(f"{c.arch} {c.n_layer}L {c.n_embd}d, {ours.num_params() / 1e6:.1f}M non-embedding params, batch "
          f"{s['batch_size']}x{s['block_size']}x{accum}, {where}, {s['dtype']}, compile={s['compile']}, "
          f"attention={s['attention']}, AdamW: {s['adamw']}")
    step_flops = ours.flops_per_token(s["block_size"]) * steps["nanogrow"].tokens
    if s["device_type"] == "cpu" and step_flops > 1e12:  # a GPU-sized config: say so before the first step
        print(f"note: one step is {step_flops / 1e12:.1f} TFLOP ({steps['nanogrow'].tokens:,} tokens); a CPU does "
              f"roughly 0.05-0.5 TFLOP/s, so expect {step_flops / 5e11:.0f}-{step_flops / 5e10:.0f} s a step; smaller "
              f"shapes (--n_layer, --n_embd, --batch_size, --total_batch_tokens=0) run quicker", flush=True)
    res = time_steps(steps, s)
    flops = ours.flops_per_token(s["block_size"])  # nanoGPT's model has the same shapes, so the same FLOPs
    for name, r in res.items():
        m = mfu(flops, r["tokens_per_s"], s)
        if "mem_gib" in r:
            mem = f", {r['mem_gib']:.2f} GiB peak allocated"
        else:  # the process's, both models together
            import resource
            mem = f", {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB peak RSS"
        print(f"{name:>9}: {r['ms']:.2f} ms/iter, {r['tokens_per_s']:,.0f} tokens/s, MFU "
              f"{'n/a (no bf16 peak known for this device; pass --peak_flops)' if m is None else f'{m:.1%}'}"
              f"{mem}, warm-up {r['warmup_s']:.1f} s, loss {r['loss']:.3f}")
    if len(res) == 2:  # step time over step time, round by round (the two took turns)
        ratios = sorted(a / b for a, b in zip(res["nanogrow"]["rounds_ms"], res["nanoGPT"]["rounds_ms"]))
        print(f"step time nanogrow / nanoGPT: median {statistics.median(ratios):.3f} (min {ratios[0]:.3f}, max "
              f"{ratios[-1]:.3f}) over {len(ratios)} pairs of {s['steps']} step(s)")
    return res


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ConfigError as e:
        raise SystemExit(f"bench.py: {e}") from None
