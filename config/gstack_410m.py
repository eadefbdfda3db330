# Gstack at paper scale, 410M: a 6-layer Llama base trained d tokens, stacked g=4 times to 24 layers, then trained on
# (Du et al. 2024, "Stacking Your Transformers"; facts in docs/papers.md sec. 1). Needs a cluster: at ~40%
# MFU one H100 does ~150K tokens/s on the 24-layer model, so 400B tokens is ~30 days of one GPU.
#
#   torchrun --standalone --nproc_per_node=8 train.py config/gstack_410m.py --out_dir=out/gstack_410m
#   # the scratch baseline: the same run at 24 layers without growth
#   torchrun --standalone --nproc_per_node=8 train.py config/gstack_410m.py --n_layer=24 --grow_at_tokens=0 \
#       --out_dir=out/gstack_410m_scratch
#   python eval.py compare out/gstack_410m_scratch out/gstack_410m --plot out/gstack_410m.png
#
# This is the in-run form: one train.py run trains the 6-layer base until grow_at_tokens, grows it with G_direct
# depthwise (Gstack: layers 0..5 repeated 4 times, embeddings / final norm / head copied once), builds a new AdamW
# and restarts warmup + cosine (grow_schedule="restart", as the official code). tokens and flops in metrics.jsonl
# count the base phase too (C = C_small + C_large, docs/papers.md sec. 1 "Compute accounting").
#
# The official code (github tongxuluo/prts) trains the base as its own run and grows its step-5000 checkpoint
# (~10.5B tokens at 2M tokens per step); its scripts (base_model.sh, g_stack.sh, pretrain/run_pretrain.py) are
# written for the 1.1B pair 6L2048H -> 24L2048H, and the repository has no 410M scripts, only the lit_gpt configs
# 6L1024H / 24L1024H, so for 410M we assume the same recipe at the paper's max LR 6e-4. Either form works here.
# In-run (this file): learning_rate = 1e-3 for the base phase, grow_learning_rate for the grown model. Two-step:
#   torchrun ... train.py config/gstack_410m.py --grow_at_tokens=0 --learning_rate=1e-3 --min_lr=1e-4 \
#       --max_tokens=10_000_000_000 --lr_decay_iters=300000 --out_dir=out/gstack_410m_base
#   torchrun ... train.py config/gstack_410m.py --init_from=grow --grow_from=out/gstack_410m_base --grow_at_tokens=0 \
#       --max_tokens=390_000_000_000 --lr_decay_iters=300000 --out_dir=out/gstack_410m_grown
#   (with init_from=grow, max_tokens counts the large phase only; the logged tokens/flops start at the base's. The
#   grown run trains on the data after the base's batches: grow_data="continue", the default.)
#
# Paper facts followed (docs/papers.md sec. 1 "Setup"): Llama (RMSNorm, SwiGLU, RoPE), SlimPajama, context 2048, ~2M-token
# batches, warmup 3000 steps, cosine to 0.1x max LR, max LR 6e-4 for 410M, 6-layer base, g = 4, d = 10B tokens.
# Shapes from the official lit_gpt config (6L1024H / 24L1024H: 16 heads, no GQA, intermediate 2816). From the
# official scripts: base LR 1e-3 -> 1e-4, weight decay 0.1, betas (0.9, 0.95), clip 1.0, a new AdamW and a
# restarted warmup + cosine after growth.
#
# Where this config differs from the official scripts (read from base_model.sh, g_stack.sh and run_pretrain.py):
# - Schedule length: both official runs decay a cosine over max_step=300000 steps (~629B tokens), so the base is
#   grown near its peak LR and the grown run is still far from min_lr where it is compared (at 400B tokens, 190.7K
#   steps, its LR is ~0.37x the peak). Ours ends the cosine at max_tokens (lr_decay_iters = max_iters).
#   Official: --lr_decay_iters=304769 in the in-run form (the restarted cosine ends at lr_decay_iters, so 4769 +
#   300000), --lr_decay_iters=300000 for each run of the two-step form.
# - Weight decay: the official AdamW decays every parameter (AdamW(model.parameters()), norm weights included);
#   ours decays the 2-D weights only (model.py GPT.configure_optimizers); there is no setting for it.
# - Init: the official base is lit_gpt's GPT(config) without its _init_weights (run_pretrain.py applies TinyLlama's
#   init N(0, sqrt(2 / (5 fan_in))), MLP proj N(0, 1 / (sqrt(fan_in) n_layer)), only to the target models of the
#   other operators), i.e. PyTorch's defaults: Linear U(+-1/sqrt(fan_in)), Embedding N(0, 1), norm weights 1.
#   Ours is GPT-2's: N(0, 0.02), o_proj / down_proj N(0, 0.02 / sqrt(2L)). Gstack copies every weight, so only
#   the base's init matters.
# - Warmup: official lr * it / warmup from 0; ours peak * (it + 1) / (warmup + 1). Negligible.
# - Data: official PackedDataset reads SlimPajama (Llama tokenizer, vocab 32000) in shuffled chunks, each sequence
#   once; ours draws random windows per step (data/loader.py) with GPT-2 BPE (vocab 50304), so parameter counts
#   differ a little. The official grown run skips --resume_id=5000 loader items of its own micro-batch (8
#   sequences per GPU where the base read 32), i.e. only the first 1250 base steps' data (~2.6B tokens): the other
#   ~7.9B tokens the base trained on come again. Ours never repeats the base's batches (in-run: the step count
#   goes on; two-step: grow_data="continue"); grow_data="replay" replays all of them.
# - Engineering without numerical effect: official Lightning FSDP on 32 GPUs, bf16-mixed, fused kernels (flash
#   attention, rotary, RMSNorm, cross-entropy); ours DDP (or fsdp=True), bf16 autocast, PyTorch SDPA.
# - Compute: tokens/flops in metrics.jsonl are exact FLOPs (LM head and attention included); the paper counts a
#   base token as 1/g of a large one (grow.paper_tokens; both side by side: grow.speedups_at_loss).
#
# Growth timing d: the guideline (Eq. 2) log10(d) = 0.88 log10(N) + 163.27 / log10(C) - 5.74 with N = 4.1e8 and
# C = 6 N D = 6 * 4.1e8 * 400e9 = 9.84e20 gives d = 4.14B tokens (grow.growth_timing(4.1e8, 9.84e20)); at D = 700B,
# 3.37B. The paper's experiments used d = 10B, which is what we set.
# Data: python data/prepare.py --hf=slimpajama --max_bytes=0   (needs `datasets` and a network)

dataset = "slimpajama"
out_dir = "out/gstack_410m"
# model: the 6-layer base; growth makes it 24 layers
arch = "llama"
n_layer = 6
n_head = 16
n_embd = 1024
intermediate_size = 2816
block_size = 2048
dropout = 0.0
bias = False
# batch: 2048 x 1024 = 2,097,152 tokens per step (~2M); micro-batch 8 per GPU, accumulation set from the total
batch_size = 8
total_batch_tokens = 2_097_152
# budget: the paper's 410M comparison is at 400B tokens (53.1% speedup; 31.0% at 700B)
max_tokens = 400_000_000_000
# optimizer and schedule
learning_rate = 1e-3            # the 6-layer base (official base runs: 1e-3)
grow_learning_rate = 6e-4       # the grown model's max LR (docs/papers.md sec. 1)
min_lr = 6e-5                   # 0.1x max LR
warmup_iters = 3000
decay_lr = True
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
# growth (Gstack): after d = 10B tokens (ceil(10e9 / 2^21) = 4769 steps), 6 -> 24 layers
grow_at_tokens = 10_000_000_000
grow_dim = "depth"
grow_op = "direct"
grow_factor = 4
grow_noise = 0.0                # the paper's appendix finds a = 0.2 slightly better; the main runs use none
grow_schedule = "restart"
# evaluation and checkpoints: every 1000 steps (~2.1B tokens)
eval_interval = 1000
eval_iters = 10
log_interval = 10
keep_checkpoints = 3
