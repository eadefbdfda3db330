"""Tests for inherit.py: Inheritune (Sanyal et al. 2024) inheritance, its search loop and the attention-collapse
(lazy layer) diagnostic. CPU, fast; the end-to-end search runs train.py twice on a tiny byte-level dataset."""

from dataclasses import asdict
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import grow
import inherit
from model import GPT, GPTConfig
from runs import find_checkpoint, save_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# -------------------------------------------------------------------------------------------------------------
# helpers


def tiny_config(arch, n_layer=4, **kw):
    base = dict(arch=arch, block_size=16, vocab_size=64, n_layer=n_layer, n_head=4, n_embd=32)
    if arch == "gpt2":
        base.update(bias=True)  # biases too must travel with their part
    else:
        base.update(n_kv_head=2)  # grouped-query attention
    base.update(kw)
    return GPTConfig(**base)


def trained_like(config, seed=0):
    """A reference whose every tensor differs from any fresh init (norm weights too, which init at 1)."""
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


# which part each state-dict key belongs to, written out here independently of inherit.py's tables
def part_of(key):
    if key.startswith("blocks."):
        rest = key.split(".", 2)[2]
        if rest == "ramp":
            return "ramp"
        return {"attn": "attn", "ln_1": "attn_norm", "mlp": "mlp", "ln_2": "mlp_norm"}[rest.split(".")[0]]
    return key.split(".")[0]


ALL_BLOCK = {"attn", "attn_norm", "mlp", "mlp_norm"}
# parts spec -> (block parts, model parts) expected to be copied
PART_CASES = [
    (None, ALL_BLOCK, {"wte", "lm_head"}),
    ("full", ALL_BLOCK, {"wte", "lm_head"}),
    ("attn+norm", {"attn", "attn_norm"}, {"wte", "lm_head"}),
    ("mlp+norm", {"mlp", "mlp_norm"}, {"wte", "lm_head"}),
    ("attn+mlp", {"attn", "mlp"}, {"wte", "lm_head"}),
    ("all", ALL_BLOCK, {"wte", "lm_head", "wpe", "ln_f"}),
    ("lm_head", ALL_BLOCK, {"lm_head"}),                           # the official OpenLLaMA recipe
    (["attn", "ln_f"], {"attn"}, {"ln_f"}),
    ("full,wte,lm_head,ln_f", ALL_BLOCK, {"wte", "lm_head", "ln_f"}),
]


# -------------------------------------------------------------------------------------------------------------
# inherit(): what is copied, what stays fresh


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_first_n_blocks_equal_reference(arch):
    ref = trained_like(tiny_config(arch))
    new = inherit.inherit(ref, 2)
    assert new is not ref and new.config.n_layer == 2 and len(new.blocks) == 2
    assert asdict(new.config) == dict(asdict(ref.config), n_layer=2)
    for i in range(2):
        ref_params = dict(ref.blocks[i].named_parameters())
        for name, p in new.blocks[i].named_parameters():
            assert torch.equal(p, ref_params[name]), f"block {i} {name}"
    assert torch.equal(new.wte.weight, ref.wte.weight) and torch.equal(new.lm_head.weight, ref.lm_head.weight)
    if ref.config.tie_embeddings:
        assert new.lm_head.weight is new.wte.weight  # still tied, one tensor


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_explicit_layers_equal_chosen_blocks(arch):
    ref = trained_like(tiny_config(arch))
    new = inherit.inherit(ref, layers=[1, 3])
    assert new.config.n_layer == 2
    for i, src in enumerate([1, 3]):
        ref_state = ref.blocks[src].state_dict()
        for name, t in new.blocks[i].state_dict().items():
            assert torch.equal(t, ref_state[name]), f"block {i} <- {src}: {name}"
    new = inherit.inherit(ref, 3, layers=[2, 0, 1])  # order is honoured
    assert torch.equal(new.blocks[0].attn.q_proj.weight, ref.blocks[2].attn.q_proj.weight)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("spec,block_parts,model_parts", PART_CASES)
def test_each_part_option_copies_exactly_what_it_names(arch, spec, block_parts, model_parts):
    ref = trained_like(tiny_config(arch), seed=1)
    ref_state = {k: v.clone() for k, v in ref.state_dict().items()}
    layers = [1, 2]
    torch.manual_seed(123)
    fresh = GPT(tiny_config(arch, n_layer=2))  # what inherit() builds before copying, from the same RNG state
    torch.manual_seed(123)
    new = inherit.inherit(ref, layers=layers, parts=spec)
    tied = ref.config.tie_embeddings
    model_parts = set(model_parts)
    if tied and model_parts & {"wte", "lm_head"}:
        model_parts |= {"wte", "lm_head"}  # tied gpt2: one tensor
    fresh_state = fresh.state_dict()
    for key, t in new.state_dict().items():
        part = part_of(key)
        if key.startswith("blocks."):
            _, i, rest = key.split(".", 2)
            src = f"blocks.{layers[int(i)]}.{rest}"
            copied = part == "ramp" or part in block_parts
        else:
            src, copied = key, part in model_parts
        if copied:
            assert torch.equal(t, ref_state[src]), f"{spec}: {key} should be the reference's {src}"
        else:
            assert torch.equal(t, fresh_state[key]), f"{spec}: {key} should be at its fresh init"
            if part != "ramp" and not (arch == "llama" and part == "wpe"):
                assert not torch.equal(t, ref_state[src]), key
    # the reference is untouched
    for k, v in ref.state_dict().items():
        assert torch.equal(v, ref_state[k]), k


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_fresh_parts_get_gpt_init_by_default(arch):
    """fresh_init="model" (default, the official GPT-2 code's): what is not copied is GPT(config)'s init, e.g. the
    final norm at 1 and, on gpt2, the position embeddings normal(0, 0.02)."""
    ref = trained_like(tiny_config(arch, block_size=256, n_embd=64))
    new = inherit.inherit(ref, 2)
    assert torch.equal(new.ln_f.weight, torch.ones_like(new.ln_f.weight))
    if arch == "gpt2":  # 256 x 64 draws: the sample std is within 5% of 0.02
        assert abs(new.wpe.weight.std().item() / 0.02 - 1) < 0.05


def test_official_openllama_recipe_fresh_token_embeddings_at_torch_init():
    """The official OpenLLaMA code copies the blocks and the untied LM head only, and its student model runs no
    init pass: parts="lm_head", fresh_init="torch" gives token embeddings at nn.Embedding's normal(0, 1), not 0.02."""
    cfg = tiny_config("llama", vocab_size=256, n_embd=64)
    ref = trained_like(cfg)
    new = inherit.inherit(ref, 2, parts="lm_head", fresh_init="torch")
    assert torch.equal(new.lm_head.weight, ref.lm_head.weight) and not torch.equal(new.wte.weight, ref.wte.weight)
    for i in range(2):
        for name, t in new.blocks[i].state_dict().items():
            assert torch.equal(t, ref.blocks[i].state_dict()[name]), f"block {i} {name}"
    assert abs(new.wte.weight.std().item() - 1) < 0.05  # 256 x 64 draws of normal(0, 1)
    assert torch.equal(new.ln_f.weight, torch.ones_like(new.ln_f.weight))
    default = inherit.inherit(ref, 2, parts="lm_head")  # same parts, GPT(config)'s init
    assert abs(default.wte.weight.std().item() / 0.02 - 1) < 0.05
    with pytest.raises(ValueError, match=r"fresh_init='nanogpt' is unknown; use 'model'"):
        inherit.inherit(ref, 2, fresh_init="nanogpt")


def test_default_and_presets_resolve_as_documented():
    assert inherit.resolve_parts(None, "gpt2") == (("attn", "attn_norm", "mlp", "mlp_norm"), ("lm_head", "wte"))
    assert inherit.resolve_parts("all", "llama")[1] == ("lm_head", "ln_f", "wte")  # no wpe on llama
    assert inherit.resolve_parts("mlp+norm,wpe", "gpt2") == (("mlp", "mlp_norm"), ("wpe",))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_inherit_all_layers_all_parts_reproduces_logits(arch):
    cfg = tiny_config(arch, scale_attn_by_inverse_layer_idx=arch == "gpt2")
    ref = trained_like(cfg).eval()
    x = torch.randint(0, cfg.vocab_size, (2, cfg.block_size))
    new = inherit.inherit(ref, cfg.n_layer, parts="all").eval()
    with torch.no_grad():
        assert torch.equal(new(x)[0], ref(x)[0])
        if arch == "gpt2":  # the default (official) leaves wpe and ln_f fresh: not the reference's function
            assert not torch.allclose(inherit.inherit(ref, cfg.n_layer).eval()(x)[0], ref(x)[0])


def test_moved_layers_keep_their_attention_scale():
    """scale_attn_by_inverse_layer_idx: block 3 moved to position 1 keeps computing what it did (fold in q_proj),
    also after a save/load round trip; keep_attn_scale=False copies q_proj verbatim."""
    cfg = tiny_config("gpt2", scale_attn_by_inverse_layer_idx=True)
    ref = trained_like(cfg).eval()
    x = torch.randn(2, 8, cfg.n_embd)
    new = inherit.inherit(ref, layers=[2, 3]).eval()
    reloaded = GPT(new.config).eval()
    reloaded.load_state_dict(new.state_dict())
    with torch.no_grad():
        for i, src in enumerate([2, 3]):
            want = ref.blocks[src](x)
            torch.testing.assert_close(new.blocks[i](x), want)
            torch.testing.assert_close(reloaded.blocks[i](x), want)
        torch.testing.assert_close(new.blocks[0].attn.q_proj.weight, ref.blocks[2].attn.q_proj.weight / 3)
        raw = inherit.inherit(ref, layers=[2, 3], keep_attn_scale=False).eval()
        assert torch.equal(raw.blocks[0].attn.q_proj.weight, ref.blocks[2].attn.q_proj.weight)
        assert not torch.allclose(raw.blocks[0](x), ref.blocks[2](x))


def test_inherit_from_checkpoint_and_wrapped_model(tmp_path):
    ref = trained_like(tiny_config("llama"))
    path = str(tmp_path / "ckpt_0000010.pt")
    save_checkpoint({"model": ref.state_dict(), "model_args": asdict(ref.config)}, path)
    a = inherit.inherit(path, 2)
    b = inherit.inherit(_Wrapper(ref), 2)
    assert torch.equal(a.blocks[1].mlp.gate_proj.weight, b.blocks[1].mlp.gate_proj.weight)
    assert torch.equal(a.blocks[1].mlp.gate_proj.weight, ref.blocks[1].mlp.gate_proj.weight)


class _Wrapper(torch.nn.Module):  # stands in for DDP's .module wrapping
    def __init__(self, m):
        super().__init__()
        self.module = m


# -------------------------------------------------------------------------------------------------------------
# errors


def test_bad_inputs_get_clear_errors():
    ref = trained_like(tiny_config("gpt2"))
    with pytest.raises(ValueError, match=r"n_layer=5: can inherit between 1 and 4"):
        inherit.inherit(ref, 5)
    with pytest.raises(ValueError, match=r"n_layer=0: can inherit between 1 and 4"):
        inherit.inherit(ref, 0)
    with pytest.raises(ValueError, match=r"unknown part 'attention'.*attn, attn_norm, mlp, mlp_norm.*presets"):
        inherit.inherit(ref, 2, parts="attention")
    with pytest.raises(ValueError, match=r"layers \[4\] out of range.*0\.\.3"):
        inherit.inherit(ref, layers=[0, 4])
    with pytest.raises(ValueError, match=r"repeats blocks \[1\]"):
        inherit.inherit(ref, layers=[1, 1])
    with pytest.raises(ValueError, match=r"n_layer=3 but layers=\[0, 1\]"):
        inherit.inherit(ref, 3, layers=[0, 1])
    with pytest.raises(TypeError, match=r"must be a model.GPT"):
        inherit.inherit(torch.nn.Linear(2, 2), 1)
    with pytest.raises(ValueError, match=r"'wpe'.*only for arch='gpt2'"):
        inherit.inherit(trained_like(tiny_config("llama")), 2, parts="wpe")


def test_stop_rule_with_fake_losses():
    L = 24
    assert inherit.next_n(12, 2.87, 2.81, L) == 14          # worse: two more layers
    assert inherit.next_n(14, 2.84, 2.81, L) == 16
    assert inherit.next_n(16, 2.81, 2.81, L) is None        # matches (<=): stop at 16 (the paper's Medium run)
    assert inherit.next_n(22, 2.90, 2.81, L) is None        # the next n would be L itself: stop, nothing matched
    assert inherit.next_n(12, 2.83, 2.81, L, tolerance=0.05) is None
    assert inherit.next_n(12, float("nan"), 2.81, L) == 14  # a diverged round never matches
    assert inherit.next_n(3, 3.0, 2.0, 7, step=3) == 6 and inherit.next_n(6, 3.0, 2.0, 7, step=3) is None
    # the paper's runs at full precision (last evaluations at T = 100K in the official logs; the paper prints two
    # decimals): the same decisions. Medium, reference 2.8187: 12L 2.8704, 14L 2.8496, 16L 2.8108 matched
    assert [inherit.next_n(n, loss, 2.8187, 24) for n, loss in ((12, 2.8704), (14, 2.8496), (16, 2.8108))] == \
        [14, 16, None]
    assert inherit.next_n(18, 2.809, 2.8531, 36) is None  # Large, reference 2.8531: 18L matched at once


def write_fake_reference(root, n_layer=8, ref_loss=3.0, last_iter=100):
    """A reference run folder: config.json, a checkpoint (only model_args matter) and metrics.jsonl."""
    os.makedirs(root)
    cfg = tiny_config("gpt2", n_layer=n_layer)
    save_checkpoint({"model": GPT(cfg).state_dict(), "model_args": asdict(cfg)}, os.path.join(root, "ckpt_0000100.pt"))
    (root / "config.json").write_text(json.dumps({"max_iters": last_iter}))
    lines = [{"iter": 0, "val_loss": {"a": 5.0}, "val_loss_mean": 5.0},
             {"iter": last_iter, "train_loss": 2.5},
             {"iter": last_iter, "val_loss": {"a": ref_loss}, "val_loss_mean": ref_loss}]
    (root / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines) + '{"iter": 10')  # cut line
    return root


def fake_runner(losses, calls):
    def run(cmd, run_dir):
        n = int(next(a for a in cmd if a.startswith("--inherit_n_layer=")).split("=")[1])
        calls.append((n, cmd))
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
            f.write(json.dumps({"iter": 0, "val_loss_mean": 9.0}) + "\n")
            f.write(json.dumps({"iter": 100, "val_loss": {"a": losses[n]}, "val_loss_mean": losses[n]}) + "\n")
    return run


def test_search_loop_with_fake_runner(tmp_path):
    ref = write_fake_reference(tmp_path / "ref")
    out = tmp_path / "search"
    calls = []
    summary = inherit.search(ref, None, out, runner=fake_runner({4: 3.2, 6: 2.99}, calls), log=lambda *a: None,
                             train_args=["--batch_size=4"])
    assert [n for n, _ in calls] == [4, 6]  # starts at L/2, +2 until it matches
    assert summary["steps"] == 100  # default: the reference's last evaluation iteration
    assert summary["result"]["n_layer"] == 6 and [r["matched"] for r in summary["rounds"]] == [False, True]
    cmd = calls[0][1]
    assert cmd[:3] == [sys.executable, os.path.join(REPO, "train.py"), os.path.join(str(ref), "config.json")]
    for flag in ("--init_from=inherit", f"--inherit_from={ref}", "--inherit_n_layer=4", "--n_layer=4",
                 "--max_iters=100", f"--out_dir={out / 'n4'}", "--batch_size=4"):
        assert flag in cmd
    saved = json.loads((out / "search.json").read_text())
    assert saved["reference"]["val_loss"] == 3.0 and saved["reference"]["n_layer"] == 8
    assert [r["n_layer"] for r in saved["rounds"]] == [4, 6]
    assert saved["rounds"][0]["params"] < saved["rounds"][1]["params"] < saved["reference"]["params"]
    md = (out / "search.md").read_text()
    assert "| 4 |" in md and "| 6 |" in md and "2.9900" in md and "n=6 matches" in md

    # finished rounds are reused with resume=True, refused without it
    inherit.search(ref, None, out, runner=lambda *a: pytest.fail("should reuse"), resume=True, log=lambda *a: None)
    with pytest.raises(FileExistsError, match=r"n4 is not empty.*resume"):
        inherit.search(ref, None, out, runner=fake_runner({4: 3.2, 6: 2.99}, []), log=lambda *a: None)


def test_search_stops_before_reaching_reference_size(tmp_path):
    ref = write_fake_reference(tmp_path / "ref")
    calls = []
    summary = inherit.search(ref, 100, tmp_path / "s", runner=fake_runner({4: 3.5, 6: 3.1}, calls),
                             log=lambda *a: None)
    assert [n for n, _ in calls] == [4, 6]  # 8 = L is never trained
    assert summary["result"]["n_layer"] is None and "keep the reference" in summary["result"]["reason"]
    calls = []
    summary = inherit.search(ref, 100, tmp_path / "t", start=5, step=1, tolerance=0.2,
                             runner=fake_runner({5: 3.3, 6: 3.15}, calls), log=lambda *a: None)
    assert [n for n, _ in calls] == [5, 6] and summary["result"]["n_layer"] == 6
    with pytest.raises(ValueError, match=r"n_layer is set by the search"):
        inherit.search(ref, 100, tmp_path / "u", train_args=["--n_layer=3"], runner=fake_runner({}, []))
    with pytest.raises(ValueError, match=r"start=8: must be between 1 and L-1=7"):
        inherit.search(ref, 100, tmp_path / "u", start=8, runner=fake_runner({}, []), log=lambda *a: None)


def write_byte_dataset(root):
    """A one-domain byte-level dataset (docs/training.md layout) made of this repo's source text."""
    text = b"".join(open(os.path.join(REPO, f), "rb").read() for f in ("model.py", "inherit.py"))
    toks = np.frombuffer(text, dtype=np.uint8).astype(np.uint16)
    cut = int(len(toks) * 0.9)
    os.makedirs(root / "code")
    toks[:cut].tofile(root / "code" / "train.bin")
    toks[cut:].tofile(root / "code" / "val.bin")
    meta = {"tokenizer": "byte", "vocab_size": 256, "dtype": "uint16",
            "domains": {"code": {"train_tokens": cut, "val_tokens": len(toks) - cut,
                                 "train_bytes": cut, "val_bytes": len(toks) - cut}}}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


@pytest.mark.skipif(not os.path.isfile(os.path.join(REPO, "train.py")), reason="train.py not written yet")
def test_search_end_to_end_with_train_py(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models: threads only contend
    ds = write_byte_dataset(tmp_path / "ds")
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, "train.py", f"--dataset={ds}", f"--out_dir={ref}", "--n_layer=4", "--n_head=2",
                    "--n_embd=32", "--block_size=32", "--batch_size=8", "--max_iters=30", "--eval_interval=30",
                    "--eval_iters=2", "--log_interval=10", "--warmup_iters=5", "--device=cpu", "--compile=False"],
                   cwd=REPO, check=True, capture_output=True)
    out = tmp_path / "search"
    inherit.main(["search", "--ref", str(ref), "--steps", "30", "--out_dir", str(out), "--quiet",
                  "--", "--eval_iters=2"])
    summary = json.loads((out / "search.json").read_text())
    rounds = summary["rounds"]
    assert rounds[0]["n_layer"] == 2 and summary["reference"]["n_layer"] == 4
    ref_loss = inherit.final_eval(ref)["val_loss_mean"]
    assert summary["reference"]["val_loss"] == ref_loss
    last = rounds[-1]
    # the stop rule: every round but the last was worse; the last matched, or the next n would be L
    assert all(r["val_loss"] > ref_loss for r in rounds[:-1])
    assert last["val_loss"] <= ref_loss or last["n_layer"] + 2 >= 4
    assert summary["result"]["n_layer"] == (last["n_layer"] if last["val_loss"] <= ref_loss else None)
    for r in rounds:  # every round keeps its checkpoint, metrics and log
        run = out / f"n{r['n_layer']}"
        assert (run / "train.log").is_file() and inherit.final_eval(run)["iter"] == 30
        model = grow.load_model(find_checkpoint(str(run))[0])
        assert model.config.n_layer == r["n_layer"]
    assert "| 2 |" in (out / "search.md").read_text()
    assert "search.json" in capsys.readouterr().out
    # the reference trained further: its rounds are no longer inherited from it, so they are not reused
    subprocess.run([sys.executable, "train.py", f"--out_dir={ref}", "--init_from=resume", "--max_iters=40"],
                   cwd=REPO, check=True, capture_output=True)
    with pytest.raises(SystemExit, match="n2 was inherited from another version of the reference: it started from "
                                         ".*ckpt_0000030.pt \\(iter 30\\), but .* now gives .*ckpt_0000040.pt"):
        inherit.main(["search", "--ref", str(ref), "--steps", "30", "--out_dir", str(out), "--quiet", "--resume",
                      "--", "--eval_iters=2"])


# -------------------------------------------------------------------------------------------------------------
# attention collapse: the rank diagnostic


def test_attention_matrix_rank_on_given_matrices():
    T = 10
    one_column = torch.zeros(T, T)
    one_column[:, 0] = 1.0  # every row one-hot on column 0: a lazy head
    assert inherit.attention_matrix_rank(one_column).item() == 1
    eye = torch.eye(T)  # all singular values 1: k/T of the energy in the top k
    assert inherit.attention_matrix_rank(eye, tau=0.9).item() == 9
    assert inherit.attention_matrix_rank(eye, tau=1.0).item() == T
    batch = torch.stack([one_column, eye]).expand(3, 2, T, T)
    assert inherit.attention_matrix_rank(batch).tolist() == [[1, 9]] * 3
    causal = torch.tril(torch.rand(T, T) + 0.1)
    k = inherit.attention_matrix_rank(causal / causal.sum(-1, keepdim=True))
    assert 1 <= k.item() <= T
    with pytest.raises(ValueError, match="tau=0"):
        inherit.attention_matrix_rank(eye, tau=0)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_recomputed_attention_matches_sdpa(arch):
    """The probabilities layer_attention recomputes, times v, give back the attention module's own output."""
    cfg = tiny_config(arch, scale_attn_by_inverse_layer_idx=arch == "gpt2")
    model = trained_like(cfg).eval()
    x = torch.randint(0, cfg.vocab_size, (2, 12))
    outs = []
    hooks = [b.attn.register_forward_hook(lambda m, a, o: outs.append(o)) for b in model.blocks]
    inputs = inherit.attention_inputs(model, x)
    for h in hooks:
        h.remove()
    for l, (b, (h, rope)) in enumerate(zip(model.blocks, inputs)):
        att = inherit.layer_attention(b.attn, h, rope)                                    # (B, nh, T, T)
        B, T, C = h.shape
        v = b.attn.v_proj(h).view(B, T, b.attn.n_kv_head, b.attn.head_dim).transpose(1, 2)
        v = v.repeat_interleave(b.attn.n_head // b.attn.n_kv_head, dim=1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        torch.testing.assert_close(b.attn.o_proj(y), outs[l], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(att.sum(-1), torch.ones(B, cfg.n_head, T))


def test_attention_rank_flags_a_head_that_attends_to_one_column():
    """Layer 0 built so every query looks at token 0 only (which sits at position 0): MaxRank 1, lazy."""
    cfg = tiny_config("gpt2")
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    C = cfg.n_embd
    u = torch.zeros(C)
    u[0], u[1] = 1 / math.sqrt(2), -1 / math.sqrt(2)  # zero-mean direction: LayerNorm keeps its component
    with torch.no_grad():
        model.wte.weight -= torch.outer(model.wte.weight @ u, u)  # no token has a u component...
        model.wte.weight[0] += 3.0 * u                             # ...but token 0
        model.wpe.weight.zero_()
        a = model.blocks[0].attn
        a.q_proj.weight.zero_()
        a.q_proj.bias.fill_(1.0)                                   # every query is the same constant
        a.k_proj.weight.copy_(100.0 * torch.outer(torch.ones(C), u))  # keys light up only on token 0
        a.k_proj.bias.zero_()
    T = cfg.block_size
    tokens = torch.randint(1, cfg.vocab_size, (6, T))
    tokens[:, 0] = 0
    x, rope = inherit.attention_inputs(model, tokens)[0]
    att0 = inherit.layer_attention(model.blocks[0].attn, x, rope)
    assert att0[..., 0].min() > 0.999  # all the mass on column 0
    ranks = inherit.attention_rank(model, tokens, batch_size=4)
    assert ranks.shape == (cfg.n_layer, cfg.n_head)
    assert ranks.min() >= 1 and ranks.max() <= T
    assert torch.all(ranks[0] == 1) and inherit.max_rank(ranks)[0] == 1
    assert 0 in inherit.lazy_layers(ranks) and inherit.max_rank(ranks).shape == (cfg.n_layer,)


def test_rank_cli_on_a_checkpoint(tmp_path, capsys):
    ds = write_byte_dataset(tmp_path / "ds")
    cfg = tiny_config("llama", vocab_size=256)
    model = trained_like(cfg)
    save_checkpoint({"model": model.state_dict(), "model_args": asdict(cfg), "config": {"dataset": str(ds)}},
                    str(tmp_path / "run" / "ckpt_0000005.pt"))
    inherit.main(["rank", str(tmp_path / "run"), "--n_seqs", "5", "--seq_len", "12", "--device", "cpu",
                  "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "MaxRank" in out and "lazy layers (MaxRank = 1):" in out and len(out.splitlines()) >= 4 + cfg.n_layer
    saved = json.loads((tmp_path / "r.json").read_text())
    assert np.array(saved["ranks"]).shape == (cfg.n_layer, cfg.n_head)
    with pytest.raises(SystemExit, match="longer than the model's context"):
        inherit.main(["rank", str(tmp_path / "run"), "--seq_len", "99", "--device", "cpu"])
