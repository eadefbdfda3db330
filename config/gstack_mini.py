# Gstack, one-GPU mini: the base settings of `python experiments/gstack.py --scale mini` on the offline corpus
# `pycorpus` (data/prepare.py: code / prose / c domains, GPT-2 BPE, ~20M train tokens).
#
#   python data/prepare.py                          # builds data/pycorpus once
#   python experiments/gstack.py --scale mini       # all arms, one H100; or this run alone:
#   python train.py config/gstack_mini.py --out_dir=out/gstack_mini_run
#
# As this file stands it is the Gstack arm, in-run form (Du et al. 2024; docs/papers.md sec. 1): a 3-layer
# Llama-style base (RMSNorm, SwiGLU, RoPE; 768 wide, 12 heads) trains d = grow_at_tokens, is stacked g = 4 times
# (G_direct depthwise) to 12 layers (162M params, 85M of them in the blocks; untied 50304-token embeddings), gets a
# new AdamW and a restarted warmup + cosine to 0.1x the max LR, and trains to the same token budget as scratch.
# The experiment script derives the other arms (scratch, operators zero / random / learn, widthwise at half width).
#
# Size and time: budget 2^26 = 67M tokens (256 steps of 2^18 = 262,144 tokens = 32 x 512 x 16 micro-steps; ~3.4
# epochs of pycorpus, within the ~4 epochs that cost about as little as fresh data). Training FLOPs by
# GPT.flops_per_token (6N + attention, block 512): 12 layers ~0.80 GFLOP/token, 3 layers ~0.37. At ~40% MFU of the
# H100's 989 TFLOP/s (~396 TFLOP/s): scratch 67M x 0.80G = 5.4e16 FLOPs ~ 2.3 min; Gstack 16.8M x 0.37G + 50.3M x
# 0.80G = 4.6e16 ~ 2.0 min; plus ~1 min of torch.compile per arm (twice for a grown arm) and evaluations.
# All nine distinct arms: ~30-35 min of one H100. compile and bf16 are train.py's defaults on CUDA.
# d = 25% of the budget (64 of 256 steps): the guideline (Eq. 2) gives d ~ 1.5e11 tokens here (N = 1.6e8,
# C = 6 N D = 6.4e16; grow.growth_timing), 2000x the budget: it does not extrapolate to this size.
# Paper facts kept: g = 4, min_lr = 0.1x max LR, warmup then cosine restarted at growth, FLOPs counting the base.
# Not the paper's: sizes, budget, LR 1e-3 and warmup 20 (short runs), context 512.
# Unlike the official scripts (github tongxuluo/prts; the full list in config/gstack_1b.py): the cosine ends at the
# budget (official: over 300K steps, far past the tokens trained); weight decay on the 2-D weights only (official:
# every parameter); GPT-2's init N(0, 0.02) (official base: PyTorch's defaults); random windows per step (official:
# each sequence once). The in-run growth never repeats the base's batches. G_random (arms depth_random,
# width_random): grow_ramp_steps is the whole ramp; widthwise the three MSG phases (MLP neurons, hidden dims,
# heads) are a third of it each (official: grow_step = 5000 steps per phase).

dataset = "pycorpus"
out_dir = "out/gstack_mini_run" # its own folder: out/ holds the default run
arch = "llama"
n_layer = 3                     # the base; growth makes it 12
n_head = 12
n_embd = 768
block_size = 512
batch_size = 32
total_batch_tokens = 262_144    # 2^18 tokens per step
max_tokens = 67_108_864         # 2^26 tokens: 256 steps
learning_rate = 1e-3
min_lr = 1e-4
warmup_iters = 20
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
grow_at_tokens = 16_777_216     # d = 2^24 tokens: 64 steps
grow_dim = "depth"
grow_op = "direct"
grow_factor = 4
grow_schedule = "restart"
grow_ramp_steps = 48            # G_random: blend-in over 25% of the post-growth steps (widthwise: 16 per MSG phase)
grow_learn_steps = 20           # G_learn (LiGO): steps training the growth maps (one micro-batch each)
eval_interval = 16
eval_iters = 20
log_interval = 4
keep_checkpoints = 2
