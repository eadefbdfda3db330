# BiMix, one-GPU mini: the base settings of `python experiments/bimix.py --scale mini` on the offline corpus
# `pycorpus` (data/prepare.py: three domains code / prose / c, GPT-2 BPE; train tokens 8.9M / 2.9M / 8.2M).
#
#   python data/prepare.py
#   python mix.py data/pycorpus                     # the entropies and the mixtures they give
#   python experiments/bimix.py --scale mini        # natural, uniform, ce, then the fitted mixture
#
# The proxy (Ge et al. 2024; docs/papers.md sec. 3) is scaled down from the paper's 12L/768 to 8 layers /
# 512 wide (~51M params): the smallest domain (prose, 2.9M tokens) is seen ~3-4 times in a uniform or CE run
# already, and a bigger model would overfit it. The experiment trains it with mixture natural / uniform / ce at
# equal tokens, fits L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i) on every evaluation (iter > 0) of
# those runs (8 points per run and domain) by least squares on the losses (the paper's objective, mix.fit_bimix's
# default), then trains on the fitted optimum at s = max_iters.
#
# Size and time: 128 steps of 2^18 = 262,144 tokens (32 x 512 x 16 micro-steps) = 33.5M tokens per arm.
# GPT.flops_per_token (block 512) ~0.33 GFLOP/token: 1.1e16 FLOPs per arm, ~30 s at ~40% MFU of 989 TFLOP/s
# (~396 TFLOP/s), plus ~1 min of torch.compile; four arms ~6-8 min of one H100 (the first CE run also computes the
# corpus entropies on the CPU, cached in data/pycorpus/entropy.json). compile and bf16: train.py's defaults on CUDA.
# Not the paper's: sizes, steps, GPT-2 BPE (the paper: GPT-NeoX tokenizer), LR 1e-3, warmup 12.

dataset = "pycorpus"
out_dir = "out/bimix_mini_run"  # its own folder: out/ holds the default run
mixture = None                  # set per arm by the experiment: natural | uniform | ce | {domain: r}
arch = "gpt2"
n_layer = 8
n_head = 8
n_embd = 512
bias = False
dropout = 0.0
block_size = 512
batch_size = 32
total_batch_tokens = 262_144
max_iters = 128
learning_rate = 1e-3
min_lr = 1e-4
warmup_iters = 12
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
eval_interval = 16
eval_iters = 20
log_interval = 4
keep_checkpoints = 2
