# BiMix, CPU scale: the paper's headline comparison (Ge et al. 2024; docs/papers.md sec. 3) in minutes on a laptop:
# natural, uniform and conditional-entropy (CE) mixtures at equal tokens, the BiMix law fitted on them (and checked
# by extrapolating to their last evaluation, held out of a second fit), then a run on the law's optimal mixture.
#
#   python data/prepare.py --tokenizer=byte --name=pybytes          # once: the byte-level corpus
#   python mix.py data/pybytes                                      # its entropies and the mixtures they give
#   python experiments/bimix.py --scale cpu --seeds 2               # natural, uniform, ce, then fitted
#   python experiments/bimix.py --scale cpu --seeds 2 --tilt 0.6    # + one proxy per domain at .6 (others .2)
#
# Data: pybytes = data/prepare.py's offline corpus at the byte level (vocab 256), three domains: code 19.5M, prose
# 9.4M, c 19.6M train bytes. Mixtures there: natural .40 / .19 / .40, uniform 1/3 each, CE (softmax of the
# conditional byte entropies 2.45 / 2.70 / 2.77 nats) .27 / .35 / .38. An arm reads 2.1M bytes in all, less than the
# smallest domain (prose, 9.4M): whatever the mixture, no domain repeats.
#
# The proxy: GPT-2 (pre-LN, GELU, no bias, no dropout, tied embeddings), 6 layers, 128 wide, 4 heads, context 128,
# vocab 256. Training FLOPs per token (GPT.flops_per_token = 6N + 12LCT, N with the LM head): 8.46M, of which the
# LM head is 2.3% (embeddings + head counted as separate matmuls, wpe too: 5.8%) -> <= 15%.
# Tokens: 1024 steps x 16 x 128 = 2,097,152 per arm (s = 1024 steps), all arms equal.
# The law's points: an evaluation every 64 steps; the experiment fits the evaluations at s >= 256 (its --fit_from
# 0.25: the warmup and the first steep drop follow no power law in s), 13 per run and domain, 39 per domain over
# the three proxies (36 with the last one held out for the extrapolation check).
# Time: measured with bench.py (--device=cpu --steps=8 --rounds=3, float32, 2 threads) on a 2-core x86 VM whose
# cores other jobs were sharing, so these are upper bounds: ~0.141 s a step (~14,500 tokens/s): 2.4 min per arm,
# ~9.6 min for the four, plus 17 evaluations per arm (~1.2 s each), the corpus entropies (~5 s, cached) and
# start-up: ~11 min per seed (limit 20). Measured (2026-11-28, 2 seeds): 12.9 and 12.9 min per seed.
# Paper facts kept: the law L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i) fitted by least squares on
# proxy runs' evaluations, its optimum under sum r_i = 1, CE = H(X_t+1 | X_t) with r = softmax(H), equal tokens.
# Not the paper's: sizes, steps, bytes (the paper: GPT-NeoX BPE on SlimPajama / the Pile), LR 3e-3, warmup 50.

dataset = "pybytes"
mixture = None                  # set per arm by the experiment: natural | uniform | ce | {domain: r}
device = "cpu"
compile = False
dtype = "float32"
arch = "gpt2"
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 6
n_head = 4
n_embd = 128
bias = False
dropout = 0.0
block_size = 128
batch_size = 16                 # 2048 tokens per step
max_iters = 1024                # s: 2,097,152 tokens per arm
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 50
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
eval_interval = 64              # 16 evaluations per run after iter 0; the law's points: s >= 256
eval_iters = 8                  # 8 x 2048 = 16K val bytes per domain, the same batches for every run and seed
log_interval = 32
keep_checkpoints = 1
seed = 1337                     # --seeds N adds 1338, 1339, ...
