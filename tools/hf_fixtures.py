#!/usr/bin/env python3
"""Reference fixtures from Hugging Face transformers for r1hpc's model tests.

Builds tiny random DeepseekV3ForCausalLM models (and a DeepseekV2ForCausalLM for softmax routing), runs one
batch through them in float64 (eager attention, eager expert loop), computes the causal-LM loss and its
backward, and writes one HDF5 file per model into --out:

  attrs   config               the HF config as JSON
          r1hpc_deck           the equivalent r1hpc [model] deck (tests/model/hf_fixture.hpp reads it)
          arch                 "deepseek_v3" or "deepseek_v2"
          seed                 the seed that built the weights and the batch
          torch_version, transformers_version, numpy_version, h5py_version
          labels_convention    how labels relate to logits (HF's: unshifted, -100 ignored)
          min_router_margin    the smallest gap in the router's selections (a C++ f32 forward keeps them)
  weights/<hf name>            f32: every parameter and buffer of the state dict (weights generated in f32,
                               so the float64 model computes on exactly these values)
  grads/<hf name>              f32: d loss / d weight for every trainable parameter
  input_ids, labels            i32 [B, S]
  logits                       f32 [B, S, V]
  loss                         f64 scalar: mean cross entropy of logits[b, s] against labels[b, s + 1]
                               over the labels that are not -100

Regenerate with `python3 tools/hf_fixtures.py --out tests/fixtures` (needs torch, transformers, h5py, numpy;
the committed files were made with torch 2.15.0 and transformers 5.23.0, which the transformers >= 5 names
and rope_parameters here assume).
Before writing, it checks the RoPE facts the C++ side relies on (see self_check_rope) and prints them.
"""
import argparse
import math
import os
import sys

import h5py
import numpy as np
import torch
import transformers
from transformers import DeepseekV2Config, DeepseekV2ForCausalLM, DeepseekV3Config, DeepseekV3ForCausalLM

BATCH, SEQ, VOCAB = 2, 12, 96
IGNORE = -100
# Gaps below this in any routing decision (group choice or expert top-k) would let an f32 forward pick
# differently from the float64 reference; such seeds are skipped.
MIN_MARGIN = 2e-4

# Shapes shared by every fixture: 4 heads of (8 nope + 8 rope) query/key and 8 value dims on dim 32.
BASE = dict(
    vocab_size=VOCAB, hidden_size=32, num_attention_heads=4, num_key_value_heads=4,
    intermediate_size=48, moe_intermediate_size=16, kv_lora_rank=16,
    qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
    max_position_embeddings=32, rms_norm_eps=1e-6, tie_word_embeddings=False,
    attention_bias=False, hidden_act="silu", initializer_range=0.02,
)

FIXTURES = {
    # V3 routing in full: sigmoid scores, a selection bias that changes choices, 4 groups keep 2, scale 2.5.
    "moe_sigmoid_groups": dict(
        arch="v3", seed=1000, bias_scale=0.1,
        hf=dict(num_hidden_layers=2, first_k_dense_replace=1, n_routed_experts=8, num_experts_per_tok=2,
                n_group=4, topk_group=2, n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True,
                q_lora_rank=None, rope_interleave=True,
                rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
    ),
    # Query latent (q_a_proj / q_a_layernorm / q_b_proj) and YaRN. original_max_position_embeddings 8 is below
    # both the sequence (12) and max_position_embeddings (32 = factor x original, so HF's implied factor agrees),
    # so DeepSeek's rule (YaRN when max_seq_len > original_seq_len) and HF's (always for rope_type yarn) agree.
    # rope_theta 100 and small betas put the YaRN ramp inside the 8 frequencies (kept 0-1, ramp 2-6, scaled 7).
    "moe_qlora_yarn": dict(
        arch="v3", seed=2000, bias_scale=0.1,
        hf=dict(num_hidden_layers=2, first_k_dense_replace=1, n_routed_experts=8, num_experts_per_tok=2,
                n_group=2, topk_group=1, n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True,
                q_lora_rank=24, qk_rope_head_dim=16, rope_interleave=True,
                rope_parameters=dict(rope_type="yarn", rope_theta=100.0, factor=4.0,
                                     original_max_position_embeddings=8, beta_fast=0.25, beta_slow=0.05,
                                     mscale=1.0, mscale_all_dim=1.0)),
    ),
    # DeepSeek-V2(-Lite) routing: softmax scores, plain top-k (no groups, no bias), gates not renormalised.
    "v2_softmax": dict(
        arch="v2", seed=3000, bias_scale=0.0,
        hf=dict(num_hidden_layers=2, first_k_dense_replace=1, n_routed_experts=8, num_experts_per_tok=2,
                n_group=1, topk_group=1, topk_method="greedy", norm_topk_prob=False, n_shared_experts=2,
                routed_scaling_factor=1.0, q_lora_rank=None,
                rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
    ),
    # Several dense layers before the MoE ones (first_k_dense_replace 2 of 3).
    "dense_first_layers": dict(
        arch="v3", seed=4000, bias_scale=0.1,
        hf=dict(num_hidden_layers=3, first_k_dense_replace=2, n_routed_experts=8, num_experts_per_tok=2,
                n_group=2, topk_group=2, n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True,
                q_lora_rank=None, rope_interleave=True,
                rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
    ),
}


def make_config(spec):
    kw = dict(BASE)
    kw.update(spec["hf"])
    kw.update(attn_implementation="eager", experts_implementation="eager")
    if spec["arch"] == "v3":
        kw["num_mtp_layers"] = 0
        return DeepseekV3Config(**kw)
    return DeepseekV2Config(**kw)


def deck_text(name, cfg, spec):
    """The r1hpc [model] section of the same model."""
    rope = cfg.rope_parameters
    yarn = rope.get("rope_type", "default") == "yarn"
    if yarn:
        # r1hpc's mscale sets the softmax scale (as mscale_all_dim does in HF); HF additionally scales cos/sin by
        # mscale(factor, mscale) / mscale(factor, mscale_all_dim), which is 1 only when the two agree.
        assert rope["mscale"] == rope["mscale_all_dim"], "r1hpc has one mscale"
        assert cfg.max_position_embeddings > rope["original_max_position_embeddings"]
    sigmoid = spec["arch"] == "v3"
    assert cfg.norm_topk_prob == sigmoid, "r1hpc normalises the gates exactly for sigmoid routing"
    if not sigmoid:
        assert cfg.topk_method == "greedy" and (cfg.n_group or 1) == 1, "V2 group_limited_greedy ranks groups by max"
    keys = [
        ("vocab_size", cfg.vocab_size), ("dim", cfg.hidden_size), ("n_layers", cfg.num_hidden_layers),
        ("n_dense_layers", cfg.first_k_dense_replace), ("n_heads", cfg.num_attention_heads),
        ("dense_inter_dim", cfg.intermediate_size), ("moe_inter_dim", cfg.moe_intermediate_size),
        ("n_routed_experts", cfg.n_routed_experts), ("n_shared_experts", cfg.n_shared_experts),
        ("n_activated_experts", cfg.num_experts_per_tok), ("n_expert_groups", cfg.n_group or 1),
        ("n_limited_groups", cfg.topk_group or 1), ("score_func", "sigmoid" if sigmoid else "softmax"),
        ("route_scale", repr(float(cfg.routed_scaling_factor))), ("q_lora_rank", cfg.q_lora_rank or 0),
        ("kv_lora_rank", cfg.kv_lora_rank), ("qk_nope_head_dim", cfg.qk_nope_head_dim),
        ("qk_rope_head_dim", cfg.qk_rope_head_dim), ("v_head_dim", cfg.v_head_dim),
        ("rope_theta", repr(float(rope["rope_theta"]))),
        ("rope_factor", repr(float(rope["factor"])) if yarn else "1.0"),
        ("original_seq_len", rope["original_max_position_embeddings"] if yarn else cfg.max_position_embeddings),
        ("beta_fast", repr(float(rope["beta_fast"])) if yarn else "32.0"),
        ("beta_slow", repr(float(rope["beta_slow"])) if yarn else "1.0"),
        ("mscale", repr(float(rope["mscale_all_dim"])) if yarn else "1.0"),
        ("max_seq_len", cfg.max_position_embeddings), ("norm_eps", repr(float(cfg.rms_norm_eps))),
        ("init_std", repr(float(cfg.initializer_range))), ("mtp_depth", 0), ("dense", "false"),
        ("tie_embeddings", "false"),
        # HF's causal-LM loss has no balance term, and its forward never moves the selection bias.
        ("seq_aux_alpha", "0.0"), ("bias_update_gamma", "0.0"),
    ]
    lines = [f"# {name}: generated by tools/hf_fixtures.py from the HF config stored beside it", "[model]"]
    lines += [f"{k} = {v}" for k, v in keys]
    return "\n".join(lines) + "\n"


def fill_weights(model, gen, bias_scale):
    """Explicit f32 init: O(0.02-0.1) linears, O(1) embeddings, norms near 1 (not 1, so a swapped norm shows),
    and a random selection bias."""
    for name, p in model.named_parameters():
        leaf = name.split(".")[-2] if name.endswith(".weight") else name.split(".")[-1]
        if "layernorm" in leaf or leaf == "norm":
            v = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
        elif leaf == "embed_tokens":
            v = 0.5 * torch.randn(p.shape, generator=gen)
        elif leaf == "gate" and p.dim() == 2:  # the router
            v = 0.15 * torch.randn(p.shape, generator=gen)
        elif leaf in ("gate_up_proj", "down_proj") and p.dim() == 3:  # stacked routed experts
            v = 0.1 * torch.randn(p.shape, generator=gen)
        elif leaf == "lm_head":
            v = 0.1 * torch.randn(p.shape, generator=gen)
        else:
            v = 0.08 * torch.randn(p.shape, generator=gen)
        with torch.no_grad():
            p.copy_(v.to(torch.float32))
    for name, b in model.named_buffers():
        if name.endswith("e_score_correction_bias"):
            with torch.no_grad():
                b.copy_((bias_scale * (2 * torch.rand(b.shape, generator=gen) - 1)).to(torch.float32))


def make_batch(gen):
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen)
    labels = ids.clone()
    labels[0, 4] = IGNORE       # one masked target in the middle of row 0
    labels[1, 7:10] = IGNORE    # a masked span in row 1
    labels[1, SEQ - 1] = IGNORE  # and row 1's last target
    return ids, labels


def routing_report(model, ids, arch):
    """Replays the routing of every MoE layer from its captured input; returns the smallest selection margin, and
    per layer the tokens whose choice the bias changed and those whose choice the group limit changed."""
    captured = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: captured.append((mod, inp[0].detach())))
             for n, m in model.named_modules() if n.endswith("mlp.gate")]
    with torch.no_grad():
        model(input_ids=ids)
    for h in hooks:
        h.remove()
    min_margin, changed, group_limited = math.inf, [], []
    for mod, x in captured:
        x = x.reshape(-1, x.shape[-1])
        with torch.no_grad():
            logits = torch.nn.functional.linear(x.float(), mod.weight.float()).double()
        E, k = logits.shape[1], mod.top_k
        if arch == "v3":
            s = logits.sigmoid()
            bias = mod.e_score_correction_bias.double()
            G, kg = mod.num_group, mod.topk_group
        else:
            s, bias, G, kg = logits.softmax(-1), torch.zeros(E, dtype=torch.float64), 1, 1
        changed_here = group_limited_here = 0
        for t in range(s.shape[0]):
            def select(b, kg=kg):
                biased = s[t] + b
                gs = biased.view(G, -1).topk(min(2, E // G), -1)[0].sum(-1)
                margin = math.inf
                if kg < G:
                    srt = gs.sort(descending=True)[0]
                    margin = float(srt[kg - 1] - srt[kg])
                keep = gs.topk(kg)[1]
                allowed = torch.full((E,), -math.inf, dtype=torch.float64)
                for g in keep.tolist():
                    allowed[g * (E // G):(g + 1) * (E // G)] = biased[g * (E // G):(g + 1) * (E // G)]
                srt = allowed.sort(descending=True)[0]
                margin = min(margin, float(srt[k - 1] - srt[k]))
                return set(allowed.topk(k)[1].tolist()), margin
            chosen, margin = select(bias)
            min_margin = min(min_margin, margin)
            if chosen != select(torch.zeros_like(bias))[0]:
                changed_here += 1
            if chosen != select(bias, G)[0]:
                group_limited_here += 1
        changed.append(changed_here)
        group_limited.append(group_limited_here)
    return min_margin, changed, group_limited


def self_check_rope():
    """Facts about HF's rope_interleave that the r1hpc side relies on, checked in float64.

    1. HF's apply_rotary_pos_emb_interleave equals DeepSeek's interleaved complex rotation (pairs (2i, 2i+1),
       which r1hpc implements) followed by the fixed permutation that lists even slots then odd slots; the
       same permutation applies to q and k, so every q.k (and so attention) is unchanged.
    2. A model with rope_interleave=True on interleaved (checkpoint) weights equals the same model with
       rope_interleave=False on weights whose rope rows are de-interleaved: HF checkpoints of DeepSeek-V3 keep
       DeepSeek's interleaved layout, and an importer must NOT permute them for an interleaving RoPE."""
    from transformers.models.deepseek_v3 import modeling_deepseek_v3 as m3
    g = torch.Generator().manual_seed(7)
    B, H, S, R = 2, 3, 5, 8
    q = torch.randn(B, H, S, R, generator=g, dtype=torch.float64)
    k = torch.randn(B, 1, S, R, generator=g, dtype=torch.float64)
    ang = torch.arange(S, dtype=torch.float64)[:, None] * (10000.0 ** (-torch.arange(0, R, 2) / R))[None]
    cos = torch.cat([ang.cos(), ang.cos()], -1)[None]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[None]
    hq, hk = m3.apply_rotary_pos_emb_interleave(q, k, cos, sin)
    freqs = torch.polar(torch.ones_like(ang), ang)

    def deepseek(x):  # DeepSeek-V3 inference/model.py apply_rotary_emb
        xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
        return torch.view_as_real(xc * freqs).flatten(-2)
    dq, dk = deepseek(q), deepseek(k)
    perm = list(range(0, R, 2)) + list(range(1, R, 2))
    err_perm = max((hq - dq[..., perm]).abs().max().item(), (hk - dk[..., perm]).abs().max().item())
    err_dot = (hq @ hk.transpose(-1, -2) - dq @ dk.transpose(-1, -2)).abs().max().item()
    err_nonperm = (hq - dq).abs().max().item()

    spec = FIXTURES["moe_sigmoid_groups"]
    cfg = make_config(spec)
    gen = torch.Generator().manual_seed(11)
    a = DeepseekV3ForCausalLM(cfg)
    fill_weights(a, gen, 0.0)
    cfg_b = make_config(spec)
    cfg_b.rope_interleave = False
    b = DeepseekV3ForCausalLM(cfg_b)
    nope, rope, heads, lora = cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.num_attention_heads, cfg.kv_lora_rank
    sd = {n: t.clone() for n, t in a.state_dict().items()}
    for n, t in sd.items():
        if n.endswith("self_attn.q_proj.weight") or n.endswith("self_attn.q_b_proj.weight"):
            t = t.view(heads, nope + rope, -1)
            t[:, nope:] = t[:, nope:][:, perm].clone()
        elif n.endswith("kv_a_proj_with_mqa.weight"):
            t[lora:] = t[lora:][perm].clone()
    b.load_state_dict(sd)
    ids = torch.randint(0, VOCAB, (2, SEQ), generator=gen)
    with torch.no_grad():
        la = a.double()(input_ids=ids).logits
        lb = b.double()(input_ids=ids).logits
    err_model = (la - lb).abs().max().item()
    print(f"rope check: HF interleave == DeepSeek rotation then even/odd permutation: max err {err_perm:.1e}; "
          f"q.k max err {err_dot:.1e}; without the permutation the outputs differ by {err_nonperm:.2f}; "
          f"interleave=True on raw weights vs interleave=False on de-interleaved weights: logits max err "
          f"{err_model:.1e}")
    assert err_perm < 1e-12 and err_dot < 1e-12 and err_nonperm > 1e-3 and err_model < 1e-12


def build(name, spec, out_dir):
    cfg = make_config(spec)
    cls = DeepseekV3ForCausalLM if spec["arch"] == "v3" else DeepseekV2ForCausalLM
    for seed in range(spec["seed"], spec["seed"] + 200):
        gen = torch.Generator().manual_seed(seed)
        model = cls(cfg)
        fill_weights(model, gen, spec["bias_scale"])
        ids, labels = make_batch(gen)
        weights = {n: t.detach().clone() for n, t in model.state_dict().items()}
        model = model.double()
        margin, changed, group_limited = routing_report(model, ids, "v3" if spec["arch"] == "v3" else "v2")
        bias_ok = spec["bias_scale"] == 0 or all(c > 0 for c in changed)
        if margin >= MIN_MARGIN and bias_ok:
            break
    else:
        sys.exit(f"{name}: no seed in 200 gave routing margins >= {MIN_MARGIN}")

    model.train()
    out = model(input_ids=ids, labels=labels)
    # HF's loss_function upcasts the logits to float32; the reference loss is the same shifted, masked mean
    # cross entropy in float64, and the backward starts from it.
    lp = torch.log_softmax(out.logits[:, :-1], -1)
    tgt = labels[:, 1:]
    mask = tgt != IGNORE
    loss = -(lp.gather(-1, tgt.clamp(min=0)[..., None])[..., 0] * mask).sum() / mask.sum()
    assert abs(loss.item() - out.loss.item()) < 1e-6 * abs(loss.item()), (loss.item(), out.loss.item())
    loss.backward()
    logits = out.logits.detach()

    grads = {n: p.grad.detach() for n, p in model.named_parameters()}
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"{name}: parameters without gradient: {missing}"

    path = os.path.join(out_dir, f"{name}.h5")
    with h5py.File(path, "w") as f:
        write_provenance(f, cfg, deck_text(name, cfg, spec), "deepseek_v3" if spec["arch"] == "v3" else "deepseek_v2", seed,
                         "float64 forward and backward on f32-representable weights; eager attention and experts")
        f.attrs["min_router_margin"] = margin
        f.attrs["bias_changed_tokens_per_moe_layer"] = np.asarray(changed, dtype=np.int32)
        f.attrs["group_limit_changed_tokens_per_moe_layer"] = np.asarray(group_limited, dtype=np.int32)
        write_tensors(f, weights, grads, ids, labels, logits, loss)
    size = os.path.getsize(path)
    print(f"{name}: seed {seed}, loss {loss.item():.6f}, logits std {logits.std().item():.3f}, "
          f"{len(weights)} tensors, min router margin {margin:.2e}, bias changed {changed} tokens, group limit changed {group_limited}, "
          f"{size / 1024:.0f} KiB -> {path}")


def write_provenance(f, cfg, deck, arch, seed, compute):
    """The attributes every fixture file carries: the model, the deck that rebuilds it, what made it."""
    f.attrs["config"] = cfg.to_json_string(use_diff=False)
    f.attrs["r1hpc_deck"] = deck
    f.attrs["arch"] = arch
    f.attrs["seed"] = seed
    f.attrs["torch_version"] = str(torch.__version__)
    f.attrs["transformers_version"] = str(transformers.__version__)
    f.attrs["numpy_version"] = str(np.__version__)
    f.attrs["h5py_version"] = str(h5py.__version__)
    f.attrs["labels_convention"] = ("HF causal LM: logits[b, s] predicts labels[b, s + 1]; labels equal to "
                                    "-100 are ignored; loss is the mean over the counted targets")
    f.attrs["compute"] = compute


def write_tensors(f, weights, grads, ids, labels, logits, loss):
    """Weights, gradients (f32), the batch, its logits and loss (f64)."""
    for n, t in weights.items():
        f.create_dataset(f"weights/{n}", data=t.float().numpy())
    for n, t in grads.items():
        f.create_dataset(f"grads/{n}", data=t.float().numpy())
    f.create_dataset("input_ids", data=ids.numpy().astype(np.int32))
    f.create_dataset("labels", data=labels.numpy().astype(np.int32))
    f.create_dataset("logits", data=logits.float().numpy())
    f.create_dataset("loss", data=np.float64(loss.item()))


def run(description, fixtures, default_out, build, before=lambda: None):
    """The command line of a fixture script: --out DIR, --only NAME..., then build(name, spec, out) for each."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", default=default_out, help="directory for the .h5 files")
    ap.add_argument("--only", nargs="*", choices=sorted(fixtures), help="build only these fixtures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    before()
    for name in args.only or fixtures:
        build(name, fixtures[name], args.out)


if __name__ == "__main__":
    run(__doc__.split("\n")[0], FIXTURES, "tests/fixtures", build, self_check_rope)
