# Gstack at paper scale, 1.1B: a 6-layer Llama base (6L2048H) trained d tokens, stacked g=4 times to 24 layers
# (24L2048H), then trained on (Du et al. 2024; facts in docs/papers.md sec. 1). Also the setting of the
# paper's operator comparison (depthwise / widthwise G_direct, G_learn, G_zero, G_random at "400M -> 1.1B").
# Needs a cluster: at ~40% MFU one H100 does ~44K tokens/s on the 24-layer model (100B tokens: ~26 GPU-days x 1).
#
#   torchrun --standalone --nproc_per_node=8 train.py config/gstack_1b.py --out_dir=out/gstack_1b
#   # scratch baseline (24 layers, no growth), and an operator of the comparison, e.g. depthwise G_zero:
#   torchrun ... train.py config/gstack_1b.py --n_layer=24 --grow_at_tokens=0 --out_dir=out/gstack_1b_scratch
#   torchrun ... train.py config/gstack_1b.py --grow_op=zero --out_dir=out/gstack_1b_zero
#   python eval.py compare out/gstack_1b_scratch out/gstack_1b out/gstack_1b_zero --plot out/gstack_1b.png
#   # or all arms with the experiment script's logic at this scale: see experiments/gstack.py (its --scale takes
#   # tiny|mini; copy its arm definitions with this config for a cluster run)
#
# In-run form: train.py trains the base until grow_at_tokens, stacks it (layers 0..5 four times; embeddings, final
# norm and head copied once), builds a new AdamW and restarts warmup + cosine (grow_schedule="restart"); tokens and
# flops in metrics.jsonl include the base phase (C = C_small + C_large). The official code (github tongxuluo/prts,
# base_model.sh then g_stack.sh) instead grows the step-5000 checkpoint (~10.5B tokens) of a separate base run at
# max LR 1e-3 -> 1e-4; the two-step form that reproduces it:
#   torchrun ... train.py config/gstack_1b.py --grow_at_tokens=0 --learning_rate=1e-3 --min_lr=1e-4 \
#       --max_tokens=10_000_000_000 --lr_decay_iters=300000 --out_dir=out/gstack_1b_base
#   torchrun ... train.py config/gstack_1b.py --init_from=grow --grow_from=out/gstack_1b_base --grow_at_tokens=0 \
#       --max_tokens=90_000_000_000 --lr_decay_iters=300000 --out_dir=out/gstack_1b_grown   # the large phase only
#   (the grown run trains on the data after the base's batches: grow_data="continue", the default)
#
# Paper facts followed (docs/papers.md sec. 1 "Setup"): Llama, SlimPajama, context 2048, ~2M-token batches, warmup 3000,
# cosine to 0.1x max LR, max LR 3e-4 (1.1B), 6-layer base, target 24 layers, g = 4, d = 10B tokens; the operator
# comparison ran to ~97.5B tokens (we budget 100B). Shapes from the official lit_gpt config 24L2048H (32 heads, no
# GQA, intermediate 5632); micro-batch 8 as in g_stack.sh (lower it if memory is short: total_batch_tokens keeps the
# global batch). From the official scripts: base LR 1e-3 -> 1e-4, grown 3e-4 -> 3e-5, wd 0.1, betas (0.9, 0.95),
# clip 1.0, global batch 1024 x 2048 tokens, a new AdamW and a restarted warmup + cosine after growth.
#
# Where this config differs from the official scripts (read from base_model.sh, g_stack.sh and run_pretrain.py):
# - Schedule length: both official runs decay a cosine over max_step=300000 steps (~629B tokens), so the base is
#   grown near its peak LR and the grown run is still near its peak where it is compared (at 100B tokens, 47.7K
#   steps, its LR is ~0.95x the peak). Ours ends the cosine at max_tokens (lr_decay_iters = max_iters).
#   Official: --lr_decay_iters=304769 in the in-run form (the restarted cosine ends at lr_decay_iters, so 4769 +
#   300000), --lr_decay_iters=300000 for each run of the two-step form.
# - Weight decay: the official AdamW decays every parameter (AdamW(model.parameters()), norm weights included);
#   ours decays the 2-D weights only (model.py GPT.configure_optimizers); there is no setting for it.
# - Init: the official base is lit_gpt's GPT(config) without its _init_weights, i.e. PyTorch's defaults (Linear
#   U(+-1/sqrt(fan_in)), Embedding N(0, 1), norm weights 1); run_pretrain.py applies TinyLlama's init (N(0,
#   sqrt(2 / (5 fan_in))), MLP proj N(0, 1 / (sqrt(fan_in) n_layer))) only to the target models of zero / msg /
#   ligo, where it is the init of the new weights. Ours is GPT-2's everywhere: N(0, 0.02), o_proj / down_proj
#   N(0, 0.02 / sqrt(2L)).
# - Warmup: official lr * it / warmup from 0; ours peak * (it + 1) / (warmup + 1). Negligible.
# - Data: official PackedDataset reads SlimPajama (Llama tokenizer, vocab 32000) in shuffled chunks, each sequence
#   once; ours draws random windows per step (data/loader.py) with GPT-2 BPE (vocab 50304). The official grown run
#   skips --resume_id=5000 loader items of its own micro-batch (8 sequences per GPU where the base read 32), i.e.
#   only the first 1250 base steps' data (~2.6B tokens): the other ~7.9B tokens the base trained on come again.
#   Ours never repeats the base's batches (in-run: the step count goes on; two-step: grow_data="continue");
#   grow_data="replay" replays all of them.
# - Operators of the comparison: grow.py builds each as the official code does, with the differences listed in
#   its docstring (G_zero widthwise keeps the function exactly by rescaling the RMSNorms, rescale_norms=False is
#   prts' zero.py; G_random's MSG phases are thirds of grow_ramp_steps, see grow_ramp_steps below).
# - Engineering without numerical effect: official Lightning FSDP on 32 GPUs, bf16-mixed, fused kernels (flash
#   attention, rotary, RMSNorm, cross-entropy); ours DDP (or fsdp=True), bf16 autocast, PyTorch SDPA.
# - Compute: tokens/flops in metrics.jsonl are exact FLOPs (LM head and attention included); the paper counts a
#   base token as 1/g of a large one (grow.paper_tokens; both side by side: grow.speedups_at_loss).
#
# Growth timing d: Eq. 2, log10(d) = 0.88 log10(N) + 163.27 / log10(C) - 5.74, with N = 1.1e9 and
# C = 6 N D = 6 * 1.1e9 * 100e9 = 6.6e20 gives d = 11.44B tokens (grow.growth_timing(1.1e9, 6.6e20)); the paper's
# runs used d = 10B, which is what we set (4769 steps of 2^21 tokens).
# Data: python data/prepare.py --hf=slimpajama --max_bytes=0   (needs `datasets` and a network)

dataset = "slimpajama"
out_dir = "out/gstack_1b"
arch = "llama"
n_layer = 6                     # the base; growth makes it 24
n_head = 32
n_embd = 2048
intermediate_size = 5632
block_size = 2048
dropout = 0.0
bias = False
batch_size = 8
total_batch_tokens = 2_097_152  # 1024 sequences x 2048 = ~2M tokens per step (g_stack.sh: global_batch_size=1024)
max_tokens = 100_000_000_000
learning_rate = 1e-3            # the 6-layer base (official base runs: 1e-3)
grow_learning_rate = 3e-4       # the grown model's max LR (docs/papers.md sec. 1)
min_lr = 3e-5                   # 0.1x max LR
warmup_iters = 3000
decay_lr = True
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
grow_at_tokens = 10_000_000_000
grow_dim = "depth"
grow_op = "direct"
grow_factor = 4
grow_noise = 0.0
grow_schedule = "restart"
grow_ramp_steps = 5000          # G_random: msg.py's grow_step (docs/papers.md sec. 1 table). Depthwise that is the
                                # whole blend; widthwise grow.py's three MSG phases share the ramp, so the official
                                # width schedule (5000 steps per phase) is --grow_ramp_steps=15000
eval_interval = 1000
eval_iters = 10
log_interval = 10
keep_checkpoints = 3
