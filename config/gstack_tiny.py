# Gstack, CPU-tiny: the base settings of `python experiments/gstack.py --scale tiny` (seconds per arm on a laptop CPU;
# the test suite runs it on a byte-level two-domain dataset). It checks the pipeline, not the paper's numbers.
#
#   python experiments/gstack.py --scale tiny --dataset data/<name>      # all arms; or, this run alone:
#   python train.py config/gstack_tiny.py --dataset=data/<name> --out_dir=out/gstack_tiny_run
#
# As this file stands it is the Gstack arm in its in-run form (Du et al. 2024; docs/papers.md sec. 1): a
# 2-layer Llama-style base (RMSNorm, SwiGLU, RoPE) trains grow_at_tokens tokens, is stacked g = 4 times
# (G_direct depthwise) to 8 layers, gets a new AdamW and a restarted warmup + cosine, and trains on to max_iters.
# The experiment script derives the other arms from it: scratch = 8 layers from the start, the other operators =
# grow_op zero / random / learn, widthwise = 8 layers at half width (32, 2 heads: head_dim kept) grown to 64.
# Paper facts kept at this scale: g = 4, a min_lr of 0.1x the max LR, the restarted schedule, FLOPs that include the
# base phase. Not the paper's: sizes, steps, LR. d here is 25% of the budget (10 of 40 steps): the guideline (Eq. 2)
# extrapolates to d far beyond the whole budget at this size (grow.growth_timing), so it cannot be used.
# Unlike the official scripts (github tongxuluo/prts; the full list in config/gstack_1b.py): the cosine ends at
# max_iters (official: over 300K steps), weight decay on the 2-D weights only (official: every parameter), GPT-2's
# init (official base: PyTorch's defaults), random windows per step. G_random's grow_ramp_steps is the whole ramp;
# widthwise the three MSG phases are a third of it each (official: 5000 steps per phase).

dataset = "pycorpus"            # the test passes --dataset=<byte-level tmp dataset>
out_dir = "out/gstack_tiny_run" # its own folder: out/ holds the default run
device = "cpu"
compile = False
dtype = "float32"
arch = "llama"
n_layer = 2                     # the base; growth makes it 8
n_head = 4
n_embd = 64
block_size = 32
batch_size = 8
max_iters = 40                  # 40 x 8 x 32 = 10,240 tokens
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 4
grow_at_tokens = 2560           # d: 10 steps of 256 tokens
grow_dim = "depth"
grow_op = "direct"
grow_factor = 4
grow_schedule = "restart"
grow_ramp_steps = 10            # G_random: blend-in steps (official: 5000 of a 300K-step run, per MSG phase widthwise)
grow_learn_steps = 5            # G_learn (LiGO): steps training the growth maps
eval_interval = 10
eval_iters = 4
log_interval = 5
keep_checkpoints = 1
