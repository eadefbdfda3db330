# Inheritune reference config, GPT-2 Large (36 layers) on OpenWebText (Sanyal et al. 2024; facts in
# docs/papers.md sec. 2). Reference hyperparameters of the paper; needs a cluster (100K steps x 128K tokens =
# 13B tokens at ~5.2 GFLOP/token: ~6 hours on 8 H100 at ~40% MFU).
#
#   1. the reference, L = 36 layers, T = 100K steps:
#      torchrun --standalone --nproc_per_node=8 train.py config/inheritune_gpt2_large.py
#   2. the Inheritune search from n = L/2 = 18 (paper: 18 layers inherited already beat the reference, 2.80 vs 2.85):
#      python inherit.py search --ref out/inheritune_gpt2_large --steps 100000 \
#          --out_dir out/inheritune_gpt2_large_search
#   3. baselines: torchrun ... train.py config/inheritune_gpt2_large.py --n_layer=18 --out_dir=out/large_scratch18_T
#                 torchrun ... train.py config/inheritune_gpt2_large.py --n_layer=18 --max_iters=200000 \
#                     --out_dir=out/large_scratch18_2T
#
# Paper facts followed (docs/papers.md sec. 2): GPT-2, OpenWebText, context 1024, GELU, no bias, no dropout, pre-LN,
# attention logits / (layer_idx+1); AdamW (0.9, 0.95), 2K warmup, cosine to 1e-5, wd 0.1, clip 1.0; Large
# 36L / 1280 / 20 heads, lr 2e-4, batch 128K tokens (128 x 1024 = 131,072), T = 100K steps. Paper's result:
# reference 2.85 | 18L scratch 100K 2.97 | 18L scratch 200K 2.84 | Inheritune 18L 2.80.
# Not from the paper: micro-batch 8, eval cadence (both as in the official script, except its micro-batch of 2).
#
# Against the official Inheritune GPT-2 Large script and model (the only official GPT-2 script; docs/papers.md
# sec. 2 lists what its inheritance copies):
#   the same: the inheritance (blocks 0..n-1 + the tied wte / lm_head; wpe and ln_f at GPT(config)'s fresh init,
#     which is nanoGPT's, so inherit.py's defaults parts=None, fresh_init="model"), the model (GPT-2, tanh GELU, no
#     bias, pre-LN, logits / (layer_idx+1)), AdamW (0.9, 0.95), wd 0.1, clip 1.0, lr 2e-4 -> 1e-5 cosine over 100K
#     steps after 2K warmup, 128 x 1024 tokens per step, bf16, compile, eval every 1000 steps with eval_iters 200,
#     and the comparison: each run's evaluation at step T (its last).
#   different (all in the shared trainer, not in this file):
#     - weight decay on every 2-D weight here, embeddings included (model.py); the official code decays only
#       nn.Linear weights, never wte (= the tied lm_head) or wpe
#     - micro-batch 8 x 16 accumulation here; 2 x 64 there (one process standing in for 8 GPUs): same 128 sequences
#     - warmup: peak * (it+1)/(warmup+1) here, peak * it/warmup there (within peak/2000 of each other)
#     - data order: seed 1337 and the project's sampler (data/loader.py) here; seed 5000 + rank and fresh random
#       windows (torch.randint) there. Val split: 2% by document hash by default here, 0.05% random documents there;
#       --val_fraction=0.0005 below gives the official split size (4.4M val tokens), not the same documents
#     - each evaluation: the same 200 batches of 8 sequences every time here, 200 fresh random micro-batches of 2
#       there (less noise here)
#     - attention: PyTorch SDPA here, an explicit masked softmax there (the same math, other rounding)
#     - the search: `inherit.py search` runs the rounds; the official code has no driver (n set by hand per run)
# Data: python data/prepare.py --hf=openwebtext --max_bytes=0 --val_fraction=0.0005

dataset = "openwebtext"
out_dir = "out/inheritune_gpt2_large"
arch = "gpt2"
n_layer = 36
n_head = 20
n_embd = 1280
bias = False
dropout = 0.0
scale_attn_by_inverse_layer_idx = True
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU (nanogrow's default is exact)
block_size = 1024
batch_size = 8
total_batch_tokens = 131_072    # 128 sequences x 1024 tokens; accumulation = 16 micro-batches in all
max_iters = 100_000             # T
learning_rate = 2e-4
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
