# Gstack, GPU scale (Du et al. 2024; docs/papers.md sec. 1): config/gstack_cpu.py's comparison on one GPU, an 8-layer
# Llama from scratch vs Gstack (a 2-layer base trained d tokens, stacked g = 4 times, trained on to the same token
# budget), on the same byte-level corpus; also the size of the operators job (every other operator).
#   python data/prepare.py --tokenizer=byte --name=pybytes                   # once: the byte-level corpus
#   python tools/gpu_jobs.py --only gstack                              # job 2 of the GPU runner
#   python experiments/gstack.py --scale gpu --arms scratch,gstack            # the same two arms by hand
# Sizes: the cpu scale's depth and step count with a model 4x as wide (512, heads of 64; 14x the FLOPs per token),
# context 256 and 16x the tokens (~1 epoch of pybytes), so scratch and Gstack together fit 8 minutes of one H100;
# d = 25% of the budget as at the cpu and tiny scales; LR: the cpu scale's 3e-3 x sqrt(128 / 512). Device, dtype and
# compile are train.py's defaults (bfloat16 and torch.compile on a GPU; a --device=cpu dry run works).

dataset = "pybytes"
arch = "llama"                  # the paper's
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 2                     # the base, L/4; growth makes it 8 (scratch: 8 from the start)
n_head = 8
n_embd = 512
block_size = 256
batch_size = 128                # 32,768 tokens per step, one micro-batch (no accumulation)
max_iters = 1536                # B = 50,331,648 tokens per arm
learning_rate = 1.5e-3
min_lr = 1.5e-4                 # the paper's 0.1x max LR
warmup_iters = 50
grow_at_tokens = 12_582_912     # d = 25% of B (384 steps)
grow_dim = "depth"              # the paper's Gstack
grow_op = "direct"              # the paper's Gstack
grow_factor = 4                 # the paper's g
grow_schedule = "restart"       # the paper's: a new AdamW, warmup + cosine restarted
grow_ramp_steps = 288           # G_random: blend-in over 25% of the post-growth steps
eval_interval = 96              # 17 evaluations: where scratch's final loss is crossed is interpolated
eval_iters = 4                  # 131K val bytes per domain, the same batches for every run
log_interval = 32
keep_checkpoints = 1
