# Inheritune, CPU scale (Sanyal et al. 2024; docs/papers.md sec. 2): the paper's headline comparison on a laptop
# (is a half-depth model that inherits the first L/2 blocks of a trained reference, trained T steps, at least as
# good as the same model from scratch trained 2T steps?), the search for n, the sub-block ablation and the gap
# against T. This file is the reference, L = 8 layers trained T = max_iters steps; the experiment derives the arms.
#   python data/prepare.py --tokenizer=byte --name=pybytes                       # once: the byte-level corpus
#   python experiments/inheritune.py --scale cpu --seeds 3 --jobs 2   # every arm: ~13 min of a 2-core CPU a seed
#   python experiments/inheritune.py --scale cpu --seeds 3 --jobs 2 --gap 0.25,0.5,1,2   # the gap against T
# Sizes, chosen from a pilot (docs/results.md): bytes (vocab 256), so the body, not the LM head, is the compute;
# 64 wide, context 64 and LR 1e-2, so that in a CPU's minutes the reference trains long enough to beat half its
# depth from scratch at T (narrower, the deep model lags; wider, T would not fit). Two seeds at once (--jobs 2,
# one thread each) is the fastest way through on 2 cores.

dataset = "pybytes"
device = "cpu"
compile = False
dtype = "float32"
arch = "gpt2"                   # the paper's
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_embd = 64
block_size = 64
n_layer = 8                     # L; the inherited and scratch models have L/2 = 4
bias = False                    # the paper's
dropout = 0.0                   # the paper's
scale_attn_by_inverse_layer_idx = True  # the paper's
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU
batch_size = 32                 # 2048 tokens per step
max_iters = 2048                # T: 4,194,304 tokens
learning_rate = 1e-2            # the best of 3e-3, 6e-3, 1e-2, 2e-2 in the pilot
min_lr = 1e-3
warmup_iters = 50
weight_decay = 0.1              # the paper's
beta1 = 0.9                     # the paper's
beta2 = 0.95                    # the paper's
grad_clip = 1.0                 # the paper's
eval_interval = 256             # T is a multiple: every arm and search round is evaluated at T (and 2T)
eval_iters = 8                  # 16K val bytes per domain, the same batches for every run and seed
log_interval = 32
keep_checkpoints = 1
