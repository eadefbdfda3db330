# BiMix, GPU scale: the CPU scale's headline comparison (Ge et al. 2024; docs/papers.md sec. 3) on one GPU in a
# short lease: natural, uniform and conditional-entropy (CE) mixtures at equal tokens, the BiMix law fitted on them
# (and checked by extrapolating to their last evaluation, held out of a second fit), then a run on the law's
# optimal mixture. Same corpus, arms and depth as config/bimix_cpu.py; the proxy 3x as wide (8x the FLOPs per
# token), 10x the tokens.
#
#   python data/prepare.py --tokenizer=byte --name=pybytes          # once: the byte-level corpus
#   python experiments/gpu_jobs.py --only bimix                      # job 4 (the usual way, on a lease)
#   python experiments/bimix.py --scale gpu                          # natural, uniform, ce, then fitted, by hand
#
# Data: pybytes = data/prepare.py's offline corpus at the byte level (vocab 256), three domains (on the CPU
# machine: code 19.5M, prose 9.4M, c 19.6M train bytes; the GPU machine builds its own from its Python). An arm
# reads 21M bytes in all: a mixture with more than ~45% prose repeats some prose (the loader draws random windows,
# so a repeat is a second look at a window, not an epoch boundary); natural, uniform and CE stay under it.
#
# The proxy: GPT-2 (pre-LN, GELU, no bias, no dropout, tied embeddings), 6 layers, 384 wide, 6 heads of 64,
# context 256, vocab 256: the speed job's smoke-test shape (docs/results/gpu/speed) with the byte vocabulary.
# Training FLOPs per token (GPT.flops_per_token = 6N + 12LCT, N with the LM head): 71.4M (8x the cpu scale's
# 8.46M), of which the LM head is 0.8% (token and position embeddings + the tied head, each counted as a
# matmul: 2.5%).
# Tokens: 640 steps x 128 x 256 = 32,768 tokens a step = 20,971,520 per arm (s = 640 steps), all arms equal.
# The law's points: an evaluation every 32 steps; the experiment fits the evaluations at s >= 160 (its --fit_from
# 0.25), 15 per run and domain, 45 per domain over the three proxies (42 with the last one held out).
# Time, one H100 (experiments/gpu_jobs.py estimates every step this way before it starts it, and replaces the
# assumed rate by the one measured once an arm has run):
#   rate: 1e14 FLOP/s = 10% MFU of the H100's 989 TFLOP/s bf16 peak, assumed low on purpose (the speed job measured
#   ~13% for this very shape with a 50K vocabulary on an H200; config/gstack_gpu.py has the reasoning);
#   compile: 45 s per torch.compile (the speed job's slowest cold compile, 12 layers); start-up 15 s per run;
#   21 evaluations per arm (4 x 32K val bytes x 3 domains, eager at half the rate), each followed by a checkpoint
#   (11M params x 12 bytes = 0.13 GB at 0.3 GB/s): 0.62 s each.
#   per arm: 15 + 45 + 21.0M x 71.4M / 1e14 (15 s) + 21 x 0.62 (13 s) + 10 (tables, plot, the fit) = ~98 s
#   job 4 = data (<= 60 s, once per lease) + 4 x 98 = ~7.5 min (limit 8).
#
# Paper facts kept: the law L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i) fitted by least squares on
# proxy runs' evaluations, its optimum under sum r_i = 1, CE = H(X_t+1 | X_t) with r = softmax(H), equal tokens.
# Not the paper's: sizes, steps, bytes (the paper: GPT-NeoX BPE on SlimPajama / the Pile), LR 1.5e-3 (the cpu
# scale's 3e-3 x sqrt(128 / 384), rounded), warmup 50, context 256.

dataset = "pybytes"
mixture = None                  # set per arm by the experiment: natural | uniform | ce | {domain: r}
arch = "gpt2"
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 6
n_head = 6
n_embd = 384
bias = False
dropout = 0.0
block_size = 256
batch_size = 128                # 32,768 tokens per step, one micro-batch
max_iters = 640                 # s: 20,971,520 tokens per arm
learning_rate = 1.5e-3
min_lr = 1.5e-4
warmup_iters = 50
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
eval_interval = 32              # 20 evaluations per run after iter 0; the law's points: s >= 160
eval_iters = 4                  # 4 x 32K = 131K val bytes per domain, the same batches for every run
log_interval = 32
keep_checkpoints = 1
seed = 1337
# device, dtype and compile: train.py's defaults (CUDA, bfloat16, compiled on a GPU; a --device=cpu dry run works)
