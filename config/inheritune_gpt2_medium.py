# Inheritune reference config, GPT-2 Medium (24 layers) on OpenWebText (Sanyal et al. 2024, "Inheritune" / "When
# Attention Collapses"; facts in docs/papers.md sec. 2). Reference hyperparameters of the paper; needs a
# cluster (100K steps x 394K tokens = 39B tokens at ~2.4 GFLOP/token: ~8 hours on 8 H100 at ~40% MFU).
#
#   1. the reference, L = 24 layers, T = 100K steps:
#      torchrun --standalone --nproc_per_node=8 train.py config/inheritune_gpt2_medium.py
#   2. the Inheritune search (algorithm "v2"): n = L/2 = 12, inherit blocks 0..n-1 (+ wte / tied lm_head), train T
#      steps with the reference's settings, compare val loss; while worse, n += 2 (paper: 12 -> 14 -> 16 matched):
#      python inherit.py search --ref out/inheritune_gpt2_medium --steps 100000 \
#          --out_dir out/inheritune_gpt2_medium_search
#   3. one inherited model directly (16 of 24 layers), and the half-depth scratch baselines at T and 2T:
#      torchrun ... train.py config/inheritune_gpt2_medium.py --init_from=inherit \
#          --inherit_from=out/inheritune_gpt2_medium --inherit_n_layer=16 --n_layer=16 --out_dir=out/inherit16
#      torchrun ... train.py config/inheritune_gpt2_medium.py --n_layer=16 --out_dir=out/scratch16_T
#      torchrun ... train.py config/inheritune_gpt2_medium.py --n_layer=16 --max_iters=200000 --out_dir=out/scratch16_2T
#   (the sub-block ablation adds --inherit_parts=attn+norm | mlp+norm | attn+mlp to step 3; inherit.py PRESETS)
#
# Paper facts followed (docs/papers.md sec. 2 "GPT-2 setup"): nanoGPT-based GPT-2, OpenWebText, context 1024, GELU, no bias,
# no dropout, pre-LN, attention logits additionally scaled by 1/(layer_idx+1); AdamW (0.9, 0.95), 2K warmup, cosine
# to 1e-5, weight decay 0.1, clip 1.0; Medium 24L / 1024 / 16 heads, lr 3e-4, batch 394K tokens (384 x 1024 =
# 393,216), T = 100K steps. Paper's result: reference 2.81 | 16L scratch 100K 2.86 | 16L scratch 200K 2.83 |
# Inheritune 12L 2.87 -> 14L 2.84 -> 16L 2.81. Not from the paper: micro-batch 12 (nanoGPT's), eval cadence.
#
# Against the official code: its repository holds only the Large script, so the Medium values above are the
# paper's; everything that script fixes beyond them is taken from it (eval every 1000 steps, eval_iters 200, lr
# decay over max_iters). The inheritance is the official code's and the search rule the paper's (inherit.py
# defaults). The shared trainer differs from the official scripts as listed in config/inheritune_gpt2_large.py:
# weight decay also on the embeddings (official: nn.Linear weights only), micro-batch split (12 x 32 here), warmup
# (it+1)/(warmup+1) vs it/warmup, seed and batch sampler, fixed 12-sequence eval batches, SDPA attention, val split
# (use --val_fraction=0.0005 for the official size).
# Data: python data/prepare.py --hf=openwebtext --max_bytes=0 --val_fraction=0.0005   (needs `datasets` and a
# network; ~9B train tokens)

dataset = "openwebtext"
out_dir = "out/inheritune_gpt2_medium"
arch = "gpt2"
n_layer = 24
n_head = 16
n_embd = 1024
bias = False
dropout = 0.0
scale_attn_by_inverse_layer_idx = True
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU (nanogrow's default is exact)
block_size = 1024
batch_size = 12
total_batch_tokens = 393_216    # 384 sequences x 1024 tokens ~ 394K; accumulation = 32 micro-batches in all
max_iters = 100_000             # T
learning_rate = 3e-4
min_lr = 1e-5
warmup_iters = 2000
decay_lr = True
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
eval_interval = 1000
eval_iters = 200
log_interval = 10
keep_checkpoints = 3
