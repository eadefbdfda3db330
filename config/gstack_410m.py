# Gstack at paper scale, 410M (Du et al. 2024; docs/papers.md sec. 1): a 6-layer Llama base trains d = 10B tokens, is
# stacked g = 4 times to 24 layers and trains on to 400B tokens, where the paper reports its 410M speedup. Needs a
# cluster. Shapes from the official lit_gpt configs 6L1024H / 24L1024H; the official code has no 410M scripts, so this
# is its 1.1B recipe at the paper's max LR 6e-4. Differences from the official training scripts: docs/papers.md.
#   python data/prepare.py --hf=slimpajama --max_bytes=0      # once; needs `datasets` and a network
#   torchrun --standalone --nproc_per_node=8 train.py config/gstack_410m.py --out_dir=out/gstack_410m
#   torchrun ... train.py config/gstack_410m.py --n_layer=24 --grow_at_tokens=0 --out_dir=out/gstack_410m_scratch
#   python eval.py compare out/gstack_410m_scratch out/gstack_410m --plot out/gstack_410m.png
#   torchrun ... train.py config/gstack_410m.py --grow_at_tokens=0 --min_lr=1e-4 --max_tokens=10_000_000_000 \
#       --lr_decay_iters=300000 --out_dir=out/gstack_410m_base          # the official two-step form: the base,
#   torchrun ... train.py config/gstack_410m.py --init_from=grow --grow_from=out/gstack_410m_base --grow_at_tokens=0 \
#       --max_tokens=390_000_000_000 --lr_decay_iters=300000 --out_dir=out/gstack_410m_grown  # then the large phase

dataset = "slimpajama"          # the paper's
out_dir = "out/gstack_410m"
arch = "llama"                  # the paper's
n_layer = 6                     # the paper's base; growth makes it 24
n_head = 16                     # lit_gpt 6L1024H: 16 heads, no GQA
n_embd = 1024
intermediate_size = 2816
block_size = 2048               # the paper's
total_batch_tokens = 2_097_152  # the paper's ~2M (2048 x 1024)
max_tokens = 400_000_000_000    # the paper's 410M comparison (53.1% speedup; 31.0% at 700B)
learning_rate = 1e-3            # the paper's for the base
grow_learning_rate = 6e-4       # the paper's max LR for 410M
min_lr = 6e-5                   # the paper's 0.1x max LR
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
grow_noise = 0.0                # the paper's main runs (its appendix finds a = 0.2 slightly better)
grow_schedule = "restart"       # the paper's: a new AdamW, warmup + cosine restarted
eval_interval = 1000            # ~2.1B tokens
eval_iters = 10
