# Inheritune, one-GPU mini: the base settings of `python experiments/inheritune.py --scale mini` on the offline corpus
# `pycorpus` (data/prepare.py: code / prose / c domains, GPT-2 BPE, ~20M train tokens).
#
#   python data/prepare.py
#   python experiments/inheritune.py --scale mini                 # all arms, one H100; or the reference alone:
#   python train.py config/inheritune_mini.py --out_dir=out/inheritune_mini_ref
#
# This file is the reference: GPT-2 small's shape (12 layers, 768 wide, 12 heads, ~124M params), T = max_iters
# steps. The experiment derives inherit (first n = L/2 = 6 blocks + wte / tied lm_head, T steps), scratch_T and
# scratch_2T (6 layers from scratch, T and 2T steps), the search (n = 6, 8, 10 until it matches the reference) and
# the sub-block ablation. Paper facts kept (Sanyal et al. 2024; docs/papers.md sec. 2): GPT-2 with no bias,
# no dropout, pre-LN, attention logits / (layer_idx+1), AdamW (0.9, 0.95), cosine to 1e-5, wd 0.1, clip 1.0,
# n = L/2 then += 2, the 2T baseline. Not the paper's: sizes, T, LR 6e-4 (nanoGPT's for this shape), warmup 16,
# context 512. The inheritance is the official GPT-2 code's (inherit.py defaults); the shared trainer differs from
# the official scripts as listed in config/inheritune_gpt2_large.py (weight decay also on the embeddings, warmup
# formula, seed and batch sampler, eval batches, SDPA attention).
#
# Size and time: T = 160 steps of 2^18 = 262,144 tokens (32 x 512 x 16 micro-steps) = 42M tokens (~2 epochs of
# pycorpus; 2T ~4 epochs). FLOPs by GPT.flops_per_token (block 512): 12 layers ~0.80 GFLOP/token, 6 layers ~0.52.
# At ~40% MFU of 989 TFLOP/s (~396 TFLOP/s): reference 42M x 0.80G = 3.4e16 FLOPs ~ 1.4 min, each 6-layer T arm
# ~0.9 min, scratch_2T ~1.8 min, plus ~1 min of torch.compile per arm; all arms (search up to 3 rounds, 3 ablations)
# ~20-25 min of one H100. compile and bf16 are train.py's defaults on CUDA.

dataset = "pycorpus"
out_dir = "out/inheritune_mini_run"  # its own folder: out/ holds the default run
arch = "gpt2"
n_layer = 12
n_head = 12
n_embd = 768
bias = False
dropout = 0.0
scale_attn_by_inverse_layer_idx = True
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU (nanogrow's default is exact)
block_size = 512
batch_size = 32
total_batch_tokens = 262_144
max_iters = 160                 # T
learning_rate = 6e-4
min_lr = 1e-5
warmup_iters = 16
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
eval_interval = 16              # T and 2T are multiples: every arm evaluates at its last step
eval_iters = 20
log_interval = 4
keep_checkpoints = 2
