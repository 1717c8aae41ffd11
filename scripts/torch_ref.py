#!/usr/bin/env python3
"""torch_ref.py — an independent PyTorch reference of the tern model (BitNet b1.58, llama.cpp `bitnet`).

Written from the model spec in notes/INTERFACES.md (not from tern's C code), float32 throughout:
RMSNorm, BitLinear with the BitNet quantizers (round half to even, like rintf), RoPE in NEOX pairing,
causal grouped-query attention, attn_sub_norm, SwiGLU with ffn_sub_norm, output_norm, tied or untied
head, mean cross-entropy. `ternary = 0` turns every BitLinear into a plain linear.

Needs python3-torch, python3-h5py, python3-numpy (Debian): `scripts/install-deps.sh ref`.
Run with the Debian interpreter, /usr/bin/python3 (a pyenv python may not see those packages).

Modes:
  fixture   [--out-dir tests/fixtures]
            Regenerates the test fixtures deterministically (fixed seeds, seed search included):
            tests/fixtures/ref_tiny_<variant>.h5 (a tern checkpoint, format_version 1) and
            tests/fixtures/ref_tiny_<variant>_expected.h5 (batch, logits, loss, every gradient, activations)
            for variants ternary, fp, ternary_untied, ternary_long. See tests/fixtures/README.md.
  check     CKPT EXPECTED
            Loads a tern checkpoint and an *_expected.h5 file, recomputes logits/loss/grads on its batch,
            prints the loss and the max differences against the stored values (exit 1 if over tolerance).
  eval      --ckpt CKPT --tokens FILE [--seq T] [--batch B] [--max-windows N] [--header-bytes H] [--dtype D]
            Mean cross-entropy of a checkpoint over token windows, windows as tern's eval (src/training/eval.h):
            a 1-D stream is cut into non-overlapping windows of seq predictions (window w = tokens
            [w*seq, w*seq + seq]; a final partial window is scored too). FILE: a tern token file
            (magic TERNTOK, src/formats/tokfile.h), a .npy of ints (1-D stream, or 2-D [N, T+1]: one window
            per row), or a raw little-endian --dtype int32|uint32|uint16 stream after --header-bytes.
  bench     [--threads 2] [--steps 10] [--warmup 3] [--which both|ternary|fp]
            Training steps (forward + backward + AdamW) of the `small` config (dim 256, 6 layers,
            4 heads, 4 kv heads, ffn 768, vocab 4096, seq 256, batch 8, tied head), each variant in its
            own process; prints the median tokens/s as `torch_ref bench: ternary tokens/s = X` /
            `torch_ref bench: fp tokens/s = Y`, the fastest step, and each variant's peak RSS.
            Idiomatic eager PyTorch: Debian's torch 1.13 has no F.scaled_dot_product_attention, so
            attention is matmul + causal mask + softmax (GQA by repeat_interleave); AdamW from torch.optim.
            scripts/bench_torch_ref.sh wraps it for `make bench` (threads from OMP_NUM_THREADS).
  selfcheck Checks the straight-through gradients (custom autograd.Function vs the detach trick vs
            finite differences of the quantizer-frozen surrogates), runs torch.autograd.gradcheck
            on a small fp (ternary = 0) model in float64, and compares the vectorised forward with a
            literal loop-by-loop numpy version of the spec (a few minutes on 2 busy cores).
"""
import argparse
import math
import os
import resource
import statistics
import sys
import time

import numpy as np

try:
    import h5py
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    sys.exit(f"torch_ref.py: {e} (install with scripts/install-deps.sh ref; run with /usr/bin/python3)")

PROG = "torch_ref.py"
EPS_Q = 1e-5  # quantizer epsilon (TERN_QUANT_EPS)
INT_FIELDS = ["dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "vocab_size", "seq_len", "tied_head", "ternary"]
FLOAT_FIELDS = ["norm_eps", "rope_theta"]
# optional checkpoint attributes (absent = these defaults): the shapes tern-import brings in
OPT_INT_FIELDS = {"ffn_act": 0, "sub_norms": 1, "rope_scaling": 0, "rope_original_ctx": 8192}
OPT_FLOAT_FIELDS = {"rope_scaling_factor": 8.0, "rope_low_freq_factor": 1.0, "rope_high_freq_factor": 4.0}
BLOCK_PARAMS = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_sub_norm", "attn_output",
                "ffn_norm", "ffn_gate", "ffn_up", "ffn_sub_norm", "ffn_down"]


def die(msg):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(1)


# ----------------------------------------------------------------------------------------------
# config and parameter layout

def make_config(**kw):
    cfg = dict(dim=256, n_layers=6, n_heads=4, n_kv_heads=4, ffn_dim=768, vocab_size=4096, seq_len=256,
               norm_eps=1e-5, rope_theta=10000.0, tied_head=1, ternary=1)
    cfg.update(OPT_INT_FIELDS)
    cfg.update(OPT_FLOAT_FIELDS)
    cfg.update(kw)
    return cfg


def param_shapes(cfg):
    """[(name, shape)] in tern's registration order."""
    d, hd = cfg["dim"], cfg["dim"] // cfg["n_heads"]
    qd, kd, f, v = cfg["n_heads"] * hd, cfg["n_kv_heads"] * hd, cfg["ffn_dim"], cfg["vocab_size"]
    out = [("token_embd.weight", (v, d))]
    for i in range(cfg["n_layers"]):
        p = f"blk.{i}."
        sub = cfg.get("sub_norms", 1)
        out += [(p + "attn_norm.weight", (d,)), (p + "attn_q.weight", (qd, d)), (p + "attn_k.weight", (kd, d)),
                (p + "attn_v.weight", (kd, d))] + ([(p + "attn_sub_norm.weight", (d,))] if sub else []) + \
               [(p + "attn_output.weight", (d, d)), (p + "ffn_norm.weight", (d,)),
                (p + "ffn_gate.weight", (f, d)), (p + "ffn_up.weight", (f, d))] + \
               ([(p + "ffn_sub_norm.weight", (f,))] if sub else []) + [(p + "ffn_down.weight", (d, f))]
    out.append(("output_norm.weight", (d,)))
    if not cfg["tied_head"]:
        out.append(("output.weight", (v, d)))
    return out


def check_config(cfg, what):
    for k in INT_FIELDS[:7]:
        if cfg[k] <= 0:
            die(f"{what}: config {k} = {cfg[k]} must be positive")
    if cfg["dim"] % cfg["n_heads"] or (cfg["dim"] // cfg["n_heads"]) % 2:
        die(f"{what}: dim {cfg['dim']} / n_heads {cfg['n_heads']} must be an even head_dim")
    if cfg["n_heads"] % cfg["n_kv_heads"]:
        die(f"{what}: n_heads {cfg['n_heads']} is not a multiple of n_kv_heads {cfg['n_kv_heads']}")


# ----------------------------------------------------------------------------------------------
# quantizers and BitLinear

def weight_scale(w):
    """s_w = max(mean|W|, 1e-5); the mean accumulated in float64 (as tern), rounded to w's dtype."""
    return torch.clamp(w.detach().abs().double().mean().to(w.dtype), min=EPS_Q)


def weight_quant(w, s):
    """Wq = clamp(round(W / s), -1, 1); torch.round is half-to-even like rintf."""
    return torch.clamp(torch.round(w / s), -1.0, 1.0)


def act_quant(x):
    """per row: s_x = 127 / max(max|x|, 1e-5); xq = clamp(round(x * s_x), -128, 127). Returns xq, s_x [N,1]."""
    s = 127.0 / torch.clamp(x.detach().abs().amax(dim=-1, keepdim=True), min=EPS_Q)
    return torch.clamp(torch.round(x.detach() * s), -128.0, 127.0), s


class QuantRecorder:
    """Optional hook: records every activation quantization (x*s_x values) of a forward pass."""
    active = None  # list or None


class BitLinearFn(torch.autograd.Function):
    """y = (xq @ Wqᵀ) * (s_w / s_x); straight-through: dx = dy @ (Wq*s_w), dW = dyᵀ @ (xq/s_x)."""

    @staticmethod
    def forward(ctx, x, w):  # x [N, in], w [out, in] -> [N, out]
        s_w = weight_scale(w)
        wq = weight_quant(w, s_w)
        xq, s_x = act_quant(x)
        if QuantRecorder.active is not None:
            QuantRecorder.active.append((x.detach() * s_x).clone())
        ctx.save_for_backward(xq, s_x, wq, s_w)
        return (xq @ wq.t()) * (s_w / s_x)

    @staticmethod
    def backward(ctx, dy):
        xq, s_x, wq, s_w = ctx.saved_tensors
        dx = dy @ (wq * s_w) if ctx.needs_input_grad[0] else None
        dw = dy.t() @ (xq / s_x) if ctx.needs_input_grad[1] else None
        return dx, dw


def bitlinear(x, w):
    return BitLinearFn.apply(x, w)


def bitlinear_detach(x, w):
    """The same BitLinear written with the detach trick (forward equal up to fp32 rounding of the scales)."""
    s_w = weight_scale(w)
    xq, s_x = act_quant(x)
    x_ste = x + (xq / s_x - x).detach()
    w_ste = w + (weight_quant(w, s_w) * s_w - w).detach()
    return x_ste @ w_ste.t()


def fplinear(x, w):
    return x @ w.t()


# ----------------------------------------------------------------------------------------------
# the model (functional: params is a dict name -> tensor)

def rmsnorm(x, w, eps):
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * w


def llama3_divisors(hd, cfg):
    """LLaMA-3 rope scaling as frequency divisors (llama.cpp's rope_freqs), float64."""
    f, lo, hi, L = cfg["rope_scaling_factor"], cfg["rope_low_freq_factor"], cfg["rope_high_freq_factor"], cfg["rope_original_ctx"]
    out = []
    for j in range(hd // 2):
        wl = 2 * math.pi / cfg["rope_theta"] ** (-2.0 * j / hd)
        if wl < L / hi:
            out.append(1.0)
        elif wl > L / lo:
            out.append(f)
        else:
            sm = (L / wl - lo) / (hi - lo)
            out.append(1.0 / ((1 - sm) / f + sm))
    return torch.tensor(out, dtype=torch.float64)


def rope_tables(T, hd, theta, dtype, cfg=None):
    """cos/sin [T, hd/2]: angle(t, j) = t * theta^(-2j/hd) (/ the llama3 divisor), computed in float64 then rounded."""
    j = torch.arange(hd // 2, dtype=torch.float64)
    inv = theta ** (-2.0 * j / hd)
    if cfg is not None and cfg.get("rope_scaling", 0) == 1:
        inv = inv / llama3_divisors(hd, cfg)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def rope(x, cos, sin):
    """NEOX: element j rotates with j + hd/2. x [B, H, T, hd]."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def forward(P, cfg, inputs, targets=None, acts=None, linear=None):
    """inputs/targets int64 [B, T]. Returns (logits [B*T, V], loss or None). acts: dict to fill (debug)."""
    B, T = inputs.shape
    d, H, KV = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    hd, eps = d // H, cfg["norm_eps"]
    lin = linear or (bitlinear if cfg["ternary"] else fplinear)
    E = P["token_embd.weight"]
    x = F.embedding(inputs.reshape(-1), E)  # [B*T, d]
    cos, sin = rope_tables(T, hd, cfg["rope_theta"], E.dtype, cfg)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    scale = 1.0 / math.sqrt(hd)

    def save(name, t):
        if acts is not None:
            acts[name] = t.detach().reshape(B * T, -1).clone()

    save("emb", x)
    for i in range(cfg["n_layers"]):
        p = f"blk.{i}."
        dbg = (lambda n, t: save(f"blk{i}_{n}", t)) if i == 0 else (lambda n, t: None)
        h = rmsnorm(x, P[p + "attn_norm.weight"], eps)
        dbg("attn_norm", h)
        q, k, v = lin(h, P[p + "attn_q.weight"]), lin(h, P[p + "attn_k.weight"]), lin(h, P[p + "attn_v.weight"])
        dbg("q", q); dbg("k", k); dbg("v", v)
        q = rope(q.view(B, T, H, hd).transpose(1, 2), cos, sin)   # [B, H, T, hd]
        k = rope(k.view(B, T, KV, hd).transpose(1, 2), cos, sin)  # [B, KV, T, hd]
        v = v.view(B, T, KV, hd).transpose(1, 2)
        dbg("q_rope", q.transpose(1, 2)); dbg("k_rope", k.transpose(1, 2))
        if KV != H:  # q head h uses kv head h // (H/KV)
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
        att = (q @ k.transpose(-2, -1)) * scale
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        a = (att @ v).transpose(1, 2).reshape(B * T, H * hd)
        dbg("attn", a)
        if cfg.get("sub_norms", 1):
            a = rmsnorm(a, P[p + "attn_sub_norm.weight"], eps)
        dbg("attn_sub_norm", a)
        x = x + lin(a, P[p + "attn_output.weight"])
        dbg("attn_resid", x)
        h = rmsnorm(x, P[p + "ffn_norm.weight"], eps)
        dbg("ffn_norm", h)
        g = lin(h, P[p + "ffn_gate.weight"])
        g = torch.relu(g) ** 2 if cfg.get("ffn_act", 0) == 1 else F.silu(g)
        f = g * lin(h, P[p + "ffn_up.weight"])
        dbg("ffn_act", f)
        if cfg.get("sub_norms", 1):
            f = rmsnorm(f, P[p + "ffn_sub_norm.weight"], eps)
        dbg("ffn_sub_norm", f)
        x = x + lin(f, P[p + "ffn_down.weight"])
        save(f"blk{i}_out", x)
    x = rmsnorm(x, P["output_norm.weight"], eps)
    save("final_norm", x)
    logits = x @ (E if cfg["tied_head"] else P["output.weight"]).t()  # [B*T, V]
    loss = None if targets is None else F.cross_entropy(logits, targets.reshape(-1))
    return logits, loss


# ----------------------------------------------------------------------------------------------
# HDF5 I/O (tern checkpoint layout, format_version 1)

def _attr_str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace").rstrip("\0")
    if isinstance(v, np.ndarray) and v.size == 1:
        return _attr_str(v.reshape(-1)[0])
    return str(v)


def save_checkpoint(path, cfg, P):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs.create("format", np.bytes_(b"tern-checkpoint"))  # fixed-length ASCII string
        f.attrs.create("format_version", np.int32(1))
        for k in INT_FIELDS:
            f.attrs.create(k, np.int32(cfg[k]))
        for k in FLOAT_FIELDS:
            f.attrs.create(k, np.float32(cfg[k]))
        for k, dflt in OPT_INT_FIELDS.items():   # only when not the default (older files stay byte-identical)
            if cfg.get(k, dflt) != dflt:
                f.attrs.create(k, np.int32(cfg[k]))
        for k, dflt in OPT_FLOAT_FIELDS.items():
            if cfg.get(k, dflt) != dflt:
                f.attrs.create(k, np.float32(cfg[k]))
        for name, shape in param_shapes(cfg):
            t = P[name].detach().to(torch.float32).numpy()
            assert t.shape == shape, (name, t.shape, shape)
            f.create_dataset(name, data=t)
    os.replace(tmp, path)


def load_checkpoint(path):
    """-> (cfg, params dict of float32 tensors). One clear error line on any problem."""
    try:
        f = h5py.File(path, "r")
    except (OSError, IOError) as e:
        die(f"{path}: cannot open as HDF5 ({e})")
    with f:
        if "format" not in f.attrs or _attr_str(f.attrs["format"]) != "tern-checkpoint":
            die(f"{path}: not a tern checkpoint (root attribute format != 'tern-checkpoint')")
        ver = int(np.asarray(f.attrs.get("format_version", -1)).reshape(-1)[0])
        # version 2 adds a checksum header in the HDF5 user block (h5py skips it) and data identity
        # attributes under /train_state; the model's attributes and datasets are those of version 1
        if ver not in (1, 2):
            die(f"{path}: unsupported format_version {ver} (expected 1 or 2)")
        cfg = {}
        for k in INT_FIELDS + FLOAT_FIELDS:
            if k not in f.attrs:
                die(f"{path}: missing root attribute {k}")
            v = np.asarray(f.attrs[k]).reshape(-1)[0]
            cfg[k] = int(v) if k in INT_FIELDS else float(np.float32(v))
        for k, dflt in list(OPT_INT_FIELDS.items()) + list(OPT_FLOAT_FIELDS.items()):
            v = np.asarray(f.attrs[k]).reshape(-1)[0] if k in f.attrs else dflt
            cfg[k] = int(v) if k in OPT_INT_FIELDS else float(np.float32(v))
        check_config(cfg, path)
        P = {}
        for name, shape in param_shapes(cfg):
            if name not in f:
                die(f"{path}: missing parameter {name}")
            ds = f[name]
            if not isinstance(ds, h5py.Dataset) or tuple(ds.shape) != shape:
                die(f"{path}: parameter {name} has shape {getattr(ds, 'shape', None)}, expected {shape}")
            if ds.dtype != np.float32:
                die(f"{path}: parameter {name} has dtype {ds.dtype}, expected float32")
            P[name] = torch.from_numpy(ds[...].astype(np.float32))
    return cfg, P


# ----------------------------------------------------------------------------------------------
# fixtures

FIXTURE_CFG = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=88, vocab_size=61, seq_len=9,
                   norm_eps=1e-5, rope_theta=10000.0)
FIXTURE_BATCH = 2
FIXTURE_VARIANTS = [("ternary", dict(ternary=1, tied_head=1), 1000),
                    ("fp", dict(ternary=0, tied_head=1), 2000),
                    ("ternary_untied", dict(ternary=1, tied_head=0), 3000),
                    # non-default RoPE base and epsilon; 130 positions = three causal query blocks of 64
                    # (one layer, batch 1: fewer quantized values, so a seed far from ties exists)
                    ("ternary_long", dict(ternary=1, tied_head=1, seq_len=130, n_layers=1, rope_theta=500000.0,
                                          norm_eps=1e-6), 4000)]
FIXTURE_NO_ACTS = ("ternary_long",)  # no act/ datasets (debugging only; they would be ~0.5 MB)
FIXTURE_BATCH_OF = {"ternary_long": 1}
SEED_TRIES = 200


def random_params(cfg, seed):
    """Linear weights N(0, 0.02); embedding / untied head N(0, 0.1) (logits of a few units);
    norm weights 1 + N(0, 0.1). numpy's PCG64 stream, so the values do not depend on the torch version."""
    rng = np.random.default_rng(seed)
    P = {}
    for name, shape in param_shapes(cfg):
        if len(shape) == 1:
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name in ("token_embd.weight", "output.weight"):
            a = 0.1 * rng.standard_normal(shape)
        else:
            a = 0.02 * rng.standard_normal(shape)
        P[name] = torch.from_numpy(a.astype(np.float32))
    return P


def random_batch(cfg, B, seed):
    rng = np.random.default_rng(seed)
    seq = rng.integers(0, cfg["vocab_size"], size=(B, cfg["seq_len"] + 1)).astype(np.int32)
    return seq[:, :-1].copy(), seq[:, 1:].copy()


def quant_margins(P, cfg, inputs):
    """Smallest distance of any forward activation value x*s_x to a rounding tie (k + 0.5), absolute and
    relative to max(|x*s_x|, 1); and of any weight W/s_w to the 0/±1 tie at ±0.5."""
    QuantRecorder.active = []
    with torch.no_grad():
        forward(P, cfg, torch.from_numpy(inputs).long())
    vals = torch.cat([v.reshape(-1) for v in QuantRecorder.active])
    QuantRecorder.active = None
    dist = (vals - torch.floor(vals) - 0.5).abs()
    act_abs, act_rel = dist.min().item(), (dist / vals.abs().clamp(min=1.0)).min().item()
    wmin = float("inf")
    for name, t in P.items():
        if t.dim() == 2 and name not in ("token_embd.weight", "output.weight"):
            r = (t / weight_scale(t)).abs()
            wmin = min(wmin, (r - 0.5).abs().min().item())
    return act_abs, act_rel, wmin, vals.numel()


def compute_all(P, cfg, inputs, targets, linear=None):
    """-> logits, loss, grads dict, acts dict (all float tensors)."""
    Pg = {k: v.clone().requires_grad_(True) for k, v in P.items()}
    acts = {}
    logits, loss = forward(Pg, cfg, torch.as_tensor(inputs).long(), torch.as_tensor(targets).long(),
                           acts=acts, linear=linear)
    loss.backward()
    grads = {k: v.grad.detach().clone() for k, v in Pg.items()}
    return logits.detach(), loss.detach(), grads, acts


def write_expected(path, cfg, variant, seed, inputs, targets, logits, loss, grads, acts, extra_attrs):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs.create("format", np.bytes_(b"tern-ref-expected"))
        f.attrs.create("format_version", np.int32(1))
        f.attrs.create("variant", np.bytes_(variant.encode()))
        f.attrs.create("seed", np.int64(seed))
        f.attrs.create("batch", np.int32(inputs.shape[0]))
        for k in INT_FIELDS:
            f.attrs.create(k, np.int32(cfg[k]))
        for k in FLOAT_FIELDS:
            f.attrs.create(k, np.float32(cfg[k]))
        for k, v in extra_attrs.items():
            f.attrs.create(k, v)
        f.create_dataset("inputs", data=inputs.astype(np.int32))
        f.create_dataset("targets", data=targets.astype(np.int32))
        f.create_dataset("logits", data=logits.numpy().astype(np.float32))
        f.create_dataset("loss", data=np.float32(loss.item()))
        for name, _ in param_shapes(cfg):
            f.create_dataset("grad/" + name, data=grads[name].numpy().astype(np.float32))
        for name, t in acts.items():
            f.create_dataset("act/" + name, data=t.numpy().astype(np.float32))
    os.replace(tmp, path)


def cmd_fixture(args):
    os.makedirs(args.out_dir, exist_ok=True)
    for variant, over, base_seed in FIXTURE_VARIANTS:
        if args.variant and variant != args.variant:
            continue
        cfg = make_config(**{**FIXTURE_CFG, **over})
        inputs, targets = random_batch(cfg, FIXTURE_BATCH_OF.get(variant, FIXTURE_BATCH), base_seed)
        best = None
        tries = SEED_TRIES if cfg["ternary"] else 1
        for s in range(base_seed, base_seed + tries):  # pick the weights farthest from rounding ties
            P = random_params(cfg, s)
            m = quant_margins(P, cfg, inputs) if cfg["ternary"] else (0.5, 0.5, 0.5, 0)
            # largest relative activation margin among weights at least 1e-5 (~170 ulp) from the 0.5 tie
            key = m[1] if m[2] > 1e-5 else m[1] - 1.0
            if best is None or key > best[0]:
                best = (key, s, P, m)
        _, seed, P, m = best
        logits, loss, grads, acts = compute_all(P, cfg, inputs, targets)
        # the same in float64 (quantizers included), for the tolerance rationale
        P64 = {k: v.double() for k, v in P.items()}
        l64, loss64, g64, _ = compute_all(P64, cfg, inputs, targets)
        ck = os.path.join(args.out_dir, f"ref_tiny_{variant}.h5")
        ex = os.path.join(args.out_dir, f"ref_tiny_{variant}_expected.h5")
        save_checkpoint(ck, cfg, P)
        extra = dict(loss_fp64=np.float64(loss64.item()),
                     min_act_tie_margin=np.float32(m[0]), min_act_tie_margin_rel=np.float32(m[1]),
                     min_weight_tie_margin=np.float32(m[2]))
        write_expected(ex, cfg, variant, seed, inputs, targets, logits, loss, grads,
                       {} if variant in FIXTURE_NO_ACTS else acts, extra)
        dl = (logits.double() - l64).abs().max().item()
        dg = max(((grads[k].double() - g64[k]).abs().max() / g64[k].abs().max()).item() for k in grads)
        print(f"{variant}: seed {seed} loss {loss.item():.7f} (fp64 {loss64.item():.7f}) "
              f"act tie margin {m[0]:.2e} (rel {m[1]:.2e}, {m[3]} values) weight tie margin {m[2]:.2e}; "
              f"fp32 vs fp64: logits max|d| {dl:.2e}, grads max|d|/max|g| {dg:.2e}")
        print(f"  wrote {ck} ({os.path.getsize(ck)} B), {ex} ({os.path.getsize(ex)} B)")


# ----------------------------------------------------------------------------------------------
# check: recompute a stored expected file from a checkpoint

def load_expected(path):
    try:
        f = h5py.File(path, "r")
    except (OSError, IOError) as e:
        die(f"{path}: cannot open as HDF5 ({e})")
    with f:
        for k in ("inputs", "targets"):
            if k not in f:
                die(f"{path}: missing dataset {k}")
        E = {"inputs": f["inputs"][...], "targets": f["targets"][...]}
        if E["inputs"].ndim != 2 or E["inputs"].shape != E["targets"].shape:
            die(f"{path}: inputs/targets must be two int arrays of the same shape [B, T]")
        for k in ("logits", "loss"):
            E[k] = f[k][...] if k in f else None
        E["grad"] = {k: f["grad"][k][...] for k in f["grad"]} if "grad" in f else {}
        E["act"] = {k: f["act"][k][...] for k in f["act"]} if "act" in f else {}
    return E


def cmd_check(args):
    cfg, P = load_checkpoint(args.ckpt)
    E = load_expected(args.expected)
    if E["inputs"].min() < 0 or E["inputs"].max() >= cfg["vocab_size"] or \
            E["targets"].min() < 0 or E["targets"].max() >= cfg["vocab_size"]:
        die(f"{args.expected}: token ids out of range for vocab_size {cfg['vocab_size']}")
    logits, loss, grads, acts = compute_all(P, cfg, E["inputs"], E["targets"])
    print(f"loss = {loss.item():.7f}" + ("" if E["loss"] is None else f" (stored {float(E['loss']):.7f})"))
    tol = TOL["ternary" if cfg["ternary"] else "fp"]
    ok = True
    if E["loss"] is not None:
        d = abs(loss.item() - float(E["loss"]))
        ok &= d <= tol["loss_abs"]
        print(f"loss |d| = {d:.3e} (tol {tol['loss_abs']:.0e})")
    if E["logits"] is not None:
        d = (logits.numpy() - E["logits"]).__abs__().max()
        ok &= d <= tol["logits_abs"]
        print(f"logits max|d| = {d:.3e} (tol {tol['logits_abs']:.0e})")
    worst = (0.0, "")
    for name, g in E["grad"].items():
        if name not in grads:
            die(f"{args.expected}: grad/{name} is not a parameter of {args.ckpt}")
        ref = g
        d = np.abs(grads[name].numpy() - ref).max() / max(np.abs(ref).max(), 1e-30)
        worst = max(worst, (d, name))
    if E["grad"]:
        ok &= worst[0] <= tol["grad_rel_max"]
        print(f"grads max|d|/max|g| = {worst[0]:.3e} at {worst[1]} (tol {tol['grad_rel_max']:.0e})")
    worst = (0.0, "")
    for name, a in E["act"].items():
        if name in acts and acts[name].shape == a.shape:
            d = np.abs(acts[name].numpy() - a).max() / max(np.abs(a).max(), 1e-30)
            worst = max(worst, (d, name))
    if E["act"]:
        ok &= worst[0] <= tol["act_rel_max"]
        print(f"activations max|d|/max|a| = {worst[0]:.3e} at {worst[1]} (tol {tol['act_rel_max']:.0e})")
    print("check: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


# recommended tolerances, see tests/fixtures/README.md
# (the fixtures are chosen so that no fp32 implementation should flip a quantizer rounding; a single
# flip moves logits by ~1e-2 and gradients by ~1e-2 relative, so these fail loudly when one happens)
TOL = {"fp": dict(loss_abs=1e-5, logits_abs=1e-4, grad_rel_max=1e-4, act_rel_max=1e-4),
       "ternary": dict(loss_abs=1e-5, logits_abs=1e-4, grad_rel_max=1e-4, act_rel_max=1e-4)}


# ----------------------------------------------------------------------------------------------
# eval

def load_tokens(path, header_bytes, dtype="int32"):
    """-> int64 array: 1-D stream or 2-D windows. Reads .npy, tern token files (magic TERNTOK) and raw streams."""
    if not os.path.exists(path):
        die(f"{path}: no such file")
    if path.endswith(".npy"):
        try:
            a = np.load(path, allow_pickle=False)
        except Exception as e:
            die(f"{path}: not a readable .npy file ({e})")
        if a.dtype.kind not in "iu":
            die(f"{path}: .npy dtype {a.dtype} is not an integer type")
        return a.astype(np.int64)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(64)
    if head[:8] == b"TERNTOK\0":  # tern token file, version 1 (src/formats/tokfile.h)
        if len(head) < 64:
            die(f"{path}: truncated tern token file header")
        ver, hsize, vocab, width = np.frombuffer(head[8:24], dtype="<u4")
        n = int(np.frombuffer(head[24:32], dtype="<u8")[0])
        if ver != 1 or hsize != 64 or width not in (2, 4):
            die(f"{path}: unsupported tern token file (version {ver}, header {hsize}, width {width})")
        if size != 64 + n * int(width):
            die(f"{path}: size {size} does not match header ({n} tokens of {width} bytes + 64)")
        return np.fromfile(path, dtype="<u2" if width == 2 else "<u4", offset=64).astype(np.int64)
    dt = np.dtype({"int32": "<i4", "uint32": "<u4", "uint16": "<u2"}[dtype])
    n = size - header_bytes
    if n < 0 or n % dt.itemsize:
        die(f"{path}: size {size} minus header {header_bytes} is not a multiple of {dt.itemsize} ({dtype})")
    return np.fromfile(path, dtype=dt, offset=header_bytes).astype(np.int64)


def cmd_eval(args):
    """Windows as tern's eval.c: non-overlapping windows of T predictions, window w = tokens
    [w*T, w*T + T]; a final partial window (>= 2 ids left) is scored too; --max-windows caps the count."""
    cfg, P = load_checkpoint(args.ckpt)
    toks = load_tokens(args.tokens, args.header_bytes, args.dtype)
    T = args.seq or cfg["seq_len"]
    if toks.ndim == 1:
        if len(toks) < 2:
            die(f"{args.tokens}: {len(toks)} tokens, need at least 2")
        nfull, rem = (len(toks) - 1) // T, (len(toks) - 1) % T
        wins = [toks[i * T:i * T + T + 1] for i in range(nfull)]
        if rem:
            wins.append(toks[nfull * T:])
    elif toks.ndim == 2:
        wins = list(toks)
    else:
        die(f"{args.tokens}: expected a 1-D or 2-D token array, got {toks.ndim}-D")
    if args.max_windows:
        wins = wins[:args.max_windows]
    lo, hi = min(w.min() for w in wins), max(w.max() for w in wins)
    if lo < 0 or hi >= cfg["vocab_size"]:
        die(f"{args.tokens}: token ids outside [0, {cfg['vocab_size']})")
    torch.set_num_threads(args.threads)
    tot, cnt, i = 0.0, 0, 0
    with torch.no_grad():
        while i < len(wins):
            j = i
            while j < len(wins) and j - i < args.batch and len(wins[j]) == len(wins[i]):
                j += 1
            w = torch.from_numpy(np.stack(wins[i:j]))
            _, loss = forward(P, cfg, w[:, :-1], w[:, 1:])
            k = w[:, 1:].numel()
            tot += loss.item() * k
            cnt += k
            i = j
    mean = tot / cnt
    print(f"torch_ref eval: {len(wins)} windows, {cnt} tokens scored, mean loss = {mean:.6f}, ppl = {math.exp(mean):.4f}")
    return 0


# ----------------------------------------------------------------------------------------------
# bench

def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_one(cfg, B, steps, warmup, seed=0):
    """-> list of step times (s) after warmup, last loss."""
    torch.manual_seed(seed)
    params = {}
    for name, shape in param_shapes(cfg):
        t = torch.ones(shape) if len(shape) == 1 else torch.randn(shape) * 0.02
        params[name] = t.requires_grad_(True)
    opt = torch.optim.AdamW(params.values(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(seed)
    times, cpu = [], []
    for it in range(warmup + steps):
        seq = torch.randint(0, cfg["vocab_size"], (B, cfg["seq_len"] + 1), generator=g)
        t0, c0 = time.perf_counter(), time.process_time()
        _, loss = forward(params, cfg, seq[:, :-1], seq[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if it >= warmup:
            times.append(dt)
            cpu.append(dc)
    bench_one.cpu = cpu  # CPU seconds per step (all threads), for tokens per CPU-second
    return times, loss.item()


def cmd_bench(args):
    if args.which == "both":  # one process per variant, so that each peak RSS is its own
        import subprocess
        rc = 0
        for w in ("ternary", "fp"):
            cmd = [sys.executable, os.path.abspath(__file__), "bench", "--which", w, "--threads", str(args.threads),
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch)]
            rc |= subprocess.call(cmd)
        return rc
    torch.set_num_threads(args.threads)
    w = args.which
    cfg = make_config(ternary=1 if w == "ternary" else 0)
    print(f"torch_ref bench: {w}: torch {torch.__version__}, threads {torch.get_num_threads()}, config small "
          f"(dim 256, 6 layers, 4/4 heads, ffn 768, vocab 4096, seq 256, batch {args.batch}, tied), "
          f"{args.warmup} warmup + {args.steps} timed steps of forward+backward+AdamW")
    times, loss = bench_one(cfg, args.batch, args.steps, args.warmup)
    med, best = statistics.median(times), min(times)
    tok = args.batch * cfg["seq_len"]
    print(f"torch_ref bench: {w} step median = {med * 1000:.1f} ms, min = {best * 1000:.1f} ms, "
          f"best tokens/s = {tok / best:.1f} (last loss {loss:.4f})")
    print(f"torch_ref bench: {w} tokens/s = {tok / med:.1f}")
    print(f"torch_ref bench: {w} tokens/CPU-s = {tok / statistics.median(bench_one.cpu):.1f}")
    print(f"torch_ref bench: {w} peak RSS = {peak_rss_mib():.1f} MiB")
    return 0


# ----------------------------------------------------------------------------------------------
# selfcheck

def naive_forward(P, cfg, inputs):
    """A deliberately literal float64 numpy version of the spec (loops over tokens, heads and pairs),
    to cross-check the vectorised torch forward (head layout, GQA mapping, RoPE pairing, causal mask).
    inputs int [B, T] -> logits [B*T, V]."""
    P = {k: v.detach().double().numpy() for k, v in P.items()}
    B, T = inputs.shape
    d, H, KV, eps = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"], cfg["norm_eps"]
    hd = d // H

    def norm(x, w):
        return np.stack([r / math.sqrt(float(np.mean(r * r)) + eps) * w for r in x])

    def lin(x, w):
        if not cfg["ternary"]:
            return x @ w.T
        sw = max(float(np.mean(np.abs(w))), EPS_Q)
        wq = np.clip(np.round(w / sw), -1, 1)  # np.round is half-to-even
        out = np.zeros((x.shape[0], w.shape[0]))
        for n, r in enumerate(x):
            sx = 127.0 / max(float(np.max(np.abs(r))), EPS_Q)
            xq = np.clip(np.round(r * sx), -128, 127)
            out[n] = (wq @ xq) * (sw / sx)
        return out

    def rot(vec, t):
        o = vec.copy()
        for j in range(hd // 2):
            a = t * cfg["rope_theta"] ** (-2.0 * j / hd)
            o[j] = vec[j] * math.cos(a) - vec[j + hd // 2] * math.sin(a)
            o[j + hd // 2] = vec[j + hd // 2] * math.cos(a) + vec[j] * math.sin(a)
        return o

    x = P["token_embd.weight"][np.asarray(inputs).reshape(-1)]
    for i in range(cfg["n_layers"]):
        p = f"blk.{i}."
        h = norm(x, P[p + "attn_norm.weight"])
        q, k, v = lin(h, P[p + "attn_q.weight"]), lin(h, P[p + "attn_k.weight"]), lin(h, P[p + "attn_v.weight"])
        a = np.zeros((B * T, H * hd))
        for b in range(B):
            for hh in range(H):
                g = hh // (H // KV)
                for t in range(T):
                    qv = rot(q[b * T + t, hh * hd:(hh + 1) * hd], t)
                    sc = np.array([qv @ rot(k[b * T + u, g * hd:(g + 1) * hd], u) / math.sqrt(hd) for u in range(t + 1)])
                    pr = np.exp(sc - sc.max()); pr /= pr.sum()
                    a[b * T + t, hh * hd:(hh + 1) * hd] = sum(pr[u] * v[b * T + u, g * hd:(g + 1) * hd] for u in range(t + 1))
        x = x + lin(norm(a, P[p + "attn_sub_norm.weight"]), P[p + "attn_output.weight"])
        h = norm(x, P[p + "ffn_norm.weight"])
        gt = lin(h, P[p + "ffn_gate.weight"])
        f = gt / (1.0 + np.exp(-gt)) * lin(h, P[p + "ffn_up.weight"])
        x = x + lin(norm(f, P[p + "ffn_sub_norm.weight"]), P[p + "ffn_down.weight"])
    x = norm(x, P["output_norm.weight"])
    return x @ (P["token_embd.weight"] if cfg["tied_head"] else P["output.weight"]).T

def cmd_selfcheck(args):
    torch.manual_seed(0)
    ok = True

    def report(what, err, tol):
        nonlocal ok
        good = err <= tol
        ok &= good
        print(f"  {'ok  ' if good else 'FAIL'} {what}: {err:.3e} (tol {tol:.0e})")

    print("1. BitLinear straight-through gradients (float64)")
    N, K, M = 7, 13, 5
    x = torch.randn(N, K, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(M, K, dtype=torch.float64) * 0.02).requires_grad_(True)
    dy = torch.randn(N, M, dtype=torch.float64)
    y = bitlinear(x, w)
    dx, dw = torch.autograd.grad(y, (x, w), dy)
    s_w = weight_scale(w)
    wq = weight_quant(w, s_w)
    xq, s_x = act_quant(x)
    report("forward == (xq Wq^T)(s_w/s_x)", (y - (xq @ wq.t()) * (s_w / s_x)).abs().max().item(), 0)
    report("dx == dy (Wq s_w)", (dx - dy @ (wq * s_w)).abs().max().item(), 0)
    report("dW == dy^T (xq/s_x)", (dw - dy.t() @ (xq / s_x)).abs().max().item(), 0)
    # finite differences of the surrogates with the quantizer replaced by identity:
    # f_x(x) = <dy, x (Wq s_w)^T>, f_w(W) = <dy, (xq/s_x) W^T>
    h = 1e-6
    fx = lambda xx: (dy * (xx @ (wq * s_w).t())).sum()
    fw = lambda ww: (dy * ((xq / s_x) @ ww.t())).sum()
    fd_x = torch.zeros_like(x)
    fd_w = torch.zeros_like(w)
    with torch.no_grad():
        for idx in np.ndindex(*x.shape):
            e = torch.zeros_like(x); e[idx] = h
            fd_x[idx] = (fx(x + e) - fx(x - e)) / (2 * h)
        for idx in np.ndindex(*w.shape):
            e = torch.zeros_like(w); e[idx] = h
            fd_w[idx] = (fw(w + e) - fw(w - e)) / (2 * h)
    report("dx vs finite differences (identity quantizer)", (dx - fd_x).abs().max().item(), 1e-7)
    report("dW vs finite differences (identity quantizer)", (dw - fd_w).abs().max().item(), 1e-7)
    yd = bitlinear_detach(x, w)
    dxd, dwd = torch.autograd.grad(yd, (x, w), dy)
    report("detach trick forward vs Function", (yd - y).abs().max().item(), 1e-12)
    report("detach trick dx vs Function", (dxd - dx).abs().max().item(), 1e-12)
    report("detach trick dW vs Function", (dwd - dw).abs().max().item(), 1e-12)

    print("2. whole tiny ternary model: Function vs detach trick (float32)")
    cfg = make_config(**FIXTURE_CFG, ternary=1, tied_head=1)
    P = random_params(cfg, 7)
    inp, tgt = random_batch(cfg, 2, 7)
    la, lossa, ga, _ = compute_all(P, cfg, inp, tgt)
    lb, lossb, gb, _ = compute_all(P, cfg, inp, tgt, linear=bitlinear_detach)
    report("loss", abs(lossa.item() - lossb.item()), 1e-4)
    report("grads max|d|/max|g|", max(((ga[k] - gb[k]).abs().max() / ga[k].abs().max()).item() for k in ga), 1e-2)

    print("3. torch.autograd.gradcheck, fp model (ternary=0), float64, GQA, untied and tied")
    for tied in (1, 0):
        cfg = make_config(dim=16, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=10, vocab_size=11, seq_len=5,
                          ternary=0, tied_head=tied)
        P = {k: v.double() for k, v in random_params(cfg, 11).items()}
        inp, tgt = random_batch(cfg, 2, 11)
        inp, tgt = torch.from_numpy(inp).long(), torch.from_numpy(tgt).long()
        names = [n for n, _ in param_shapes(cfg)]

        def fn(*ts):
            return forward(dict(zip(names, ts)), cfg, inp, tgt)[1]

        ts = tuple(P[n].clone().requires_grad_(True) for n in names)
        good = torch.autograd.gradcheck(fn, ts, eps=1e-6, atol=1e-7, rtol=1e-5, raise_exception=False)
        ok &= good
        print(f"  {'ok  ' if good else 'FAIL'} gradcheck tied_head={tied} ({sum(t.numel() for t in ts)} inputs)")

    print("4. RoPE / GQA spot checks")
    hd, T = 8, 5
    cos, sin = rope_tables(T, hd, 10000.0, torch.float64)
    xr = torch.randn(1, 1, T, hd, dtype=torch.float64)
    yr = rope(xr, cos, sin)
    t, j = 3, 2
    ang = t * 10000.0 ** (-2 * j / hd)
    e1 = xr[0, 0, t, j] * math.cos(ang) - xr[0, 0, t, j + hd // 2] * math.sin(ang)
    e2 = xr[0, 0, t, j + hd // 2] * math.cos(ang) + xr[0, 0, t, j] * math.sin(ang)
    report("rope pair (j, j+hd/2)", max(abs(yr[0, 0, t, j] - e1).item(), abs(yr[0, 0, t, j + hd // 2] - e2).item()), 1e-12)
    print("5. vectorised torch forward vs a literal float64 numpy loop version of the spec (fixtures)")
    for variant, over, _ in FIXTURE_VARIANTS:
        cfg = make_config(**{**FIXTURE_CFG, **over})
        P = random_params(cfg, 5)
        inp, _ = random_batch(cfg, 2, 5)
        with torch.no_grad():
            lt, _ = forward({k: v.double() for k, v in P.items()}, cfg, torch.from_numpy(inp).long())
        report(f"{variant} logits max|d|", float(np.abs(lt.numpy() - naive_forward(P, cfg, inp)).max()), 1e-9)
    print("selfcheck: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


# ----------------------------------------------------------------------------------------------
# Hugging Face layout: safetensors read/written with numpy (no safetensors package, no network),
# config.json, SentencePiece tokenizer.model, and an independent float32 PyTorch forward of
# transformers' LlamaForCausalLM and BitNetForCausalLM (as loaded with torch_dtype=float32), written
# from transformers' modeling code: LlamaRMSNorm, rotate_half RoPE with inv_freq (and the llama3
# rope_scaling formula of _compute_llama3_parameters), repeat_kv, eager causal attention, gated MLP;
# BitNet: attn_sub_norm before o_proj, ffn_sub_norm before down_proj, relu2, and its two BitLinears:
# AutoBitLinear online (bf16 masters: WeightQuant s = 1/mean|W|, round(W*s).clamp(-1,1)/s; ActQuant
# s = 127/absmax, round(x*s).clamp(-128,127)/s) and the packed BitLinear (unpack_weights: code in bits
# 2i of packed row p is row i*(out/4)+p, value code-1; y = (xq @ Wq^T) / (s_x * weight_scale)).

import json
import struct

ST_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I8": 1, "I32": 4, "I64": 8, "F64": 8, "BOOL": 1}


def bf16_bits(a):
    """float32 array -> uint16 bfloat16 bits, round to nearest even (NaN -> quiet NaN)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r[np.isnan(a)] = 0x7FC0
    return r


def bf16_to_f32(u16):
    return (np.asarray(u16, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def st_encode(arr, dtype):
    if dtype == "F32":
        return np.ascontiguousarray(arr, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(arr, dtype="<f2").tobytes()
    if dtype == "BF16":
        return bf16_bits(arr).astype("<u2").tobytes()
    if dtype == "U8":
        return np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    raise ValueError(dtype)


def st_write(path, tensors, metadata=None):
    """tensors: list of (name, dtype, array) in file order. Header padded with spaces to 8 bytes."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, arr in tensors:
        raw = st_encode(arr, dt)
        header[name] = {"dtype": dt, "shape": [int(x) for x in np.shape(arr)], "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def st_read(path):
    """-> dict name -> (dtype, np array: float32 for float dtypes, raw integers otherwise)."""
    data = open(path, "rb").read()
    if len(data) < 8:
        die(f"{path}: too short")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        die(f"{path}: header length past the end of the file")
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dt, shape, (b, en) = e["dtype"], e["shape"], e["data_offsets"]
        raw = data[base + b:base + en]
        if len(raw) != int(np.prod(shape, dtype=np.int64)) * ST_SIZE[dt]:
            die(f"{path}: {name}: size does not match shape")
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            a = bf16_to_f32(np.frombuffer(raw, dtype="<u2"))
        elif dt == "U8":
            a = np.frombuffer(raw, dtype=np.uint8).copy()
        else:
            die(f"{path}: {name}: dtype {dt} not handled by the reference")
        out[name] = (dt, a.reshape(shape))
    return out


def hf_read_dir(d):
    """config dict, weights dict name -> (dtype, array) from a model directory (single file or sharded)."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    idx = os.path.join(d, "model.safetensors.index.json")
    W = {}
    if os.path.exists(idx):
        wm = json.load(open(idx))["weight_map"]
        for shard in dict.fromkeys(wm.values()):
            W.update(st_read(os.path.join(d, shard)))
    else:
        W = st_read(os.path.join(d, "model.safetensors"))
    return cfg, W


# ---- tokenizer.model (SentencePiece ModelProto) -------------------------------------------------

def pb_varint(x):
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        out.append(b | 0x80 if x else b)
        if not x:
            return bytes(out)


def pb_bytes(field, data):
    return pb_varint(field << 3 | 2) + pb_varint(len(data)) + data


def pb_int(field, v):
    return pb_varint(field << 3) + pb_varint(v)


def spm_model_bytes(pieces, add_dummy_prefix=True):
    """pieces: list of (bytes, score, type) -> serialized ModelProto of a BPE model with byte fallback."""
    out = bytearray()
    for p, sc, ty in pieces:
        msg = pb_bytes(1, p) + pb_varint(2 << 3 | 5) + struct.pack("<f", sc)
        if ty != 1:
            msg += pb_int(3, ty)
        out += pb_bytes(1, msg)
    trainer = pb_int(3, 2) + pb_int(4, len(pieces)) + pb_int(35, 1) + pb_int(40, 0) + pb_int(41, 1) + pb_int(42, 2)
    out += pb_bytes(2, trainer)
    norm = pb_bytes(1, b"identity") + pb_int(3, 1 if add_dummy_prefix else 0) + pb_int(4, 0) + pb_int(5, 1)
    out += pb_bytes(3, norm)
    return bytes(out)


def read_tern_tokenizer(path):
    """tern tokenizer file (TERNTKZ v1) -> (pieces [(bytes, score, type)], add_space_prefix)."""
    data = open(path, "rb").read()
    if data[:8] != b"TERNTKZ\0":
        die(f"{path}: not a tern tokenizer file")
    ver, V, flags, _ = struct.unpack("<4I", data[8:24])
    if ver != 1:
        die(f"{path}: tokenizer file version {ver} (reads 1)")
    off, pieces = 24, []
    for _ in range(V):
        ty = data[off]
        (sc,) = struct.unpack("<f", data[off + 1:off + 5])
        (ln,) = struct.unpack("<H", data[off + 5:off + 7])
        pieces.append((data[off + 7:off + 7 + ln], sc, ty))
        off += 7 + ln
    return pieces, bool(flags & 1)


def fixture_pieces(V):
    """A small valid tern/LLaMA-2-layout vocabulary of V pieces (<unk> <s> </s>, 256 bytes, normal pieces)."""
    pieces = [(b"<unk>", 0.0, 2), (b"<s>", 0.0, 3), (b"</s>", 0.0, 3)]
    pieces += [(f"<0x{b:02X}>".encode(), 0.0, 6) for b in range(256)]
    words = ["\u2581", "e", "t", "a", "o", "n", "h", "s", "\u2581t", "\u2581a", "he", "in", "\u2581the", "er", "an",
             "re", "on", "\u2581s", "th", "nd", "\u2581w", "ou", "\u2581o", "ha", "is", "\u2581h"]
    for i, w in enumerate(words[:V - len(pieces)]):
        pieces.append((w.encode(), -float(i), 1))
    if len(pieces) != V:
        raise ValueError(f"fixture vocabulary holds at most {len(pieces)} pieces")
    return pieces


# ---- the Hugging Face forward --------------------------------------------------------------------

class HFQuantRecorder:
    active = None   # list of x*s values of every activation quantization (tie margins)


def hf_unpack(packed):
    """transformers' unpack_weights: uint8 [P, in] -> int codes - 1, [4P, in]; code i of row p -> row i*P + p."""
    P = packed.shape[0]
    out = np.zeros((4 * P,) + packed.shape[1:], dtype=np.int8)
    for i in range(4):
        out[i * P:(i + 1) * P] = ((packed >> (2 * i)) & 3).astype(np.int8)
    return out - 1


def hf_forward(cfg, W, input_ids):
    """Logits [B*T, vocab] (float32) of a LlamaForCausalLM / BitNetForCausalLM. W: name -> (dtype, array)."""
    arch = cfg["architectures"][0]
    bitnet = arch == "BitNetForCausalLM"
    d = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    hd = d // H
    eps = cfg["rms_norm_eps"]
    theta = float(cfg.get("rope_theta", 500000.0 if bitnet else 10000.0))
    act = cfg.get("hidden_act", "relu2" if bitnet else "silu")
    tied = cfg.get("tie_word_embeddings", False)
    B, T = input_ids.shape

    def w(name):
        return torch.from_numpy(np.ascontiguousarray(W[name][1]))

    def norm(x, wt):
        var = x.pow(2).mean(-1, keepdim=True)
        return wt * (x * torch.rsqrt(var + eps))

    def act_quant(x):
        s = 127 / x.abs().max(dim=-1, keepdim=True).values.clamp(min=1e-5)
        if HFQuantRecorder.active is not None:
            HFQuantRecorder.active.append((x * s).reshape(-1).clone())
        return (x * s).round().clamp(-128, 127), s

    def linear(x, name):
        if not bitnet:
            return x @ w(name + ".weight").t()
        if W[name + ".weight"][0] == "U8":           # packed BitLinear (offline)
            wq = torch.from_numpy(hf_unpack(W[name + ".weight"][1]).astype(np.float32))
            ws = w(name + ".weight_scale").reshape(-1)[0]
            xq, s = act_quant(x)
            return (xq @ wq.t()) / (s * ws)
        wt = w(name + ".weight")                      # AutoBitLinear, online quantization
        s = 1.0 / wt.abs().mean().clamp(min=1e-5)
        wq = (wt * s).round().clamp(-1, 1) / s
        xq, sx = act_quant(x)
        return (xq / sx) @ wq.t()

    # RotaryEmbedding: inv_freq (float32), llama3 scaling as _compute_llama3_parameters
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    rs = cfg.get("rope_scaling")
    if rs and (rs.get("rope_type") or rs.get("type")) == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wl, high_wl = old / lo, old / hi
        wavelen = 2 * math.pi / inv_freq
        inv_l = torch.where(wavelen > low_wl, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
        inv_freq = torch.where(medium, smoothed, inv_l)
    pos = torch.arange(T, dtype=torch.float32)
    freqs = pos[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()                    # [T, hd]

    def rotate_half(x):
        return torch.cat((-x[..., hd // 2:], x[..., :hd // 2]), dim=-1)

    E = w("model.embed_tokens.weight")
    x = E[torch.as_tensor(input_ids).long()]           # [B, T, d]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = norm(x, w(p + "input_layernorm.weight"))
        q = linear(h, p + "self_attn.q_proj").view(B, T, H, hd).transpose(1, 2)
        k = linear(h, p + "self_attn.k_proj").view(B, T, KV, hd).transpose(1, 2)
        v = linear(h, p + "self_attn.v_proj").view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k[:, :, None].expand(B, KV, H // KV, T, hd).reshape(B, H, T, hd)   # repeat_kv
        v = v[:, :, None].expand(B, KV, H // KV, T, hd).reshape(B, H, T, hd)
        att = torch.softmax(q @ k.transpose(2, 3) * hd ** -0.5 + mask, dim=-1, dtype=torch.float32)
        a = (att @ v).transpose(1, 2).reshape(B, T, H * hd)
        if bitnet:
            a = norm(a, w(p + "self_attn.attn_sub_norm.weight"))
        x = x + linear(a, p + "self_attn.o_proj")
        h = norm(x, w(p + "post_attention_layernorm.weight"))
        g = linear(h, p + "mlp.gate_proj")
        g = F.silu(g) if act == "silu" else torch.relu(g) ** 2
        f = g * linear(h, p + "mlp.up_proj")
        if bitnet:
            f = norm(f, w(p + "mlp.ffn_sub_norm.weight"))
        x = x + linear(f, p + "mlp.down_proj")
    x = norm(x, w("model.norm.weight"))
    head = E if tied else w("lm_head.weight")
    return (x @ head.t()).reshape(B * T, -1)


def hf_margins(cfg, W, inputs):
    """(activation tie margin relative, weight tie margin) of a BitNet model on inputs."""
    HFQuantRecorder.active = []
    with torch.no_grad():
        hf_forward(cfg, W, inputs)
    vals = torch.cat(HFQuantRecorder.active)
    HFQuantRecorder.active = None
    dist = (vals - torch.floor(vals) - 0.5).abs()
    act_rel = (dist / vals.abs().clamp(min=1.0)).min().item()
    wmin = float("inf")
    for name, (dt, a) in W.items():
        if a.ndim == 2 and "proj" in name and dt != "U8":
            t = torch.from_numpy(a.astype(np.float32))
            r = (t * (1.0 / t.abs().mean())).abs()
            wmin = min(wmin, (r - 0.5).abs().min().item())
    return act_rel, wmin


# ---- writing model directories -------------------------------------------------------------------

def hf_config(arch, c, max_pos, tied, rope_scaling=None, quant=None):
    bitnet = arch == "BitNetForCausalLM"
    cfg = {"architectures": [arch], "model_type": "bitnet" if bitnet else "llama", "hidden_size": c["dim"],
           "intermediate_size": c["ffn_dim"], "num_hidden_layers": c["n_layers"], "num_attention_heads": c["n_heads"],
           "num_key_value_heads": c["n_kv_heads"], "vocab_size": c["vocab_size"], "max_position_embeddings": max_pos,
           "rms_norm_eps": c["norm_eps"], "rope_theta": c["rope_theta"], "tie_word_embeddings": bool(tied),
           "hidden_act": "relu2" if c.get("ffn_act", 0) == 1 else "silu", "attention_bias": False,
           "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32", "rope_scaling": rope_scaling}
    if not bitnet:
        cfg["mlp_bias"] = False
    if quant:
        cfg["quantization_config"] = quant
    return cfg


HF_PROJ = [("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
           ("attn_output", "self_attn.o_proj"), ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
           ("ffn_down", "mlp.down_proj")]
HF_NORM = [("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"),
           ("attn_sub_norm", "self_attn.attn_sub_norm"), ("ffn_sub_norm", "mlp.ffn_sub_norm")]


def hf_tensors(c, P, dtype, packed=False, lm_head_when_tied=False, inv_freq=False):
    """tern-named float32 params P -> [(hf name, dtype, array)] in HF order. packed: projections as uint8 +
    F32 weight_scale (codes = round(W/mean|W|), weight_scale = 1/mean|W|, mean in float64)."""
    out = [("model.embed_tokens.weight", dtype, P["token_embd.weight"])]
    for l in range(c["n_layers"]):
        for tn, hn in HF_NORM:
            k = f"blk.{l}.{tn}.weight"
            if k in P:
                out.append((f"model.layers.{l}.{hn}.weight", dtype, P[k]))
        for tn, hn in HF_PROJ:
            a = np.asarray(P[f"blk.{l}.{tn}.weight"], dtype=np.float32)
            name = f"model.layers.{l}.{hn}"
            if packed:
                mean = np.float32(np.abs(a.astype(np.float64)).mean())
                q = np.clip(np.rint(a / mean), -1, 1).astype(np.int64)
                Pr = a.shape[0] // 4
                codes = (q + 1).astype(np.uint8)
                pk = np.zeros((Pr, a.shape[1]), dtype=np.uint8)
                for i in range(4):
                    pk |= codes[i * Pr:(i + 1) * Pr] << (2 * i)
                out.append((name + ".weight", "U8", pk))
                out.append((name + ".weight_scale", "F32", np.array([1.0 / np.float64(mean)], dtype=np.float32)))
            else:
                out.append((name + ".weight", dtype, a))
        if inv_freq:
            hd = c["dim"] // c["n_heads"]
            inv = 1.0 / (c["rope_theta"] ** (np.arange(0, hd, 2) / hd))
            out.append((f"model.layers.{l}.self_attn.rotary_emb.inv_freq", "F32", inv.astype(np.float32)))
    out.append(("model.norm.weight", dtype, P["output_norm.weight"]))
    if not c["tied_head"]:
        out.append(("lm_head.weight", dtype, P["output.weight"]))
    elif lm_head_when_tied:
        out.append(("lm_head.weight", dtype, P["token_embd.weight"]))
    return out


def hf_write_dir(out, config, tensors, shards=1, tokenizer_model=None):
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if f.endswith(".safetensors") or f in ("model.safetensors.index.json", "config.json", "tokenizer.model"):
            os.remove(os.path.join(out, f))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    if shards == 1:
        st_write(os.path.join(out, "model.safetensors"), tensors, {"format": "pt"})
    else:
        per = (len(tensors) + shards - 1) // shards
        wm, total = {}, 0
        for s in range(shards):
            fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = tensors[s * per:(s + 1) * per]
            st_write(os.path.join(out, fn), part, {"format": "pt"})
            for name, dt, a in part:
                wm[name] = fn
                total += int(np.prod(np.shape(a))) * ST_SIZE[dt]
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)
            f.write("\n")
    if tokenizer_model is not None:
        with open(os.path.join(out, "tokenizer.model"), "wb") as f:
            f.write(tokenizer_model)


# ---- hf-fixture ----------------------------------------------------------------------------------

HF_FIX_CFG = dict(dim=48, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=80, vocab_size=272, seq_len=12,
                  norm_eps=1e-5, rope_theta=10000.0)
HF_FIX_B = 2
HF_LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
             "original_max_position_embeddings": 64}
# name, arch, dtype, overrides, options
HF_FIXTURES = [
    ("llama_f32", "LlamaForCausalLM", "F32", dict(tied_head=1), dict()),
    ("llama_f16_untied", "LlamaForCausalLM", "F16", dict(tied_head=0, n_kv_heads=1), dict(rope_scaling=HF_LLAMA3)),
    ("llama_bf16_sharded", "LlamaForCausalLM", "BF16", dict(tied_head=1, rope_theta=500000.0),
     dict(shards=2, lm_head_when_tied=True, inv_freq=True)),
    ("bitnet_bf16", "BitNetForCausalLM", "BF16", dict(tied_head=1, ffn_act=1, rope_theta=500000.0), dict()),
]


def hf_random_params(c, seed, sub_norms):
    rng = np.random.default_rng(seed)
    cc = dict(c, sub_norms=sub_norms)
    P = {}
    for name, shape in param_shapes(cc):
        if len(shape) == 1:
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name in ("token_embd.weight", "output.weight"):
            a = 0.15 * rng.standard_normal(shape)
        else:
            a = 0.08 * rng.standard_normal(shape)
        P[name] = a.astype(np.float32)
    return P


def write_hf_expected(path, name, seed, inputs, logits, extra, pieces=None, add_prefix=True):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs.create("format", np.bytes_(b"tern-hf-expected"))
        f.attrs.create("format_version", np.int32(1))
        f.attrs.create("fixture", np.bytes_(name.encode()))
        f.attrs.create("seed", np.int64(seed))
        for k, v in extra.items():
            f.attrs.create(k, v)
        f.create_dataset("inputs", data=inputs.astype(np.int32))
        f.create_dataset("logits", data=logits.astype(np.float32))
        if pieces is not None:
            f.create_dataset("piece_bytes", data=np.frombuffer(b"".join(p for p, _, _ in pieces), dtype=np.uint8))
            f.create_dataset("piece_len", data=np.array([len(p) for p, _, _ in pieces], dtype=np.int32))
            f.create_dataset("piece_score", data=np.array([s for _, s, _ in pieces], dtype=np.float32))
            f.attrs.create("add_space_prefix", np.int32(1 if add_prefix else 0))
    os.replace(tmp, path)


def cmd_hf_fixture(args):
    root = args.out_dir
    os.makedirs(root, exist_ok=True)
    pieces = fixture_pieces(HF_FIX_CFG["vocab_size"])
    spm = spm_model_bytes(pieces)
    rng = np.random.default_rng(77)
    inputs = rng.integers(0, HF_FIX_CFG["vocab_size"], size=(HF_FIX_B, HF_FIX_CFG["seq_len"])).astype(np.int64)
    for name, arch, dtype, over, opt in HF_FIXTURES:
        c = make_config(**dict(HF_FIX_CFG, **over))
        bitnet = arch == "BitNetForCausalLM"
        quant = {"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "online"} if bitnet else None
        config = hf_config(arch, c, 64, c["tied_head"], opt.get("rope_scaling"), quant)
        best = None
        for s in range(1000, 1000 + (args.tries if bitnet else 1)):
            P = hf_random_params(c, s, 1 if bitnet else 0)
            T = hf_tensors(c, P, dtype, lm_head_when_tied=opt.get("lm_head_when_tied", False), inv_freq=opt.get("inv_freq", False))
            W = {n: (dt, st_roundtrip(a, dt)) for n, dt, a in T}
            m = hf_margins(config, W, inputs) if bitnet else (1.0, 1.0)
            key = m[0] if m[1] > 1e-4 else m[0] - 1.0
            if best is None or key > best[0]:
                best = (key, s, P, T, W, m)
        _, seed, P, T, W, m = best
        d = os.path.join(root, name)
        hf_write_dir(d, config, T, shards=opt.get("shards", 1), tokenizer_model=spm)
        cfg_r, W_r = hf_read_dir(d)
        with torch.no_grad():
            logits = hf_forward(cfg_r, W_r, inputs).numpy()
        extra = {"act_tie_margin_rel": np.float32(m[0]), "weight_tie_margin": np.float32(m[1])}
        write_hf_expected(os.path.join(root, name + "_expected.h5"), name, seed, inputs, logits, extra,
                          pieces if name == "llama_f32" else None)
        print(f"{name}: seed {seed}, margins act {m[0]:.2e} weight {m[1]:.2e}, logits |max| {np.abs(logits).max():.3f}, "
              f"{sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))} bytes")
        if bitnet:   # the packed form of the same masters
            Wf = {n: (dt, a) for n, (dt, a) in W_r.items()}
            Pm = {}
            for k, v in P.items():   # the masters as stored (bf16-rounded)
                Pm[k] = st_roundtrip(v, dtype)
            qcfg = {"quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"}
            config_p = hf_config(arch, c, 64, c["tied_head"], None, qcfg)
            Tp = hf_tensors(c, Pm, dtype, packed=True)
            dp = os.path.join(root, "bitnet_packed")
            hf_write_dir(dp, config_p, Tp, tokenizer_model=spm)
            cfg_p, W_p = hf_read_dir(dp)
            with torch.no_grad():
                lp = hf_forward(cfg_p, W_p, inputs).numpy()
            write_hf_expected(os.path.join(root, "bitnet_packed_expected.h5"), "bitnet_packed", seed, inputs, lp, extra)
            print(f"bitnet_packed: logits vs bitnet_bf16 max|d|/max {np.abs(lp - logits).max() / np.abs(logits).max():.2e}, "
                  f"{sum(os.path.getsize(os.path.join(dp, f)) for f in os.listdir(dp))} bytes")
            del Wf


def st_roundtrip(a, dtype):
    """The float32 values a tensor has after being stored as dtype."""
    if dtype == "F32" or dtype == "U8":
        return np.asarray(a)
    if dtype == "F16":
        return np.asarray(a, dtype=np.float32).astype(np.float16).astype(np.float32)
    return bf16_to_f32(bf16_bits(a)).reshape(np.shape(a))


def cmd_hf_check(args):
    cfg, W = hf_read_dir(args.dir)
    with h5py.File(args.expected, "r") as f:
        inputs = f["inputs"][...].astype(np.int64)
        want = f["logits"][...]
    with torch.no_grad():
        got = hf_forward(cfg, W, inputs).numpy()
    rel = np.abs(got - want).max() / np.abs(want).max()
    print(f"hf-check {args.dir}: logits max|d|/max|ref| = {rel:.3e}")
    return 0 if rel <= 1e-5 else 1


# ---- hf-export: a tern checkpoint as a Hugging Face directory ------------------------------------

def cmd_hf_export(args):
    c, P = load_checkpoint(args.ckpt)
    P = {k: v.numpy() for k, v in P.items()}
    arch = "BitNetForCausalLM" if c["ternary"] else "LlamaForCausalLM"
    if c["ternary"] and not c.get("sub_norms", 1):
        die(f"{args.ckpt}: a ternary model without sub-norms is not a BitNetForCausalLM")
    if not c["ternary"] and c.get("sub_norms", 1):
        die(f"{args.ckpt}: a full-precision model with sub-norms is not a LlamaForCausalLM (train with sub_norms=0)")
    rs = None
    if c.get("rope_scaling", 0) == 1:
        rs = {"rope_type": "llama3", "factor": c["rope_scaling_factor"], "low_freq_factor": c["rope_low_freq_factor"],
              "high_freq_factor": c["rope_high_freq_factor"], "original_max_position_embeddings": c["rope_original_ctx"]}
    quant = None
    if c["ternary"]:
        quant = {"quant_method": "bitnet", "linear_class": "bitlinear" if args.packed else "autobitlinear",
                 "quantization_mode": "offline" if args.packed else "online"}
    elif args.packed:
        die("--packed needs a ternary checkpoint")
    config = hf_config(arch, c, c["seq_len"], c["tied_head"], rs, quant)
    config["torch_dtype"] = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[args.dtype]
    spm = None
    tok = args.tokenizer
    if tok:
        pieces, prefix = read_tern_tokenizer(tok)
        spm = spm_model_bytes(pieces, prefix)
    else:
        with h5py.File(args.ckpt, "r") as f:
            if "tokenizer" in f:
                tmp = args.out.rstrip("/") + ".tok.tmp"
                open(tmp, "wb").write(f["tokenizer"][...].tobytes())
                pieces, prefix = read_tern_tokenizer(tmp)
                os.remove(tmp)
                spm = spm_model_bytes(pieces, prefix)
    hf_write_dir(args.out, config, hf_tensors(c, P, args.dtype, packed=args.packed), shards=args.shards, tokenizer_model=spm)
    print(f"hf-export: wrote {args.out} ({arch}, {args.dtype}{', packed' if args.packed else ''}, "
          f"{'with' if spm else 'no'} tokenizer.model)")
    return 0


# ---- hf-random: a random model of a known shape ---------------------------------------------------

HF_PRESETS = {
    # SmolLM-135M's config.json (HuggingFaceTB/SmolLM-135M): LlamaForCausalLM
    "smollm-135m": dict(dim=576, n_layers=30, n_heads=9, n_kv_heads=3, ffn_dim=1536, vocab_size=49152, seq_len=2048,
                        norm_eps=1e-5, rope_theta=10000.0, tied_head=1, ternary=0, sub_norms=0),
}


def cmd_hf_random(args):
    c = make_config(**HF_PRESETS[args.preset])
    rng = np.random.default_rng(args.seed)
    P = {}
    for name, shape in param_shapes(c):
        P[name] = np.ones(shape, np.float32) if len(shape) == 1 else (0.02 * rng.standard_normal(shape, dtype=np.float32))
    spm = None
    if args.tokenizer:
        pieces, prefix = read_tern_tokenizer(args.tokenizer)
        spm = spm_model_bytes(pieces, prefix)
    config = hf_config("LlamaForCausalLM", c, c["seq_len"], c["tied_head"])
    config["torch_dtype"] = "bfloat16"
    hf_write_dir(args.out, config, hf_tensors(c, P, args.dtype), shards=args.shards, tokenizer_model=spm)
    n = sum(int(np.prod(s)) for _, s in param_shapes(c))
    print(f"hf-random: wrote {args.out}: {args.preset}, {n / 1e6:.1f}M parameters, {args.dtype}, "
          f"{'tokenizer.model from ' + args.tokenizer if spm else 'no tokenizer'}")
    return 0


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(prog=PROG, description="PyTorch reference of the tern model")
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("fixture", help="write tests/fixtures/ref_tiny_*.h5")
    p.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
    p.add_argument("--variant", default="", help="only this variant (default: all)")
    p = sub.add_parser("check", help="recompute an expected file from a checkpoint")
    p.add_argument("ckpt")
    p.add_argument("expected")
    p = sub.add_parser("eval", help="mean loss of a checkpoint over token windows")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--seq", type=int, default=0, help="window length (default: the checkpoint's seq_len)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-windows", type=int, default=0)
    p.add_argument("--header-bytes", type=int, default=0, help="bytes to skip in a raw token file")
    p.add_argument("--dtype", choices=["int32", "uint32", "uint16"], default="int32", help="raw token file element type")
    p.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("bench", help="time training steps of the small config")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--which", choices=["both", "ternary", "fp"], default="both")
    sub.add_parser("selfcheck", help="STE / gradcheck self-checks")
    p = sub.add_parser("hf-fixture", help="write the Hugging Face layout fixtures tests/fixtures/hf/")
    p.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "hf"))
    p.add_argument("--tries", type=int, default=60, help="seeds tried for the BitNet fixtures (tie margins)")
    p = sub.add_parser("hf-check", help="recompute a Hugging Face fixture's expected logits")
    p.add_argument("dir")
    p.add_argument("expected")
    p = sub.add_parser("hf-export", help="write a tern checkpoint as a Hugging Face model directory")
    p.add_argument("ckpt")
    p.add_argument("out")
    p.add_argument("--dtype", choices=["F32", "F16", "BF16"], default="BF16")
    p.add_argument("--packed", action="store_true", help="BitNet: uint8 ternary codes + weight_scale")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--tokenizer", help="tern tokenizer file for tokenizer.model (default: the checkpoint's)")
    p = sub.add_parser("hf-random", help="a random-weight Hugging Face model of a known shape")
    p.add_argument("out")
    p.add_argument("--preset", choices=sorted(HF_PRESETS), default="smollm-135m")
    p.add_argument("--dtype", choices=["F32", "F16", "BF16"], default="BF16")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tokenizer", help="tern tokenizer file written as tokenizer.model (padded to the vocab at import)")
    args = ap.parse_args()
    torch.set_num_threads(getattr(args, "threads", 2))
    if args.mode == "fixture":
        return cmd_fixture(args) or 0
    if args.mode == "check":
        return cmd_check(args)
    if args.mode == "eval":
        return cmd_eval(args)
    if args.mode == "bench":
        return cmd_bench(args)
    if args.mode == "hf-fixture":
        return cmd_hf_fixture(args) or 0
    if args.mode == "hf-check":
        return cmd_hf_check(args)
    if args.mode == "hf-export":
        return cmd_hf_export(args)
    if args.mode == "hf-random":
        return cmd_hf_random(args)
    return cmd_selfcheck(args)


if __name__ == "__main__":
    sys.exit(main())
