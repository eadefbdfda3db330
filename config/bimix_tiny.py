# BiMix, CPU-tiny (Ge et al. 2024; docs/papers.md sec. 3): the base settings of `python experiments/bimix.py --scale
# tiny`, seconds per arm on a CPU; the test suite runs it on a byte-level two-domain dataset. It checks the pipeline,
# not the paper's numbers. The experiment trains this proxy on mixtures natural / uniform / ce, fits the law on their
# evaluations and trains a fourth run on the fitted optimum. An evaluation every 5 steps gives 6 points per run and
# domain (the fit needs >= 5 per domain, >= 2 distinct r and s).
#   python experiments/bimix.py --scale tiny --dataset data/<name>
#   python train.py config/bimix_tiny.py --dataset=data/<name> --mixture=ce --out_dir=out/bimix_tiny_ce

out_dir = "out/bimix_tiny_run"  # its own folder: out/ holds the default run
device = "cpu"
compile = False
dtype = "float32"
n_layer = 2
n_head = 2
n_embd = 32
block_size = 32
max_iters = 30
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 3
eval_interval = 5
eval_iters = 4
log_interval = 5
keep_checkpoints = 1
