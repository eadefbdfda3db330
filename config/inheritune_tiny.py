# Inheritune, CPU-tiny (Sanyal et al. 2024; docs/papers.md sec. 2): the base settings of `python
# experiments/inheritune.py --scale tiny`, seconds per arm on a CPU; the test suite runs it on a byte-level two-domain
# dataset. It checks the pipeline, not the paper's numbers. This file is the reference (L = 4 layers, T = max_iters
# steps); the experiment derives the other arms from it.
#   python experiments/inheritune.py --scale tiny --dataset data/<name>
#   python train.py config/inheritune_tiny.py --dataset=data/<name> --out_dir=out/inheritune_tiny_ref   # the reference
#   python inherit.py search --ref out/inheritune_tiny_ref --out_dir out/inheritune_tiny_search

out_dir = "out/inheritune_tiny_ref"  # its own folder: out/ holds the default run
device = "cpu"
compile = False
dtype = "float32"
arch = "gpt2"                   # the paper's
bias = False                    # the paper's
dropout = 0.0                   # the paper's
scale_attn_by_inverse_layer_idx = True  # the paper's
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU
n_embd = 64
block_size = 32
max_iters = 30                  # T
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 3
weight_decay = 0.1              # the paper's
beta1 = 0.9                     # the paper's
beta2 = 0.95                    # the paper's
grad_clip = 1.0                 # the paper's
eval_interval = 10
eval_iters = 4
log_interval = 5
keep_checkpoints = 1
