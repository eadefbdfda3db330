# BiMix, CPU scale (Ge et al. 2024; docs/papers.md sec. 3): the paper's headline comparison in minutes on a laptop,
# natural, uniform and conditional-entropy (CE) mixtures at equal tokens, the BiMix law fitted on them (and checked by
# extrapolating to their last evaluation, held out of a second fit), then a run on the law's optimal mixture. This
# file is the GPT-2 proxy; the experiment sets `mixture` per arm.
#   python data/prepare.py --tokenizer=byte --name=pybytes          # once: the byte-level corpus
#   python mix.py data/pybytes                                      # its entropies and the mixtures they give
#   python experiments/bimix.py --scale cpu --seeds 2               # natural, uniform, ce, then fitted
#   python experiments/bimix.py --scale cpu --seeds 2 --tilt 0.6    # + one proxy per domain at .6 (others .2)
# Sizes: bytes (vocab 256), so the transformer body, not a 50K-token LM head, dominates the compute; 6 layers, 128
# wide, context 128, and 2.1M bytes per arm, less than the smallest domain (no domain repeats, whatever the mixture),
# so the four arms of a seed fit 20 minutes on a 2-core CPU. An evaluation every 64 steps gives the law its points.

dataset = "pybytes"
device = "cpu"
compile = False
dtype = "float32"
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 6
batch_size = 16                 # 2048 tokens per step
max_iters = 1024                # s: 2,097,152 tokens per arm
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 50
eval_interval = 64              # 16 evaluations per run after iter 0; the law's points: s >= 256
eval_iters = 8                  # 16K val bytes per domain, the same batches for every run and seed
log_interval = 32
keep_checkpoints = 1
