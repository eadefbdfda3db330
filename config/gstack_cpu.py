# Gstack, CPU scale: the paper's headline comparison (Du et al. 2024; docs/papers.md sec. 1) in minutes on a laptop:
# an 8-layer model from scratch vs Gstack (a 2-layer base trained d tokens, stacked g = 4 times, trained on to the
# same token budget), speedup at scratch's final loss in exact FLOPs and in the paper's tokens.
#
#   python data/prepare.py --tokenizer=byte --name=pybytes                      # once: the byte-level corpus
#   python experiments/gstack.py --scale cpu --arms scratch,gstack --seeds 2    # headline: 13-16 min a seed
#   python train.py config/gstack_cpu.py --out_dir=out/gstack_cpu_run            # the Gstack arm alone
#
# Data: pybytes = data/prepare.py's offline corpus (code / prose / c) at the byte level (vocab 256; ~49M train bytes).
# A 50K-token vocabulary would make a model this small mostly LM head; with 256 bytes the transformer body does
# the work, as at the papers' scales.
#
# Shapes: Llama-style (RMSNorm, SwiGLU with intermediate 384, RoPE), 128 wide, 4 heads, context 128 bytes, vocab
# 256 (untied). Scratch / grown: 8 layers, 1.71M non-embedding params; base: 2 layers = L/4 (0.43M).
# Training FLOPs per token (GPT.flops_per_token = 6N + 12LCT, N with the LM head):
#   8 layers: 12.0M, of which LM head 1.6% (embeddings + head counted as if both were matmuls: 3.3%), attention 13%
#   2 layers:  3.15M, of which LM head 6.2% (embeddings + head, both counted: 12.5%)    -> all <= 15%
# Tokens: 1536 steps x 16 x 128 = 3,145,728 tokens per arm (budget B). d = grow_at_tokens = 786,432 = 25% of B
# (384 steps); then 1152 steps on the stacked 8-layer model with a new AdamW and a restarted warmup + cosine.
# FLOPs: scratch 3.78e13; Gstack 0.79M x 3.15M + 2.36M x 12.0M = 3.08e13 (0.82x scratch; the base phase is 6.6%
# of scratch's FLOPs).
# Time: measured with bench.py (--device=cpu --steps=8 --rounds=3, float32, 2 threads) on a 2-core x86 VM whose
# cores other jobs were sharing, so these are upper bounds: 8 layers ~0.21 s a step (~9,800 tokens/s), 2 layers
# ~0.057 s (~36,000 tokens/s). Scratch 1536 x 0.21 = 5.4 min, Gstack 384 x 0.057 + 1152 x 0.21 = 4.4 min, plus
# 25 evaluations per arm (8 batches x 3 domains, ~1.5 s each) and start-up: ~11 min per seed for the two headline
# arms (limit: 20); measured 2026-11-28: 12.8 and 15.7 min (other jobs shared the cores). The other operators
# (depth_zero / random / learn, width_*) are ~5 min each more.
#
# d, the growth timing: the paper's Eq. 2 (grow.growth_timing) gives d ~ 7e11 tokens for this target (N = 1.77M,
# C = 6ND = 3.3e13), ~200,000x the whole budget: it does not extrapolate to this size. The paper's own d (10B
# tokens) is 1.4-10% of its budgets but gives its bases ~100 tokens per parameter; at 1.4-10% of this budget the
# 2-layer base would see 20-150 steps, still in the steep first drop of its loss. d = 25% lets the base get past
# that drop (~1.8 bytes of data per base parameter) while its FLOPs stay ~7% of scratch's, and is the fraction the
# tiny and mini configs use, so the three scales compare.
# Paper facts kept: g = 4, whole-model stacking, new AdamW and warmup + cosine restarted at growth, min_lr 0.1x the
# max LR, FLOPs that include the base phase. Not the paper's: sizes, budget, bytes (the paper: SlimPajama with a
# BPE), LR 3e-3 (small models), warmup 50 steps, context 128.

dataset = "pybytes"
device = "cpu"
compile = False
dtype = "float32"
arch = "llama"
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 2                     # the base, L/4; growth makes it 8 (scratch: 8 from the start)
n_head = 4
n_embd = 128
block_size = 128
batch_size = 16                 # 2048 tokens per step
max_iters = 1536                # B = 3,145,728 tokens per arm
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 50
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
grow_at_tokens = 786_432        # d = 25% of B (384 steps)
grow_dim = "depth"
grow_op = "direct"
grow_factor = 4
grow_schedule = "restart"
grow_ramp_steps = 288           # G_random: blend-in over 25% of the post-growth steps
grow_learn_steps = 50           # G_learn (LiGO): steps training the growth maps
eval_interval = 64              # 25 evaluations: the crossing of scratch's final loss is interpolated between them
eval_iters = 8                  # 8 x 2048 = 16K val bytes per domain, the same batches for every run and seed
log_interval = 32
keep_checkpoints = 1
seed = 1337                     # --seeds N adds 1338, 1339, ...
