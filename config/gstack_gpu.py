# Gstack, GPU scale: the CPU scale's headline comparison (Du et al. 2024; docs/papers.md sec. 1) on one GPU in a
# short lease: an 8-layer model from scratch vs Gstack (a 2-layer base trained d tokens, stacked g = 4 times,
# trained on to the same token budget), on the same byte-level corpus as config/gstack_cpu.py, with a model 4x as
# wide (14x the FLOPs per token) and 16x the tokens. Also the size of the operators job (every other operator).
#
#   python data/prepare.py --tokenizer=byte --name=pybytes                   # once: the byte-level corpus
#   python experiments/gpu_jobs.py --only gstack                              # job 2 (the usual way, on a lease)
#   python experiments/gstack.py --scale gpu --arms scratch,gstack            # the same two arms by hand
#
# Data: pybytes = data/prepare.py's offline corpus (code / prose / c) at the byte level (vocab 256; ~49M train
# bytes when built on the CPU machine; the GPU machine builds it from its own Python in ~1 min). With 256 bytes
# the transformer body does the work, as at the papers' scales: embeddings + head (both counted as matmuls) are
# 0.9% of the 8-layer model's FLOPs, 3.7% of the base's, 1.7% of the widthwise base's.
#
# Shapes: Llama-style (RMSNorm, SwiGLU with intermediate 1408, RoPE), 512 wide, 8 heads of 64, context 256 bytes,
# vocab 256 (untied). Scratch / grown: 8 layers, 25.7M non-embedding params; base: 2 layers = L/4 (6.4M).
# Training FLOPs per token (GPT.flops_per_token = 6N + 12LCT, N with the LM head): 8 layers 167.6M (14x the cpu
# scale's 12.0M), 2 layers 42.5M. Widthwise (operators job): 8 layers at 256 wide, 4 heads of 64 (45.2M), grown
# to 512.
# Tokens: 1536 steps (the cpu scale's count) x 128 x 256 = 32,768 tokens a step: B = 50,331,648 tokens per arm
# (16x the cpu scale; ~1 epoch of pybytes). d = grow_at_tokens = 12,582,912 = 25% of B (384 steps), as at the cpu,
# tiny and mini scales, so they compare (config/gstack_cpu.py says why 25%, and why Eq. 2 cannot give d here).
# FLOPs: scratch 50.3M x 167.6M = 8.44e15; Gstack 12.6M x 42.5M + 37.7M x 167.6M = 6.86e15 (0.81x scratch).
#
# Time, one H100 (experiments/gpu_jobs.py estimates every step this way before it starts it, and replaces the
# assumed rate by the one measured once an arm has run):
#   rate: 1e14 FLOP/s = 10% MFU of the H100's 989 TFLOP/s bf16 peak. Assumed, and low on purpose: the speed job
#   (docs/results/gpu/speed) measured 40% MFU for GPT-2 124M on an H200 but only ~13% for a 6-layer, 384-wide
#   model in train.py (680K tokens/s x 186 MFLOP/token, 8K-token steps); models this narrow reach less, and an
#   H100 has less memory bandwidth than the H200 it was measured on.
#   compile: 45 s per torch.compile (the speed job's slowest cold compile of a 12-layer model: 44.8 s), twice for
#   the grown arm (the base, then the stacked model); start-up 15 s per train.py run (CUDA, data, model);
#   17 evaluations per arm (every 96 steps: 4 x 32K val bytes x 3 domains, eager, at half the rate: 0.44 s) each
#   followed by a checkpoint (26M params x 12 bytes = 0.31 GB at 0.3 GB/s with its digest and fsync: 1.04 s).
#   scratch: 15 + 45 + 8.44e15 / 1e14 (84 s) + 17 x 1.48 (25 s) + 10 (tables, plot) = ~179 s
#   Gstack:  15 + 2 x 45 + 6.86e15 / 1e14 (69 s) + 17 x 1.48 + 1 (a checkpoint at growth) + 10 = ~210 s
#   job 2 = data (<= 60 s, once per lease) + 179 + 210 = ~7.5 min (limit 8). The operators job runs 7 more arms
#   of 3.5-4.3 min each (G_random compiles three times: its ramp ends with a plain model; G_learn fits its maps for
#   ~14 s), ~26.5 min in all, over several calls: each keeps the arms it finished.
#
# Paper facts kept: g = 4, whole-model stacking, new AdamW and warmup + cosine restarted at growth, min_lr 0.1x the
# max LR, FLOPs that include the base phase. Not the paper's: sizes, budget, bytes (the paper: SlimPajama with a
# BPE), LR 1.5e-3 (the cpu scale's 3e-3 x sqrt(128 / 512) for a 4x wider model), warmup 50 steps, context 256.

dataset = "pybytes"
arch = "llama"
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 2                     # the base, L/4; growth makes it 8 (scratch: 8 from the start)
n_head = 8
n_embd = 512
block_size = 256
batch_size = 128                # 32,768 tokens per step, one micro-batch (no accumulation)
max_iters = 1536                # B = 50,331,648 tokens per arm
learning_rate = 1.5e-3
min_lr = 1.5e-4
warmup_iters = 50
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
grow_at_tokens = 12_582_912     # d = 25% of B (384 steps)
grow_dim = "depth"
grow_op = "direct"
grow_factor = 4
grow_schedule = "restart"
grow_ramp_steps = 288           # G_random: blend-in over 25% of the post-growth steps
grow_learn_steps = 50           # G_learn (LiGO): steps training the growth maps
eval_interval = 96              # 17 evaluations: the crossing of scratch's final loss is interpolated between them
eval_iters = 4                  # 4 x 32K = 131K val bytes per domain, the same batches for every run
log_interval = 32
keep_checkpoints = 1
seed = 1337
# device, dtype and compile: train.py's defaults (CUDA, bfloat16, compiled on a GPU; a --device=cpu dry run works)
