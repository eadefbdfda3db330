# BiMix proxy model at paper scale (Ge et al. 2024; docs/papers.md sec. 3): the paper's 12 layers / 768 wide, context
# 1024, 512 x 1024 tokens a step, 200K steps, on SlimPajama's 7 domains, evaluated every ~2.1B tokens (the paper:
# "every few billion"). Not the paper's: GPT-2 with its BPE (the paper: the GPT-NeoX tokenizer) and nanoGPT's GPT-2
# 124M recipe (docs/papers.md sec. 4). Needs a cluster. `mixture`: None / natural (the default), uniform, ce (the
# paper's best), se, je, or {domain: r}, e.g. the fitted optimum that `mix.py --fit` prints.
#   python data/prepare.py --hf=slimpajama --max_bytes=0
#   torchrun --standalone --nproc_per_node=8 train.py config/bimix_proxy.py --mixture=natural \
#       --out_dir=out/bimix_natural
#   torchrun ... train.py config/bimix_proxy.py --mixture=ce --out_dir=out/bimix_ce
#   torchrun ... train.py config/bimix_proxy.py --mixture=uniform --out_dir=out/bimix_uniform
#   python mix.py --fit out/bimix_natural out/bimix_ce out/bimix_uniform --steps 200000   # prints `mixture = {...}`
#   torchrun ... train.py config/bimix_proxy.py --mixture="{...the printed dict...}" --out_dir=out/bimix_fitted

dataset = "slimpajama"          # the paper's
out_dir = "out/bimix_proxy"
n_layer = 12                    # the paper's
n_head = 12
n_embd = 768                    # the paper's
block_size = 1024               # the paper's
batch_size = 16
total_batch_tokens = 524_288    # the paper's 512 x 1024
max_iters = 200_000             # the paper's
learning_rate = 6e-4            # nanoGPT's
min_lr = 6e-5                   # nanoGPT's
warmup_iters = 2000             # nanoGPT's
eval_interval = 4000            # ~2.1B tokens between the points the BiMix fit uses
eval_iters = 20
