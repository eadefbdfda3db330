# Inheritune, GPU scale (Sanyal et al. 2024; docs/papers.md sec. 2): config/inheritune_cpu.py's comparison on one GPU
# (is a half-depth model that inherits the first L/2 blocks of a trained reference, trained T steps, as good as the
# same model from scratch trained 2T steps?), without the search. This file is the reference, L = 8 layers trained
# T = max_iters steps; the experiment derives the other arms from it.
#   python data/prepare.py --tokenizer=byte --name=pybytes                       # once: the byte-level corpus
#   python tools/gpu_jobs.py --only inheritune                              # job 3 of the GPU runner
#   python experiments/inheritune.py --scale gpu --arms reference,inherit,scratch_T,scratch_2T   # by hand
# Sizes: the cpu scale's corpus, arms and depth with a model 4x as wide (256, heads of 64; 16x the FLOPs per token),
# context 256 and 8x the tokens, so the four arms fit 8 minutes of one H100; LR: the cpu scale's 1e-2 x
# sqrt(64 / 256). Device, dtype and compile are train.py's defaults (a --device=cpu dry run works).

dataset = "pybytes"
arch = "gpt2"                   # the paper's
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 8                     # L; the inherited and scratch models have L/2 = 4
n_head = 4
n_embd = 256
bias = False                    # the paper's
dropout = 0.0                   # the paper's
scale_attn_by_inverse_layer_idx = True  # the paper's
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU
block_size = 256
batch_size = 128                # 32,768 tokens per step, one micro-batch
max_iters = 1024                # T: 33,554,432 tokens
learning_rate = 5e-3
min_lr = 5e-4
warmup_iters = 50
weight_decay = 0.1              # the paper's
beta1 = 0.9                     # the paper's
beta2 = 0.95                    # the paper's
grad_clip = 1.0                 # the paper's
eval_interval = 128             # T is a multiple: every arm is evaluated at exactly T (and 2T)
eval_iters = 4                  # 131K val bytes per domain, the same batches for every run
log_interval = 32
keep_checkpoints = 1
