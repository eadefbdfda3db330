# Gstack, CPU scale (Du et al. 2024; docs/papers.md sec. 1): the paper's headline comparison in minutes on a laptop,
# an 8-layer Llama from scratch vs Gstack (a 2-layer base trained d tokens, stacked g = 4 times, trained on to the
# same token budget), with the speedup at scratch's final loss in exact FLOPs and in the paper's tokens.
#   python data/prepare.py --tokenizer=byte --name=pybytes                      # once: the byte-level corpus
#   python experiments/gstack.py --scale cpu --arms scratch,gstack --seeds 2    # the headline
#   python train.py config/gstack_cpu.py --out_dir=out/gstack_cpu_run            # the Gstack arm alone
# Sizes: bytes (vocab 256), so the transformer body, not a 50K-token LM head, does the work; 128 wide, 4 heads,
# context 128, and 3.1M tokens per arm, so the two headline arms of a seed fit 20 minutes on a 2-core CPU.
# d = 25% of the budget: Eq. 2 does not extrapolate to models this small, and a shorter base phase would stop in
# the base's first steep drop of loss; the base's FLOPs stay ~7% of scratch's.

dataset = "pybytes"
device = "cpu"
compile = False
dtype = "float32"
arch = "llama"                  # the paper's
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 2                     # the base, L/4; growth makes it 8 (scratch: 8 from the start)
batch_size = 16                 # 2048 tokens per step
max_iters = 1536                # B = 3,145,728 tokens per arm
learning_rate = 3e-3
min_lr = 3e-4                   # the paper's 0.1x max LR
warmup_iters = 50
grow_at_tokens = 786_432        # d = 25% of B (384 steps)
grow_dim = "depth"              # the paper's Gstack
grow_op = "direct"              # the paper's Gstack
grow_factor = 4                 # the paper's g
grow_schedule = "restart"       # the paper's: a new AdamW, warmup + cosine restarted
grow_ramp_steps = 288           # G_random: blend-in over 25% of the post-growth steps
eval_interval = 64              # 25 evaluations: where scratch's final loss is crossed is interpolated
eval_iters = 8                  # 16K val bytes per domain, the same batches for every run and seed
log_interval = 32
keep_checkpoints = 1
