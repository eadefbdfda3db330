# Gstack at paper scale, 1.1B (Du et al. 2024; docs/papers.md sec. 1): a 6-layer Llama base trains d = 10B tokens, is
# stacked g = 4 times to 24 layers and trains on to 100B tokens; with --grow_op / --grow_dim, the paper's operator
# comparison. Sizes: the paper's, shapes from the official lit_gpt config 24L2048H. Needs a cluster. Differences
# from the official training scripts: docs/papers.md.
#   python data/prepare.py --hf=slimpajama --max_bytes=0      # once; needs `datasets` and a network
#   torchrun --standalone --nproc_per_node=8 train.py config/gstack_1b.py --out_dir=out/gstack_1b
#   torchrun ... train.py config/gstack_1b.py --n_layer=24 --grow_at_tokens=0 --out_dir=out/gstack_1b_scratch
#   python eval.py compare out/gstack_1b_scratch out/gstack_1b --plot out/gstack_1b.png
#   torchrun ... train.py config/gstack_1b.py --grow_at_tokens=0 --min_lr=1e-4 --max_tokens=10_000_000_000 \
#       --lr_decay_iters=300000 --out_dir=out/gstack_1b_base              # the official two-step form: the base,
#   torchrun ... train.py config/gstack_1b.py --init_from=grow --grow_from=out/gstack_1b_base --grow_at_tokens=0 \
#       --max_tokens=90_000_000_000 --lr_decay_iters=300000 --out_dir=out/gstack_1b_grown    # then the large phase

dataset = "slimpajama"          # the paper's
out_dir = "out/gstack_1b"
arch = "llama"                  # the paper's
n_layer = 6                     # the paper's base; growth makes it 24
n_head = 32                     # lit_gpt 24L2048H: 32 heads, no GQA
n_embd = 2048
intermediate_size = 5632
block_size = 2048               # the paper's
total_batch_tokens = 2_097_152  # the paper's ~2M (g_stack.sh: 1024 x 2048)
max_tokens = 100_000_000_000
learning_rate = 1e-3            # the paper's for the base
grow_learning_rate = 3e-4       # the paper's max LR for 1.1B
min_lr = 3e-5                   # the paper's 0.1x max LR
warmup_iters = 3000             # the paper's
decay_lr = True                 # the paper's cosine
weight_decay = 0.1              # the paper's (official scripts)
beta1 = 0.9                     # the paper's (official scripts)
beta2 = 0.95                    # the paper's (official scripts)
grad_clip = 1.0                 # the paper's (official scripts)
grow_at_tokens = 10_000_000_000 # the paper's d
grow_dim = "depth"              # the paper's Gstack
grow_op = "direct"              # the paper's Gstack
grow_factor = 4                 # the paper's g
grow_noise = 0.0                # the paper's main runs
grow_schedule = "restart"       # the paper's: a new AdamW, warmup + cosine restarted
grow_ramp_steps = 5000          # G_random: the official msg.py's; widthwise (3 phases of it): 15000
eval_interval = 1000
eval_iters = 10
