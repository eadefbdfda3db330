# Inheritune, GPU scale: the CPU scale's headline comparison (Sanyal et al. 2024; docs/papers.md sec. 2) on one GPU
# in a short lease: is a half-depth model that inherits the first L/2 blocks of a trained reference, trained T
# steps, as good as the same model from scratch trained 2T steps? Same corpus, arms and depth as
# config/inheritune_cpu.py; the model 4x as wide (15x the FLOPs per token), 13x the tokens.
#
#   python data/prepare.py --tokenizer=byte --name=pybytes                       # once: the byte-level corpus
#   python experiments/gpu_jobs.py --only inheritune                              # job 3 (the usual way, on a lease)
#   python experiments/inheritune.py --scale gpu --arms reference,inherit,scratch_T,scratch_2T   # by hand
#
# Data: pybytes = data/prepare.py's offline corpus (code / prose / c) at the byte level (vocab 256), so that the
# transformer body, not a 50K-token LM head, does the work: token and position embeddings + the tied head, each
# counted as a matmul, are 1.4% of the 8-layer model's FLOPs and 2.9% of the 4-layer one's.
#
# This file is the reference: GPT-2 as in the paper's code (pre-LN, GELU, no bias, no dropout, attention logits
# / (layer_idx+1), tied embeddings), L = 8 layers, 512 wide, 8 heads of 64, context 256, trained T = max_iters
# steps. The experiment derives: inherit = its first n = L/2 = 4 blocks + wte / wpe / tied lm_head, T steps;
# scratch_T and scratch_2T = 4 layers from scratch for T and 2T (the cosine stretched to 2T). The search
# (n = 4, 6, ...) is not in the job: a round costs as much as the inherit arm, and the job has no time left for it.
# Training FLOPs per token (GPT.flops_per_token = 6N + 12LCT, N with the LM head): 8 layers 164.4M (15x the cpu
# scale's 11.2M), 4 layers 82.6M.
# Tokens: T = 640 steps x 128 x 256 = 32,768 tokens a step = 20,971,520 tokens (13x the cpu scale's T), 2T 41.9M.
# FLOPs: reference 21.0M x 164.4M = 3.45e15; inherit and scratch_T 1.73e15 each; scratch_2T 3.46e15.
#
# Time, one H100 (experiments/gpu_jobs.py estimates every step this way before it starts it, and replaces the
# assumed rate by the one measured once an arm has run):
#   rate: 1e14 FLOP/s = 10% MFU of the H100's 989 TFLOP/s bf16 peak, assumed low on purpose (the speed job measured
#   ~13% for a 6-layer, 384-wide model in train.py on an H200; config/gstack_gpu.py has the reasoning);
#   compile: 45 s per torch.compile (the speed job's slowest cold compile, 12 layers); start-up 15 s per run;
#   6 evaluations per T (every 128 steps: 4 x 32K val bytes x 3 domains, eager at half the rate), each followed
#   by a checkpoint (25M params x 12 bytes = 0.31 GB at 0.3 GB/s): 1.45 s each for 8 layers, 0.73 s for 4.
#   reference + inherit (one step: the inheritance needs the reference's checkpoint, which a lease does not keep):
#     15 + 45 + 3.45e15 / 1e14 (35 s) + 6 x 1.45 + 15 + 45 + 17 s + 6 x 0.73 + 10 (tables, plot) = ~195 s
#   scratch_T 15 + 45 + 17 s + 4 + 10 = ~92 s;  scratch_2T 15 + 45 + 35 s + 11 x 0.73 + 10 = ~113 s
#   job 3 = data (<= 60 s, once per lease) + 195 + 92 + 113 = ~7.7 min (limit 8).
#
# Paper facts kept: GPT-2 with no bias, no dropout, pre-LN, attention logits / (layer_idx+1), AdamW (0.9, 0.95),
# wd 0.1, clip 1.0, n = L/2, equal T for reference, inherited and scratch_T, 2T for scratch_2T. Not the paper's:
# sizes, T (the paper: 100K steps), bytes (the paper: GPT-2 BPE on OpenWebText), LR 1.5e-3 with min_lr 1.5e-4
# (the cpu scale's 3e-3 x sqrt(128 / 512) for a 4x wider model), warmup 50, context 256.

dataset = "pybytes"
arch = "gpt2"
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 8                     # L; the inherited and scratch models have L/2 = 4
n_head = 8
n_embd = 512
bias = False
dropout = 0.0
scale_attn_by_inverse_layer_idx = True
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU (nanogrow's default is exact)
block_size = 256
batch_size = 128                # 32,768 tokens per step, one micro-batch
max_iters = 640                 # T: 20,971,520 tokens
learning_rate = 1.5e-3
min_lr = 1.5e-4
warmup_iters = 50
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
eval_interval = 128             # T is a multiple: every arm is evaluated at exactly T (and 2T)
eval_iters = 4                  # 4 x 32K = 131K val bytes per domain, the same batches for every run
log_interval = 32
keep_checkpoints = 1
seed = 1337
# device, dtype and compile: train.py's defaults (CUDA, bfloat16, compiled on a GPU; a --device=cpu dry run works)
