# Inheritune, CPU scale: the paper's headline comparison (Sanyal et al. 2024; docs/papers.md sec. 2) in minutes on a
# laptop: is a half-depth model that inherits the first L/2 blocks of a trained reference, trained T steps, at least
# as good as the same model from scratch trained 2T steps? And the paper's search for n.
#
#   python data/prepare.py --tokenizer=byte --name=pybytes                       # once: the byte-level corpus
#   python experiments/inheritune.py --scale cpu --arms reference,inherit,scratch_T,scratch_2T,search --seeds 2
#   python train.py config/inheritune_cpu.py --out_dir=out/inheritune_cpu_ref     # the reference alone
#
# Data: pybytes = data/prepare.py's offline corpus (code / prose / c) at the byte level (vocab 256; ~49M train bytes),
# so that the transformer body, not a 50K-token LM head, dominates the compute.
#
# This file is the reference: GPT-2 as in the paper's code (pre-LN, GELU, no bias, no dropout, attention logits
# / (layer_idx+1), tied embeddings), L = 8 layers, 128 wide, 4 heads, context 128, trained T = max_iters steps.
# The experiment derives: inherit = its first n = L/2 = 4 blocks + wte / tied lm_head, T steps; scratch_T and
# scratch_2T = 4 layers from scratch for T and 2T (the cosine stretched to 2T); search = inherit.search from
# n = L/2 in steps of 2 (n = 4, then 6 if 4 does not match the reference) with T steps a round.
# Training FLOPs per token (GPT.flops_per_token = 6N + 12LCT, N with the LM head):
#   8 layers: 11.2M, LM head 1.8% (embeddings + head counted as separate matmuls, wpe too: 4.4%)
#   6 layers:  8.5M, LM head 2.3% (5.8%);   4 layers: 5.7M, LM head 3.4% (8.6%)      -> all <= 15%
# Tokens: T = 768 steps x 16 x 128 = 1,572,864 tokens (reference, inherit, scratch_T, each search round);
# scratch_2T 3,145,728.
# Time: measured with bench.py (--device=cpu --steps=8 --rounds=3, float32, 2 threads) on a 2-core x86 VM whose
# cores other jobs were sharing, so these are upper bounds: 8 layers ~0.215 s a step, 6 layers ~0.141 s, 4 layers
# ~0.096 s. Reference 2.8 min, inherit 1.2, scratch_T 1.2, scratch_2T 2.5, search round n=4 1.2 (+ n=6 1.8 when
# n=4 does not match), plus 13 evaluations per T steps (~1-1.7 s each) and start-up: ~10-13 min per seed
# (limit 20); measured 2026-11-28: 9.6 and 9.9 min.
# Paper facts kept: GPT-2 with no bias, no dropout, pre-LN, attention logits / (layer_idx+1), AdamW (0.9, 0.95),
# wd 0.1, clip 1.0, n = L/2 then += 2, equal T for reference, inherited and scratch_T. Not the paper's: sizes, T
# (the paper: 100K steps), bytes (the paper: GPT-2 BPE on OpenWebText), LR 3e-3 with min_lr 3e-4 (the paper's
# 1e-5 belongs to its LR of 3e-4), warmup 50.

dataset = "pybytes"
device = "cpu"
compile = False
dtype = "float32"
arch = "gpt2"
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 8                     # L; the inherited and scratch models have L/2 = 4
n_head = 4
n_embd = 128
bias = False
dropout = 0.0
scale_attn_by_inverse_layer_idx = True
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU (nanogrow's default is exact)
block_size = 128
batch_size = 16                 # 2048 tokens per step
max_iters = 768                 # T: 1,572,864 tokens
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 50
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
eval_interval = 64              # T is a multiple: every arm and search round is evaluated at exactly T (and 2T)
eval_iters = 8                  # 8 x 2048 = 16K val bytes per domain, the same batches for every run and seed
log_interval = 32
keep_checkpoints = 1
seed = 1337                     # --seeds N adds 1338, 1339, ...
