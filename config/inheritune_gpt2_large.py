# Inheritune reference, GPT-2 Large (36 layers) on OpenWebText (Sanyal et al. 2024; docs/papers.md sec. 2): the
# paper's hyperparameters; the eval cadence as in the official script. Needs a cluster. The paper's result:
# reference 2.85 | 18L scratch 100K 2.97 | 18L scratch 200K 2.84 | Inheritune 18L 2.80. Differences from the
# official training scripts: docs/papers.md.
#   python data/prepare.py --hf=openwebtext --max_bytes=0 --val_fraction=0.0005   # once: the official val size
#   torchrun --standalone --nproc_per_node=8 train.py config/inheritune_gpt2_large.py          # the reference, T steps
#   python inherit.py search --ref out/inheritune_gpt2_large --steps 100000 \
#       --out_dir out/inheritune_gpt2_large_search                                             # from n = L/2 = 18
#   torchrun ... train.py config/inheritune_gpt2_large.py --n_layer=18 --out_dir=out/large_scratch18_T   # baselines
#   torchrun ... train.py config/inheritune_gpt2_large.py --n_layer=18 --max_iters=200000 \
#       --out_dir=out/large_scratch18_2T

dataset = "openwebtext"         # the paper's
out_dir = "out/inheritune_gpt2_large"
arch = "gpt2"                   # the paper's
n_layer = 36                    # the paper's L
n_head = 20                     # the paper's
n_embd = 1280                   # the paper's
bias = False                    # the paper's
dropout = 0.0                   # the paper's
scale_attn_by_inverse_layer_idx = True  # the paper's
gelu_approximate = "tanh"       # the official GPT-2 model's tanh GELU
block_size = 1024               # the paper's
total_batch_tokens = 131_072    # the paper's 128K (128 x 1024)
max_iters = 100_000             # the paper's T
learning_rate = 2e-4            # the paper's
min_lr = 1e-5                   # the paper's
warmup_iters = 2000             # the paper's
decay_lr = True                 # the paper's cosine
weight_decay = 0.1              # the paper's
beta1 = 0.9                     # the paper's
beta2 = 0.95                    # the paper's
grad_clip = 1.0                 # the paper's
eval_interval = 1000            # the official script's
eval_iters = 200                # the official script's
