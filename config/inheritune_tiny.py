# Inheritune, CPU-tiny: the base settings of `python experiments/inheritune.py --scale tiny` (seconds per arm on a
# CPU; the test suite runs it on a byte-level two-domain dataset). It checks the pipeline, not the paper's numbers.
#
#   python experiments/inheritune.py --scale tiny --dataset data/<name>
#   python train.py config/inheritune_tiny.py --dataset=data/<name> --out_dir=out/inheritune_tiny_ref   # the reference
#   python inherit.py search --ref out/inheritune_tiny_ref --out_dir out/inheritune_tiny_search
#
# This file is the reference (L = 4 layers, trained T = max_iters steps). The experiment derives: inherit = the first
# n = L/2 = 2 blocks + wte / tied lm_head, T steps; scratch_T and scratch_2T = 2 layers from scratch for T and 2T.
# Paper facts kept (Sanyal et al. 2024; docs/papers.md sec. 2): GPT-2 with no bias, no dropout, pre-LN,
# attention logits / (layer_idx+1), AdamW (0.9, 0.95), wd 0.1, clip 1.0, n = L/2 then += 2. Not the paper's: sizes,
# steps, LR, min_lr (0.1x here; the paper's 1e-5 belongs to its LR of 3e-4). The inheritance is the official GPT-2
# code's (inherit.py defaults); the trainer's differences from the official scripts are listed in
# config/inheritune_gpt2_large.py.

dataset = "pycorpus"            # the test passes --dataset=<byte-level tmp dataset>
out_dir = "out/inheritune_tiny_ref"  # its own folder: out/ holds the default run
device = "cpu"
compile = False
dtype = "float32"
arch = "gpt2"
n_layer = 4
n_head = 4
n_embd = 64
bias = False
dropout = 0.0
scale_attn_by_inverse_layer_idx = True
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU (nanogrow's default is exact)
block_size = 32
batch_size = 8
max_iters = 30                  # T
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 3
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
eval_interval = 10
eval_iters = 4
log_interval = 5
keep_checkpoints = 1
