# Gstack, CPU-tiny (Du et al. 2024; docs/papers.md sec. 1): the base settings of `python experiments/gstack.py --scale
# tiny`, seconds per arm on a CPU; the test suite runs it on a byte-level two-domain dataset. It checks the pipeline,
# not the paper's numbers. As it stands it is the Gstack arm: a 2-layer Llama base trains grow_at_tokens tokens, is
# stacked g = 4 times to 8 layers and trains on to max_iters; the experiment derives the other arms from it.
#   python experiments/gstack.py --scale tiny --dataset data/<name>      # all arms; or this run alone:
#   python train.py config/gstack_tiny.py --dataset=data/<name> --out_dir=out/gstack_tiny_run
# d = 25% of the budget (10 of 40 steps), as at the cpu and gpu scales: Eq. 2 cannot be used at this size.

out_dir = "out/gstack_tiny_run" # its own folder: out/ holds the default run
device = "cpu"
compile = False
dtype = "float32"
arch = "llama"                  # the paper's
n_layer = 2                     # the base; growth makes it 8
n_embd = 64
block_size = 32
max_iters = 40                  # 40 x 8 x 32 = 10,240 tokens
learning_rate = 3e-3
min_lr = 3e-4                   # the paper's 0.1x max LR
warmup_iters = 4
grow_at_tokens = 2560           # d: 10 steps of 256 tokens
grow_dim = "depth"              # the paper's Gstack
grow_op = "direct"              # the paper's Gstack
grow_factor = 4                 # the paper's g
grow_schedule = "restart"       # the paper's: a new AdamW, warmup + cosine restarted
grow_ramp_steps = 10            # G_random: blend-in steps
grow_learn_steps = 5            # G_learn (LiGO): steps training the growth maps
eval_interval = 10
eval_iters = 4
log_interval = 5
keep_checkpoints = 1
