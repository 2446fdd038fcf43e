"""examples/python with Debian's torch: the compact Qwen3ForCausalLM's greedy tokens against
transformers' (tests/data/hf/*/reference_ext.json) and the C++ engine's, its kernel choices, and the
loader that decides before it reads a weight."""

import json
import math
import os
import shutil
import struct
import warnings

import pytest

import fusecheck
from conftest import HF_MODELS, hf_checkpoint, need_torch, reference, run_cli

N_SEQ = 3  # the first three reference sequences (7, 16 and 33 tokens)


def model_for(path, **kw):
    need_torch()
    import qwen3_with_compatibility as q

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = q.Qwen3ForCausalLM(q.Config(path, kw.pop("kernels", "fused")), **kw)
    q.load_weights(m, path)
    return m, [str(w.message) for w in caught]


def engine_greedy(path, prompt, n, *flags):
    cli = run_cli("generate", path, "--token-ids", ",".join(map(str, prompt)), "-n", str(n),
                  "--temperature", "0", "--json", *flags)
    assert cli.returncode == 0, cli.stderr
    return json.loads(cli.stdout)["token_ids"]


def assert_same_or_tie(ours, logits, want, dtype, what):
    """Equal tokens; for bf16, a divergence is allowed only at a near-tie: where the reference's
    token scores within 4 bf16 ulps of our top one (a one-ulp difference in a sum's order may flip
    it; tests/test_model_hf.cpp applies the same rule to the C++ engine). Later tokens then follow
    different contexts and are not compared."""
    for step, (a, b) in enumerate(zip(ours, want)):
        if a != b:
            assert dtype == "bf16", f"{what}: fp32 greedy diverges at step {step}: {a} vs {b}"
            top, theirs = float(logits[step][a]), float(logits[step][b])
            assert top - theirs <= 4 * math.ldexp(abs(top), -8), f"{what}: step {step}, margin {top - theirs}"
            return step
    assert len(ours) == len(want)
    return None


@pytest.mark.parametrize("name", HF_MODELS)
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_standard_greedy_matches_transformers_and_the_engine(name, dtype):
    path = hf_checkpoint(name, dtype)
    ref = reference(name, "reference_ext")
    m, _ = model_for(path)
    assert not m.use_fused
    for i in range(N_SEQ):
        prompt, want = ref["sequences"][i], ref[f"greedy_{dtype}"][i]
        ours, logits = m.generate_greedy(prompt, len(want))
        assert_same_or_tie(ours, logits, want, dtype, f"{name}/{dtype} seq {i} vs transformers")
        eng = engine_greedy(path, prompt, len(want))
        assert_same_or_tie(ours, logits, eng, dtype, f"{name}/{dtype} seq {i} vs engine")


@pytest.mark.parametrize("name", ["qwen3-tiny-extreme", "qwen3-tiny"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_fused_path_greedy(name, dtype):
    """The fused path keeps more in fp32, so on these checkpoints its greedy tokens are
    transformers' (fp32 exactly; bf16 but for near-ties) and the C++ engine's fused path's."""
    path = hf_checkpoint(name, dtype)
    ref = reference(name, "reference_ext")
    m, msgs = model_for(path, use_custom_kernels=True, force_fused=True)
    assert m.use_fused and m.decision.source == "forced"
    for i in range(N_SEQ):
        prompt, want = ref["sequences"][i], ref[f"greedy_{dtype}"][i]
        ours, logits = m.generate_greedy(prompt, len(want))
        assert_same_or_tie(ours, logits, want, dtype, f"{name}/{dtype} fused seq {i} vs transformers")
        eng = engine_greedy(path, prompt, len(want), "--kernels", "fused", "--force-fused-kernels")
        assert_same_or_tie(ours, logits, eng, dtype, f"{name}/{dtype} fused seq {i} vs engine")


def test_constructor_follows_the_decision():
    need_torch()
    import qwen3_with_compatibility as q

    extreme = hf_checkpoint("qwen3-tiny-extreme", "bf16")
    # INCOMPATIBLE (generic, the original max-gain screen): falls back with the load-time warning.
    m, msgs = model_for(extreme, kernels="generic", use_custom_kernels=True)
    assert not m.use_fused and m.decision.verdict == "INCOMPATIBLE"
    assert any("Falling back to standard kernels" in w for w in msgs)
    # ... raises under strict, before any weight exists.
    with pytest.raises(fusecheck.IncompatibleModelError):
        q.Qwen3ForCausalLM(q.Config(extreme, "generic"), use_custom_kernels=True, strict=True)
    # WARNING (per-tensor int8 KV on a 4-layer model: under the INCOMPATIBLE rule): fused, warned.
    m, msgs = model_for(extreme, kernels="fused-int8kv", use_custom_kernels=True)
    assert m.use_fused and m.decision.verdict == "WARNING" and any(w.startswith("WARNING") for w in msgs)
    # COMPATIBLE: fused, silently. Not requested: no check at all.
    m, msgs = model_for(hf_checkpoint("qwen3-tiny", "bf16"), use_custom_kernels=True)
    assert m.use_fused and m.decision.verdict == "COMPATIBLE" and not msgs
    m, msgs = model_for(extreme)
    assert m.decision is None and not m.use_fused and not msgs


def test_fused_and_standard_differ_where_the_check_says():
    """On the extreme bf16 checkpoint the two paths' logits differ measurably (the k_norm gains of
    96.5 amplify the rounding the fused path removes); on qwen3-tiny they stay within bf16 noise."""
    need_torch()
    import torch

    def rel(name):
        path = hf_checkpoint(name, "bf16")
        prompt = reference(name, "reference_ext")["sequences"][2]
        std, _ = model_for(path)
        fused, _ = model_for(path, force_fused=True)
        a = std.forward(torch.tensor(prompt), torch.arange(len(prompt)), [[] for _ in std.model.layers])
        b = fused.forward(torch.tensor(prompt), torch.arange(len(prompt)), [[] for _ in std.model.layers])
        return float((a.float() - b.float()).norm() / b.float().norm())

    assert rel("qwen3-tiny-extreme") > rel("qwen3-tiny")


def poison_tensor(path, name):
    """Overwrites tensor `name`'s bytes in PATH/model.safetensors with NaN (bf16 0x7fc0)."""
    st = os.path.join(path, "model.safetensors")
    data = bytearray(open(st, "rb").read())
    (n,) = struct.unpack("<Q", data[:8])
    info = json.loads(data[8 : 8 + n])[name]
    assert info["dtype"] == "BF16"
    b, e = (8 + n + o for o in info["data_offsets"])
    data[b:e] = b"\xc0\x7f" * ((e - b) // 2)
    open(st, "wb").write(bytes(data))


def test_loader_decides_before_reading_any_weight(tmp_path, monkeypatch):
    need_torch()
    import model_loader_with_compatibility as loader
    import qwen3_with_compatibility as q
    import safetensors_io

    path = str(tmp_path / "poisoned")
    shutil.copytree(hf_checkpoint("qwen3-tiny-extreme", "bf16"), path)
    poison_tensor(path, "model.layers.0.self_attn.q_proj.weight")
    events = []
    real_decide, real_open = fusecheck.decide_kernels, safetensors_io.safe_open
    monkeypatch.setattr(fusecheck, "decide_kernels", lambda *a, **k: events.append("decide") or real_decide(*a, **k))
    monkeypatch.setattr(safetensors_io, "safe_open", lambda *a, **k: events.append("open") or real_open(*a, **k))
    model = q.Qwen3ForCausalLM(q.Config(path))
    # strict + INCOMPATIBLE: refused before the poisoned weights are read (they would fail loading).
    with pytest.raises(fusecheck.IncompatibleModelError):
        loader.load_model(model, path, kernels="generic", strict=True)
    assert events == ["decide"]
    # Not strict: the decision is made and handed to the model first, then loading meets the NaN.
    seen = []
    model.set_kernels = lambda d: seen.append((list(events), d.use_fused))
    events.clear()
    with pytest.warns(RuntimeWarning, match="Falling back"):
        with pytest.raises(ValueError, match="q_proj.weight holds NaN"):
            loader.load_model(model, path, kernels="generic")
    assert events == ["decide", "open"] and seen == [(["decide"], False)]


def test_loader_loads_the_checkpoint():
    need_torch()
    import torch
    import model_loader_with_compatibility as loader
    import qwen3_with_compatibility as q

    path = hf_checkpoint("qwen3-tiny", "bf16")
    a = q.Qwen3ForCausalLM(q.Config(path))
    d = loader.load_model(a, path)
    assert d.use_fused and d.verdict == "COMPATIBLE"
    b = q.Qwen3ForCausalLM(q.Config(path))
    q.load_weights(b, path)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def position_distances(a, b):
    """||a - b|| / ||b|| per position (rows of [T, vocab] logits)."""
    return ((a.float() - b.float()).norm(dim=-1) / b.float().norm(dim=-1)).tolist()


def median(xs):
    return sorted(xs)[len(xs) // 2]


@pytest.mark.parametrize("name", HF_MODELS)
def test_standard_logits_round_where_transformers_rounds(name):
    """The example's logits against transformers': fp32 within 1e-4; bf16 far closer to
    transformers' bf16 logits than the fp32 computation is (the standard path rounds where PyTorch
    eager rounds), at the median position of the three sequences. (One bf16 rounding that lands on
    the other side of a tie is carried to every later position of its sequence: the median shows
    the typical position; tests/test_model_hf.cpp judges the C++ engine the same way.)"""
    need_torch()
    import torch
    from safetensors_io import safe_open

    ext = os.path.join(os.path.dirname(hf_checkpoint(name, "fp32")), "reference_ext.safetensors")
    ext = ext if os.path.exists(ext) else os.path.join(
        os.path.dirname(__file__), "..", "data", "hf", name, "reference_ext.safetensors")
    base = os.path.join(os.path.dirname(hf_checkpoint(name, "fp32")), "reference.safetensors")
    ref = reference(name, "reference_ext")
    m32, _ = model_for(hf_checkpoint(name, "fp32"))
    m16, _ = model_for(hf_checkpoint(name, "bf16"))
    d_ours, d_fp32 = [], []
    with safe_open(ext) as fe, safe_open(base if os.path.exists(base) else ext) as fb:
        for i in range(N_SEQ):
            p = ref["sequences"][i]
            args = (torch.tensor(p), torch.arange(len(p)))
            f32 = fb.get_tensor(f"logits_fp32.{i}").reshape(len(p), -1)
            b16 = fe.get_tensor(f"logits_bf16.{i}").reshape(len(p), -1)
            ours32 = m32.forward(*args, [[] for _ in m32.model.layers])
            ours16 = m16.forward(*args, [[] for _ in m16.model.layers])
            err32 = float((ours32 - f32).norm(dim=-1).max() / f32.norm(dim=-1).min())
            assert err32 < 1e-4, (name, i, err32)
            d_ours += position_distances(ours16, b16)
            d_fp32 += position_distances(f32, b16)
    print(f"{name}: bf16 logits vs transformers bf16, median position: example {median(d_ours):.3g}, "
          f"fp32 {median(d_fp32):.3g}")
    assert median(d_ours) < 0.1 * median(d_fp32)
