# BiMix, GPU scale (Ge et al. 2024; docs/papers.md sec. 3): config/bimix_cpu.py's comparison on one GPU, natural,
# uniform and conditional-entropy (CE) mixtures at equal tokens, the BiMix law fitted on them (and checked by
# extrapolating to their last evaluation, held out of a second fit), then a run on the law's optimal mixture. This
# file is the GPT-2 proxy; the experiment sets `mixture` per arm.
#   python data/prepare.py --tokenizer=byte --name=pybytes          # once: the byte-level corpus
#   python tools/gpu_jobs.py --only bimix                      # job 4 of the GPU runner
#   python experiments/bimix.py --scale gpu                          # natural, uniform, ce, then fitted, by hand
# Sizes: the cpu scale's corpus, arms and depth with a proxy 3x as wide (384, heads of 64; 8x the FLOPs per token),
# context 256 and 10x the tokens, so the four arms fit 8 minutes of one H100; a mixture with more than ~45% prose
# repeats some prose windows, natural, uniform and CE do not. LR: the cpu scale's 3e-3 x sqrt(128 / 384), rounded.
# Device, dtype and compile are train.py's defaults (a --device=cpu dry run works).

dataset = "pybytes"
vocab_size = 256                # the byte tokenizer: a BPE dataset is refused (its ids do not fit)
n_layer = 6
n_head = 6
n_embd = 384
block_size = 256
batch_size = 128                # 32,768 tokens per step, one micro-batch
max_iters = 640                 # s: 20,971,520 tokens per arm
learning_rate = 1.5e-3
min_lr = 1.5e-4
warmup_iters = 50
eval_interval = 32              # 20 evaluations per run after iter 0; the law's points: s >= 160
eval_iters = 4                  # 131K val bytes per domain, the same batches for every run
log_interval = 32
keep_checkpoints = 1
