# BiMix, CPU-tiny: the base settings of `python experiments/bimix.py --scale tiny` (seconds per arm on a CPU; the
# test suite runs it on a byte-level two-domain dataset). It checks the pipeline, not the paper's numbers.
#
#   python experiments/bimix.py --scale tiny --dataset data/<name>
#   python train.py config/bimix_tiny.py --dataset=data/<name> --mixture=ce --out_dir=out/bimix_tiny_ce
#
# The experiment trains this proxy with mixture natural / uniform / ce (Ge et al. 2024; docs/papers.md sec. 3)
# at equal tokens, fits L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i) on every evaluation (iter > 0) of
# those runs by least squares on the losses (the paper's objective, mix.fit_bimix's default), and trains a fourth
# run on the fitted optimum at s = max_iters. Evaluating every 5 steps gives 6 points
# per run and domain (the fit needs >= 5 per domain, >= 2 distinct r and s). Not the paper's: sizes, steps, LR.

dataset = "pycorpus"            # the test passes --dataset=<byte-level tmp dataset>
out_dir = "out/bimix_tiny_run"  # its own folder: out/ holds the default run
mixture = None                  # set per arm by the experiment: natural | uniform | ce | {domain: r}
device = "cpu"
compile = False
dtype = "float32"
arch = "gpt2"
n_layer = 2
n_head = 2
n_embd = 32
bias = False
dropout = 0.0
block_size = 32
batch_size = 8
max_iters = 30
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 3
eval_interval = 5
eval_iters = 4
log_interval = 5
keep_checkpoints = 1
