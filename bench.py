"""
Time the training step of any train.py configuration: tokens/s, ms per iteration, MFU and peak memory.

    python bench.py                                           # GPT-2 124M shapes, context 1024
    python bench.py config/gstack_mini.py --batch_size=16     # any train.py config and overrides
    python bench.py --compile=False --dtype=float32           # the switches one at a time
    python bench.py --grow_at_tokens=1 --grow_factor=2        # a step after an in-run growth (recompiled)

Synthetic tokens on the device (no data loading in the timing), the model built from scratch, the same
optimizer, autocast and compile choices as train.py. The first `warmup` steps (compilation, cuDNN autotuning,
allocator growth) are excluded; the rest are timed with the device synchronised only at the ends.
"""

import contextlib
import os
import sys
import time

import torch

from configurator import ConfigError, apply_overrides, defaults_from_script
from model import GPT, GPTConfig

# bench settings, on top of every train.py setting (defaults: GPT-2 124M at nanoGPT's benchmark shapes)
bench = dict(defaults_from_script(os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")), n_layer=12, n_head=12, n_embd=768, block_size=1024, batch_size=12,
             vocab_size=50304, warmup=10, steps=20, peak_flops=0.0)
try:
    s = apply_overrides(bench, sys.argv[1:])
except ConfigError as e:
    raise SystemExit(f"bench.py: {e}") from None
device = ("cuda" if torch.cuda.is_available() else "cpu") if s["device"] == "auto" else s["device"]
device_type = "cuda" if device.startswith("cuda") else device.split(":")[0]  # as train.py: cuda, mps or cpu
if device_type == "cuda":
    torch.cuda.set_device(device)  # so synchronize(), the memory counters and the device name are this device's
dtype = s["dtype"] if s["dtype"] != "auto" else ("bfloat16" if device_type == "cuda" and torch.cuda.is_bf16_supported()
                                                 else "float32")
compile = s["compile"] if s["compile"] is not None else device_type == "cuda"
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
torch.manual_seed(s["seed"])

config = GPTConfig(arch=s["arch"], block_size=s["block_size"], vocab_size=s["vocab_size"] or 50304, n_layer=s["n_layer"],
                   n_head=s["n_head"], n_kv_head=s["n_kv_head"], n_embd=s["n_embd"], intermediate_size=s["intermediate_size"],
                   dropout=s["dropout"], bias=s["bias"], tie_embeddings=s["tie_embeddings"],
                   scale_attn_by_inverse_layer_idx=s["scale_attn_by_inverse_layer_idx"])
model = GPT(config).to(device)
if s["grow_at_tokens"]:  # measure the grown model as train.py has it after an in-run growth
    import grow
    model = (grow.grow_depth(model, s["grow_op"], factor=s["grow_factor"], layer_map=s["grow_layer_map"])
             if s["grow_dim"] == "depth" else grow.grow_width(model, s["grow_n_embd"], s["grow_op"])).to(device)
    grow.set_ramp(model, 1.0)
optimizer = model.configure_optimizers(s["weight_decay"], s["learning_rate"], (s["beta1"], s["beta2"]), device_type)
train_model = torch.compile(model) if compile else model
ctx = (contextlib.nullcontext() if dtype == "float32" else
       torch.autocast(device_type=device_type, dtype={"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]))
B, T, accum = s["batch_size"], s["block_size"], s["gradient_accumulation_steps"]
if s["total_batch_tokens"]:  # one process's step, as train.py derives it
    if s["total_batch_tokens"] % (B * T):
        raise SystemExit(f"bench.py: total_batch_tokens={s['total_batch_tokens']} is not a multiple of batch_size * "
                         f"block_size = {B * T}")
    accum = s["total_batch_tokens"] // (B * T)
x = torch.randint(0, config.vocab_size, (B, T + 1), device=device)
x, y = x[:, :-1], x[:, 1:]


def sync():  # kernels run asynchronously: wait for them before reading the clock
    if device_type == "cuda":
        torch.cuda.synchronize()
    elif device_type == "mps":
        torch.mps.synchronize()


def step():
    for _ in range(accum):
        with ctx:
            _, loss = train_model(x, y)
        (loss / accum).backward()
    if s["grad_clip"]:
        torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


config = model.config
print(f"{config.arch} {config.n_layer}L {config.n_embd}d, {model.num_params() / 1e6:.1f}M non-embedding params, "
      f"batch {B}x{T}x{accum}, {device} ({torch.cuda.get_device_name() if device_type == 'cuda' else 'CPU'}), "
      f"{dtype}, compile={compile}")
t0 = time.time()
for _ in range(s["warmup"]):
    step()
sync()
print(f"warm-up: {s['warmup']} steps in {time.time() - t0:.1f} s (compilation included)")
if device_type == "cuda":
    torch.cuda.reset_peak_memory_stats()
t0 = time.time()
for _ in range(s["steps"]):
    loss = step()
sync()
dt = (time.time() - t0) / s["steps"]
tokens = B * T * accum
mfu = model.estimate_mfu(tokens, dt, peak_flops=s["peak_flops"] or None, seq_len=T)
if device_type == "cuda":
    mem = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB peak allocated"
else:
    import resource
    mem = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB peak RSS"
print(f"{dt * 1000:.1f} ms/iter, {tokens / dt:,.0f} tokens/s, "
      f"MFU {'n/a (no bf16 peak known for this device; pass --peak_flops)' if mfu is None else f'{mfu:.1%}'}, "
      f"{mem}, loss {loss.item():.3f}")
