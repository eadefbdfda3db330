"""
Hugging Face checkpoints, local folders only: config.json + model.safetensors / pytorch_model.bin (sharded or not).

  from_hf(path) -> GPT                       a GPT-2 or Llama folder as one of our models, logits equal
  to_hf(model, path, tokenizer=None)         a GPT as a folder transformers' AutoModelForCausalLM loads, with the
                                             tokenizer's files (AutoTokenizer) when one is given

GPT-2 stores its projections as Conv1D, i.e. transposed, with q, k, v fused in c_attn; Llama's keys are ours renamed.
The tokenizer files are GPT-2's byte-level BPE format, rebuilt offline from the BPE ranks (no download).
"""

import functools
import hashlib
import json
import os
import re
from dataclasses import asdict, replace

import torch

from model import GPT, GPTConfig

HF_EOT = "<|endoftext|>"


def _weights(path):
    """{key: a function that reads that tensor} over every weight file of a folder (sharded or not): safetensors
    files are read one tensor at a time, .bin files memory-mapped, so reading part of a model costs that part."""
    def tensors(file):
        full = os.path.join(path, file)
        if file.endswith(".safetensors"):
            try:
                from safetensors import safe_open
            except ImportError:
                raise ImportError(f"{full} is a safetensors file: pip install safetensors") from None
            f = safe_open(full, framework="pt")
            return {k: functools.partial(f.get_tensor, k) for k in f.keys()}
        try:
            sd = torch.load(full, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a file in torch's old (not zip) format cannot be memory-mapped
            sd = torch.load(full, map_location="cpu", weights_only=True)
        return {k: (lambda v=v: v) for k, v in sd.items()}

    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if os.path.isfile(os.path.join(path, index)):
            with open(os.path.join(path, index)) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
            return {k: v for file in files for k, v in tensors(file).items()}
        if os.path.isfile(os.path.join(path, single)):
            return tensors(single)
    raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin (sharded or not) found")


GELUS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}  # transformers' ACT2FN names
LLAMA_RENAMES = [("model.embed_tokens.", "wte."), ("model.norm.", "ln_f."), ("model.layers.", "blocks."),
                 (".self_attn.", ".attn."), (".input_layernorm.", ".ln_1."), (".post_attention_layernorm.", ".ln_2.")]


def is_hf_folder(path):
    """Whether path is a Hugging Face model folder (its config.json names a model_type; a run's does not)."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            return "model_type" in json.load(f)
    except (OSError, ValueError):
        return False


def from_hf(path, n_layer=None):
    """A local Hugging Face GPT-2 or Llama checkpoint folder as a GPT. n_layer: only its first n blocks, with the
    embeddings, final norm and head (Inheritune's small model from a public reference). The weights are read
    block by block into the model, so memory holds the model built and one block more, never the reference."""
    cfg_file = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_file):
        raise FileNotFoundError(f"{cfg_file} not found: init_from must be a local Hugging Face model directory")
    with open(cfg_file) as f:
        hf = json.load(f)
    config = _config_from_hf(hf, cfg_file)
    if n_layer is not None:
        if not 1 <= n_layer <= config.n_layer:
            raise ValueError(f"{path}: cannot keep the first {n_layer} of its {config.n_layer} blocks")
        config = replace(config, n_layer=n_layer)
    weights = _weights(path)
    model = GPT(config)
    state, loaded, by_block = model.state_dict(), set(), {}
    for k, get in weights.items():  # the weight names of each block (None: embeddings, final norm, head), once
        by_block.setdefault(_block_of(k), {})[k] = get
    for i in [None] + list(range(config.n_layer)):  # the embeddings, final norm and head, then each block
        part = {k: get() for k, get in by_block.get(i, {}).items() if "rotary_emb" not in k}
        if config.arch == "gpt2":
            ours = _gpt2_from_hf_state(part, config, i)
            if i is None and not config.tie_embeddings:  # an untied GPT-2 saves its head as lm_head.weight
                if "lm_head.weight" not in part:
                    raise ValueError(f"{cfg_file}: tie_word_embeddings is false but {path} has no lm_head.weight")
                ours["lm_head.weight"] = part["lm_head.weight"]
        else:
            ours = {_rename(k, LLAMA_RENAMES): v for k, v in part.items()}
            if config.tie_embeddings:
                ours.pop("lm_head.weight", None)
        unexpected = [k for k in ours if k not in state]
        if unexpected:
            raise ValueError(f"{path}: weights do not match the config: unexpected {unexpected[:5]}")
        with torch.no_grad():
            for k, v in ours.items():
                state[k].copy_(v)
        loaded.update(ours)
    missing = [k for k in state if k not in loaded and not (config.tie_embeddings and k == "lm_head.weight")]
    if missing:
        raise ValueError(f"{path}: weights do not match the config: missing {missing[:5]}")
    return model


def reference_info(path):
    """What train.py reads of a Hugging Face reference before its weights, as a checkpoint holds it: model_args and
    the tokenizer its ids mean (data.loader.tokenizer_record's form): GPT-2's own, or the folder's tokenizer.json."""
    with open(os.path.join(path, "config.json")) as f:
        hf = json.load(f)
    config = _config_from_hf(hf, os.path.join(path, "config.json"))
    tok = os.path.join(path, "tokenizer.json")
    if config.arch == "gpt2" and config.vocab_size == 50257:
        record = {"kind": "gpt2", "vocab_size": 50257}  # tiktoken's GPT-2 BPE gives the same ids
    elif os.path.isfile(tok):
        with open(tok, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        record = {"kind": "hf:" + os.path.abspath(path), "fingerprint": "sha256:" + digest}
    else:
        record = None  # nothing to check the data against
    return {"model_args": asdict(config), "tokenizer": record}


def _block_of(key):
    """The block index of a Hugging Face weight name (GPT-2 'transformer.h.3.', Llama 'model.layers.3.'), or None
    for the embeddings, final norm and head."""
    m = re.search(r"(?:^|\.)(?:h|layers)\.(\d+)\.", key)
    return int(m.group(1)) if m else None


def _config_from_hf(hf, cfg_file):
    kind = hf.get("model_type")
    if kind == "gpt2":
        act, scaled = hf.get("activation_function", "gelu_new"), hf.get("scale_attn_weights", True)
        if act not in GELUS or not scaled:
            raise ValueError(f"{cfg_file}: this GPT-2 variant is not supported (activation_function={act!r}, "
                             f"scale_attn_weights={scaled}); nanogrow's gpt2 is a GELU ({', '.join(GELUS)}) with "
                             f"attention logits scaled by 1/sqrt(head_dim)")
        return GPTConfig(arch="gpt2", block_size=hf["n_positions"], vocab_size=hf["vocab_size"],
                         n_layer=hf["n_layer"], n_head=hf["n_head"], n_embd=hf["n_embd"],
                         intermediate_size=hf.get("n_inner") or 4 * hf["n_embd"], bias=True,
                         tie_embeddings=hf.get("tie_word_embeddings", True), norm_eps=hf.get("layer_norm_epsilon", 1e-5),
                         scale_attn_by_inverse_layer_idx=hf.get("scale_attn_by_inverse_layer_idx", False),
                         gelu_approximate=GELUS[act])
    if kind != "llama":
        raise ValueError(f"{cfg_file}: model_type={kind!r} is not supported (only 'gpt2' and 'llama')")
    rope = {**(hf.get("rope_parameters") or {}), **(hf.get("rope_scaling") or {})}  # transformers 4.x / 5.x
    kind, act = rope.get("rope_type", rope.get("type", "default")), hf.get("hidden_act", "silu")
    if kind not in ROPE_KEYS or act != "silu":
        # "dynamic" changes the frequencies with each input's length, which one cached table cannot; "yarn" and
        # "longrope" are left out: nanogrow's llama knows plain, linear and Llama 3 RoPE
        raise ValueError(f"{cfg_file}: this Llama variant is not supported (rope type {kind!r}, hidden_act {act!r}); "
                         f"nanogrow's llama has SiLU and RoPE of type {', '.join(map(repr, ROPE_KEYS))}")
    heads, attn = hf["num_attention_heads"], bool(hf.get("attention_bias", False))
    head_dim, mlp = hf.get("head_dim") or hf["hidden_size"] // heads, bool(hf.get("mlp_bias", False))
    scaling = {"rope_type": kind, **{k: rope[k] for k in ROPE_KEYS[kind]}} if ROPE_KEYS[kind] else None
    return GPTConfig(arch="llama", block_size=hf["max_position_embeddings"], vocab_size=hf["vocab_size"],
                     n_layer=hf["num_hidden_layers"], n_head=heads, n_kv_head=hf.get("num_key_value_heads") or heads,
                     n_embd=hf["hidden_size"], intermediate_size=hf["intermediate_size"], bias=attn,
                     mlp_bias=None if mlp == attn else mlp, rope_scaling=scaling,
                     head_size=None if head_dim * heads == hf["hidden_size"] else head_dim,
                     tie_embeddings=hf.get("tie_word_embeddings", False), norm_eps=hf.get("rms_norm_eps", 1e-6),
                     rope_theta=hf.get("rope_theta") or rope.get("rope_theta", 10000.0))


# the rope types GPTConfig.rope_scaling knows, with the keys each one reads
ROPE_KEYS = {"default": (), "linear": ("factor",),
             "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}


def _rename(k, renames, reverse=False):
    for a, b in renames:
        k = k.replace(b, a) if reverse else k.replace(a, b)
    return k


def _gpt2_from_hf_state(sd, config, block=None):
    """Our names and layouts for GPT-2's embeddings and final norm (block None) or for one of its blocks."""
    sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
    if block is None:
        return {k: sd[k] for k in ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias")}
    C, p, q, out = config.n_embd, f"h.{block}.", f"blocks.{block}.", {}
    for n in ("ln_1", "ln_2"):
        out[q + n + ".weight"], out[q + n + ".bias"] = sd[p + n + ".weight"], sd[p + n + ".bias"]
    w, b = sd[p + "attn.c_attn.weight"].t(), sd[p + "attn.c_attn.bias"]  # Conv1D (C, 3C) -> Linear (3C, C)
    for j, n in enumerate(("q_proj", "k_proj", "v_proj")):
        out[q + f"attn.{n}.weight"], out[q + f"attn.{n}.bias"] = w[j * C:(j + 1) * C], b[j * C:(j + 1) * C]
    for src, dst in (("attn.c_proj", "attn.o_proj"), ("mlp.c_fc", "mlp.up_proj"), ("mlp.c_proj", "mlp.down_proj")):
        out[q + dst + ".weight"], out[q + dst + ".bias"] = sd[p + src + ".weight"].t(), sd[p + src + ".bias"]
    return out


def to_hf(model, path, tokenizer=None):
    """Write a GPT as a Hugging Face folder (config.json + model.safetensors, or pytorch_model.bin without
    safetensors) with the official key names. tokenizer (data.prepare.get_tokenizer's): its files go in too, and
    its end-of-text id is the config's bos and eos id; without one, bos/eos are null."""
    c = model.config
    if tokenizer is not None and tokenizer.n_vocab > c.vocab_size:
        raise ValueError(f"to_hf: the tokenizer has {tokenizer.n_vocab} ids but the model's vocab_size is "
                         f"{c.vocab_size}: the model was trained with another tokenizer")
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with torch.device("meta"):
        extra = sorted(set(sd) - set(GPT(c).state_dict()))
    if extra:  # e.g. a G_random growth still blending in its new weights (grow.py)
        raise ValueError(f"to_hf: the model holds state that a plain GPT has not ({', '.join(extra[:3])}): finish "
                         f"the growth that is still blending in new weights first")
    if c.arch == "llama" and c.scale_attn_by_inverse_layer_idx:
        raise ValueError("to_hf: this Llama model has scale_attn_by_inverse_layer_idx, which Hugging Face Llama "
                         "cannot express")
    os.makedirs(path, exist_ok=True)
    if c.arch == "gpt2":
        hf_cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": c.vocab_size,
                  "n_positions": c.block_size, "n_ctx": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer,
                  "n_head": c.n_head, "n_inner": c.intermediate_size,
                  "activation_function": {"tanh": "gelu_new", "none": "gelu"}[c.gelu_approximate],
                  "layer_norm_epsilon": c.norm_eps, "scale_attn_by_inverse_layer_idx": c.scale_attn_by_inverse_layer_idx,
                  "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "tie_word_embeddings": c.tie_embeddings}
        out = _gpt2_to_hf_state(sd, c)
        if not c.tie_embeddings:  # transformers' GPT2LMHeadModel with tie_word_embeddings=False reads it back
            out["lm_head.weight"] = sd["lm_head.weight"]
    else:
        hf_cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": c.vocab_size,
                  "hidden_size": c.n_embd, "intermediate_size": c.intermediate_size, "num_hidden_layers": c.n_layer,
                  "num_attention_heads": c.n_head, "num_key_value_heads": c.n_kv_head, "hidden_act": "silu",
                  "max_position_embeddings": c.block_size, "rms_norm_eps": c.norm_eps, "rope_theta": c.rope_theta,
                  "tie_word_embeddings": c.tie_embeddings, "attention_bias": c.bias, "head_dim": c.head_dim,
                  "mlp_bias": c.bias if c.mlp_bias is None else c.mlp_bias, "rope_scaling": c.rope_scaling}
        out = {_rename(k, LLAMA_RENAMES, reverse=True): v for k, v in sd.items()}
        if c.tie_embeddings:
            out.pop("lm_head.weight", None)
    hf_cfg["bos_token_id"] = hf_cfg["eos_token_id"] = None if tokenizer is None else int(tokenizer.eot)
    hf_cfg["torch_dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=2)
    if tokenizer is not None:
        save_tokenizer(tokenizer, path, model_max_length=c.block_size)
    out = {k: v.contiguous().clone() for k, v in out.items()}
    try:
        from safetensors.torch import save_file
        save_file(out, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    except ImportError:
        torch.save(out, os.path.join(path, "pytorch_model.bin"))


def _gpt2_to_hf_state(sd, c):
    C = c.n_embd

    def bias(key, n):  # our bias-free GPT-2 writes zero biases: HF GPT-2 always has them
        return sd.get(key, torch.zeros(n))
    out = {"transformer.wte.weight": sd["wte.weight"], "transformer.wpe.weight": sd["wpe.weight"],
           "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": bias("ln_f.bias", C)}
    for i in range(c.n_layer):
        p, q = f"transformer.h.{i}.", f"blocks.{i}."
        for n in ("ln_1", "ln_2"):
            out[p + n + ".weight"], out[p + n + ".bias"] = sd[q + n + ".weight"], bias(q + n + ".bias", C)
        qkv = ("q_proj", "k_proj", "v_proj")
        out[p + "attn.c_attn.weight"] = torch.cat([sd[q + f"attn.{n}.weight"] for n in qkv]).t()
        out[p + "attn.c_attn.bias"] = torch.cat([bias(q + f"attn.{n}.bias", C) for n in qkv])
        for src, dst, n in (("attn.c_proj", "attn.o_proj", C), ("mlp.c_fc", "mlp.up_proj", c.intermediate_size),
                            ("mlp.c_proj", "mlp.down_proj", C)):
            out[p + src + ".weight"] = sd[q + dst + ".weight"].t()
            out[p + src + ".bias"] = bias(q + dst + ".bias", n)
    return out


# -------------------------------------------------------------------------------------------------------------
# Tokenizer files in GPT-2's byte-level BPE format: vocab.json maps each token (its bytes written with
# bytes_to_unicode's printable characters) to its id, merges.txt lists the merges in the order they apply;
# tokenizer.json (the fast tokenizer) is written too when the `tokenizers` package is installed.

def bytes_to_unicode():
    """GPT-2's map of the 256 byte values to printable characters, {byte: character}: printable Latin-1 bytes
    stand for themselves, the other 68 (control characters, space, ...) for chr(256), chr(257), ... in byte order."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(others)}}


def bpe_merges(ranks):
    """The merges of a byte-level BPE, in the order they apply, from its ranks {token bytes: id} (tiktoken's
    format, where a merge's rank is its result's): each token of two or more bytes is the merge of the two parts
    that BPE with the lower-ranked tokens leaves of it. [(left bytes, right bytes)]"""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = [token[i:i + 1] for i in range(len(token))]
        while len(parts) > 2:
            r, i = min((ranks.get(a + b, rank), i) for i, (a, b) in enumerate(zip(parts, parts[1:])))
            if r >= rank:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) != 2:
            raise ValueError(f"BPE ranks: token {token!r} (rank {rank}) is no merge of two lower-ranked tokens")
        merges.append(tuple(parts))
    return merges


def save_tokenizer(tok, path, model_max_length=None):
    """A data.prepare tokenizer as Hugging Face files. GPT-2 BPE: vocab and merges rebuilt from the ranks (it gives
    tiktoken's ids). Bytes: a byte-level BPE without merges, byte b (1..255) = id b, id 0 = <|endoftext|>."""
    enc = bytes_to_unicode()
    if tok.name == "byte":
        vocab, merges = {HF_EOT: 0, **{enc[b]: b for b in range(1, 256)}}, []
    else:
        ranks = {b: tok.enc.encode_single_token(b) for b in tok.enc.token_byte_values()}
        vocab = {"".join(enc[b] for b in token): rank for token, rank in ranks.items()}
        vocab[HF_EOT] = tok.eot
        merges = [tuple("".join(enc[b] for b in part) for part in pair) for pair in bpe_merges(ranks)]
    os.makedirs(path, exist_ok=True)
    vocab = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    with open(os.path.join(path, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(path, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special = {"bos_token": HF_EOT, "eos_token": HF_EOT, "unk_token": HF_EOT}
    added = {"content": HF_EOT, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
             "special": True}
    config = {"tokenizer_class": "GPT2Tokenizer", **special, "add_bos_token": False, "add_prefix_space": False,
              "clean_up_tokenization_spaces": False, "added_tokens_decoder": {str(tok.eot): added}}
    if model_max_length:
        config["model_max_length"] = int(model_max_length)
    for name, obj in (("tokenizer_config.json", config), ("special_tokens_map.json", special)):
        with open(os.path.join(path, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
    try:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    except ImportError:
        return  # transformers builds the fast tokenizer from vocab.json and merges.txt
    tk = Tokenizer(models.BPE(vocab=vocab, merges=list(merges)))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's pre-tokenizer regex
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(HF_EOT, special=True, normalized=False)])
    tk.save(os.path.join(path, "tokenizer.json"))

