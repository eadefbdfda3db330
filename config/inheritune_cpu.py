# Inheritune, CPU scale (Sanyal et al. 2024; docs/papers.md sec. 2): the paper's headline comparison in minutes on a
# laptop (is a half-depth model that inherits the first L/2 blocks of a trained reference, trained T steps, at least
# as good as the same model from scratch trained 2T steps?) and the paper's search for n. This file is the
# reference, L = 8 layers trained T = max_iters steps; the experiment derives the other arms from it.
#   python data/prepare.py --tokenizer=byte --name=pybytes                       # once: the byte-level corpus
#   python experiments/inheritune.py --scale cpu --arms reference,inherit,scratch_T,scratch_2T,search --seeds 2
#   python train.py config/inheritune_cpu.py --out_dir=out/inheritune_cpu_ref     # the reference alone
# Sizes: bytes (vocab 256), so the transformer body, not a 50K-token LM head, dominates the compute; 128 wide,
# 4 heads, context 128, and T = 1.6M tokens, so every arm of a seed, search included, fits 20 minutes on a 2-core CPU.

dataset = "pybytes"
device = "cpu"
compile = False
dtype = "float32"
arch = "gpt2"                   # the paper's
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 8                     # L; the inherited and scratch models have L/2 = 4
bias = False                    # the paper's
dropout = 0.0                   # the paper's
scale_attn_by_inverse_layer_idx = True  # the paper's
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU
batch_size = 16                 # 2048 tokens per step
max_iters = 768                 # T: 1,572,864 tokens
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 50
weight_decay = 0.1              # the paper's
beta1 = 0.9                     # the paper's
beta2 = 0.95                    # the paper's
grad_clip = 1.0                 # the paper's
eval_interval = 64              # T is a multiple: every arm and search round is evaluated at T (and 2T)
eval_iters = 8                  # 16K val bytes per domain, the same batches for every run and seed
log_interval = 32
keep_checkpoints = 1
