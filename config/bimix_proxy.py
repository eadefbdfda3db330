# BiMix proxy model (Ge et al. 2024, "Data Mixing Made Efficient"; facts in docs/papers.md sec. 3):
# 12 layers / 768 wide, context 1024, batch 512 x 1024 = 524,288 tokens per step, on SlimPajama's 7 domains.
# The law is fitted on a few such proxy runs with different mixtures, each evaluated per domain at several steps.
# Needs a cluster for the full 200K steps (105B tokens at ~0.86 GFLOP/token: ~8 hours on 8 H100 at ~40% MFU).
#
#   torchrun --standalone --nproc_per_node=8 train.py config/bimix_proxy.py --mixture=natural \
#       --out_dir=out/bimix_natural
#   torchrun ... train.py config/bimix_proxy.py --mixture=ce --out_dir=out/bimix_ce
#   torchrun ... train.py config/bimix_proxy.py --mixture=uniform --out_dir=out/bimix_uniform
#   python mix.py --fit out/bimix_natural out/bimix_ce out/bimix_uniform --steps 200000   # prints `mixture = {...}`
#   torchrun ... train.py config/bimix_proxy.py --mixture="{...the printed dict...}" --out_dir=out/bimix_fitted
#
# mixture options (train.py `mixture`, resolved by mix.resolve_mixture):
#   None / "natural"  the default: proportional to each domain's train tokens (SlimPajama's own mixture)
#   "ce"              training-free entropy mixture r_i = softmax(H_i) with H = conditional entropy H(X_t+1 | X_t),
#                     the paper's best ("se", "je", "vne" are the other entropies; "uniform" = 1/n each)
#   {domain: r}       explicit, e.g. the fitted BiMix optimum printed by `python mix.py --fit ...`
#
# Paper facts followed (docs/papers.md sec. 3 "Setup"): proxy 12L/768, context 1024, batch 512 x 1024, 200K steps;
# fit on (r_i, s, L_i) points "evaluated every few billion tokens" (eval every 4000 steps = 2.1B tokens), by least
# squares on the losses, the paper's objective (mix.py's default; the paper solves it with SciPy's trust-region
# reflective method, mix.py with its own Levenberg-Marquardt, which reaches the same minimum; `--objective=log`
# fits log losses instead, a different problem).
# Not from the paper (not in docs/papers.md): GPT-2 architecture and BPE (the paper used the GPT-NeoX tokenizer), lr 6e-4
# with 2000 warmup, cosine to 6e-5, wd 0.1, betas (0.9, 0.95) (nanoGPT's GPT-2 124M recipe, docs/papers.md sec. 4).
# Data: python data/prepare.py --hf=slimpajama --max_bytes=0

dataset = "slimpajama"
out_dir = "out/bimix_proxy"
mixture = None                  # "natural"; see the options above
arch = "gpt2"
n_layer = 12
n_head = 12
n_embd = 768
bias = False
dropout = 0.0
block_size = 1024
batch_size = 16
total_batch_tokens = 524_288    # 512 sequences x 1024 tokens
max_iters = 200_000
learning_rate = 6e-4
min_lr = 6e-5
warmup_iters = 2000
decay_lr = True
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
eval_interval = 4000            # ~2.1B tokens between the points the BiMix fit uses
eval_iters = 20
log_interval = 10
keep_checkpoints = 3
