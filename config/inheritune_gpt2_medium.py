# Inheritune reference, GPT-2 Medium (24 layers) on OpenWebText (Sanyal et al. 2024; docs/papers.md sec. 2): the
# paper's hyperparameters; the eval cadence and lr decay as in the official (Large) script, micro-batch 12 nanoGPT's.
# Needs a cluster. The paper's result: reference 2.81 | 16L scratch 100K 2.86 | 16L scratch 200K 2.83 | Inheritune
# 12L 2.87 -> 14L 2.84 -> 16L 2.81. Differences from the official training scripts: docs/papers.md.
#   python data/prepare.py --hf=openwebtext --max_bytes=0 --val_fraction=0.0005   # once: the official val size
#   torchrun --standalone --nproc_per_node=8 train.py config/inheritune_gpt2_medium.py         # the reference, T steps
#   python inherit.py search --ref out/inheritune_gpt2_medium --steps 100000 --out_dir out/inheritune_gpt2_medium_search
#   # one inherited model (16 of 24 layers; --inherit_parts=attn+norm etc. for the ablation), the scratch baselines:
#   torchrun ... train.py config/inheritune_gpt2_medium.py --init_from=inherit \
#       --inherit_from=out/inheritune_gpt2_medium --inherit_n_layer=16 --n_layer=16 --out_dir=out/inherit16
#   torchrun ... train.py config/inheritune_gpt2_medium.py --n_layer=16 --out_dir=out/scratch16_T
#   torchrun ... train.py config/inheritune_gpt2_medium.py --n_layer=16 --max_iters=200000 --out_dir=out/scratch16_2T

dataset = "openwebtext"         # the paper's
out_dir = "out/inheritune_gpt2_medium"
arch = "gpt2"                   # the paper's
n_layer = 24                    # the paper's L
n_head = 16                     # the paper's
n_embd = 1024                   # the paper's
bias = False                    # the paper's
dropout = 0.0                   # the paper's
scale_attn_by_inverse_layer_idx = True  # the paper's
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU
block_size = 1024               # the paper's
batch_size = 12                 # micro-batch; accumulation = 32 micro-batches in all
total_batch_tokens = 393_216    # the paper's 394K (384 x 1024)
max_iters = 100_000             # the paper's T
learning_rate = 3e-4            # the paper's
min_lr = 1e-5                   # the paper's
warmup_iters = 2000             # the paper's
decay_lr = True                 # the paper's cosine
weight_decay = 0.1              # the paper's
beta1 = 0.9                     # the paper's
beta2 = 0.95                    # the paper's
grad_clip = 1.0                 # the paper's
eval_interval = 1000            # the official script's
eval_iters = 200                # the official script's
