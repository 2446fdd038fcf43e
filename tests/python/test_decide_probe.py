"""decide_kernels against the C++ engine's own load-time decision (`fusecheck generate
--use-custom-kernels`), probe() against `fusecheck probe --json`, and both from several threads."""

import json
import os
import re
import threading
import time

import pytest

import fusecheck
from conftest import hf_checkpoint, run_cli

EXTREME = ("qwen3-tiny-extreme", "bf16")


def engine_outcome(path, *flags, cache_dir):
    """The kernels line the C++ engine prints at load (`kernels: fused (warning) (...)`)."""
    cli = run_cli("generate", path, "--token-ids", "1,2", "-n", "1", "--temperature", "0", "--json", *flags,
        env={"XDG_CACHE_HOME": os.path.dirname(cache_dir)})
    m = re.search(r"^kernels: (.*) \([^()]*; decided in", cli.stderr, re.M)
    return cli, (m.group(1) if m else None)


@pytest.mark.parametrize("name,dtype,kernels", [
    ("qwen3-tiny-extreme", "bf16", "fused"),
    ("qwen3-tiny-extreme", "bf16", "fused-int8kv"),
    ("qwen3-tiny-extreme", "fp32", "generic"),
    ("qwen3-tiny", "bf16", "fused"),
    ("qwen3-tiny", "bf16", "fused-int8kv"),
])
def test_decision_matches_the_engine(name, dtype, kernels, cache_dir):
    path = hf_checkpoint(name, dtype)
    d = fusecheck.decide_kernels(path, kernels, cache_dir=cache_dir)
    cli, outcome = engine_outcome(path, "--kernels", kernels, cache_dir=cache_dir)
    assert cli.returncode == 0, cli.stderr
    assert d.outcome == outcome
    static = fusecheck.check_model(path, kernels, use_cache=False).verdict
    assert d.verdict == d.static_verdict == static and d.source == "static"
    assert d.use_fused == (static != "INCOMPATIBLE")
    if d.message:
        assert d.message in cli.stderr
    if static == "INCOMPATIBLE":
        assert "Falling back to standard kernels" in d.message
    elif static == "WARNING":
        assert d.message.startswith("WARNING:")
    else:
        assert d.message == ""


def test_strict_and_force(cache_dir):
    # generic: the original max-gain screen, which calls the extreme checkpoint INCOMPATIBLE.
    path = hf_checkpoint(*EXTREME)
    with pytest.raises(fusecheck.IncompatibleModelError) as e:
        fusecheck.decide_kernels(path, "generic", strict=True, cache_dir=cache_dir)
    assert "INCOMPATIBLE" in str(e.value) and e.value.decision.verdict == "INCOMPATIBLE"
    cli, _ = engine_outcome(path, "--kernels", "generic", "--strict", cache_dir=cache_dir)
    assert cli.returncode == 3  # the engine refuses too
    d = fusecheck.decide_kernels(path, "generic", force=True, cache_dir=cache_dir)
    assert d.use_fused and d.source == "forced" and d.verdict == "INCOMPATIBLE"
    assert d.message.startswith("NOTICE: fused kernels (generic) FORCED")
    _, outcome = engine_outcome(path, "--kernels", "generic", "--force-fused-kernels", cache_dir=cache_dir)
    assert outcome == d.outcome == "fused (forced)"
    os.environ["FUSECHECK_FORCE_FUSED"] = "1"
    try:
        assert fusecheck.decide_kernels(path, "generic", cache_dir=cache_dir).source == "forced"
    finally:
        del os.environ["FUSECHECK_FORCE_FUSED"]
    # strict on a model that passes is no error
    assert fusecheck.decide_kernels(hf_checkpoint("qwen3-tiny", "bf16"), strict=True,
                                    cache_dir=cache_dir).use_fused


def test_unreadable_checkpoint_falls_back_or_raises(tmp_path, cache_dir):
    missing = str(tmp_path / "nope")
    d = fusecheck.decide_kernels(missing, cache_dir=cache_dir)
    assert not d.use_fused and d.verdict is None and d.check_error
    assert d.check_error in d.message
    with pytest.raises(fusecheck.CheckError) as e:
        fusecheck.decide_kernels(missing, strict=True, cache_dir=cache_dir)
    assert str(e.value) == d.check_error
    with pytest.raises(fusecheck.CheckError):
        fusecheck.decide_kernels(hf_checkpoint("qwen3-tiny", "bf16"), "no-such-profile")


def without_seconds(d):
    d = dict(d)
    d.pop("seconds")
    return d


def test_probe_to_dict_is_the_cli_json_and_outranks_the_screen(cache_dir):
    path = hf_checkpoint(*EXTREME)
    p = fusecheck.probe(path, "fused-int8kv", cache_dir=cache_dir, tokens=32, greedy_tokens=8)
    cli = run_cli("probe", path, "--kernels", "fused-int8kv", "--json", "--no-cache",
                  "--tokens", "32", "--greedy-tokens", "8")
    assert cli.returncode == (0 if p.verdict == "COMPATIBLE" else 2), cli.stderr
    want = json.loads(cli.stdout)
    assert without_seconds(p.to_dict()) == without_seconds(want)
    assert p.to_dict()["schema"] == "fusecheck.probe/1" and len(p.layers) == 4
    # The cached measurement now decides, as it does in the engine.
    d = fusecheck.decide_kernels(path, "fused-int8kv", cache_dir=cache_dir)
    assert d.source == "probe" and d.measured_verdict == p.verdict == d.verdict
    assert d.static_verdict == fusecheck.check_model(path, "fused-int8kv", use_cache=False).verdict
    _, outcome = engine_outcome(path, "--kernels", "fused-int8kv", cache_dir=cache_dir)
    assert outcome == d.outcome


def test_probe_sequences():
    path = hf_checkpoint("qwen3-tiny", "fp32")
    p = fusecheck.probe(path, "fused", sequences=[[1, 2, 3, 4, 5, 6], [7, 8, 9, 10]],
                        use_cache=False, greedy_tokens=4)
    assert p.to_dict()["sequences"] == 2 and p.to_dict()["positions"] == 10
    with pytest.raises(fusecheck.CheckError):
        fusecheck.probe(path, sequences=[[1]], use_cache=False)


def test_concurrent_checks_equal_serial_ones():
    jobs = [(hf_checkpoint(n, t), k) for n in ("qwen3-tiny-extreme", "qwen3-tiny", "qwen2-tiny")
            for t in ("bf16", "fp32") for k in ("generic", "fused")]
    serial = {j: fusecheck.check_model(*j, use_cache=False).to_dict() for j in jobs}
    got, errors = {}, []

    def work(j):
        try:
            for _ in range(3):
                got.setdefault(j, []).append(fusecheck.check_model(*j, use_cache=False).to_dict())
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(j,)) for j in jobs]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    for j in jobs:
        assert got[j] == [serial[j]] * 3


def test_probe_releases_the_gil():
    """While a probe runs in one thread the interpreter keeps running others: the longest pause of
    a ticking thread stays far below the probe's duration (holding the GIL would stop it)."""
    path = hf_checkpoint("qwen3-tiny", "fp32")
    window, ticks = {}, []

    def run():
        window["start"] = time.monotonic()
        fusecheck.probe(path, "fused", use_cache=False, tokens=128, greedy_tokens=32)
        window["end"] = time.monotonic()

    t = threading.Thread(target=run)
    t.start()
    while t.is_alive():
        ticks.append(time.monotonic())
        time.sleep(0.001)
    t.join()
    inside = [x for x in ticks if window["start"] <= x <= window["end"]]
    span = window["end"] - window["start"]
    assert span > 0.05, f"probe took {span:.3f} s, too short to tell"
    gaps = [b - a for a, b in zip([window["start"]] + inside, inside + [window["end"]])]
    assert max(gaps) < span / 2, (max(gaps), span)


def test_concurrent_decisions_and_probes(cache_dir):
    path = hf_checkpoint(*EXTREME)
    results, errors = [], []

    def work(i):
        try:
            if i % 2:
                results.append(fusecheck.probe(path, "fused", use_cache=False, tokens=16,
                                               greedy_tokens=4).verdict)
            else:
                results.append(fusecheck.decide_kernels(path, "fused", cache_dir=cache_dir).outcome)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and len(results) == 6


def test_force_status_env_reaches_the_decision(cache_dir):
    path = hf_checkpoint("qwen3-tiny", "bf16")
    os.environ["FUSECHECK_FORCE_STATUS"] = "INCOMPATIBLE"
    try:
        d = fusecheck.decide_kernels(path, cache_dir=cache_dir)
    finally:
        del os.environ["FUSECHECK_FORCE_STATUS"]
    _, outcome = engine_outcome(path, "--use-custom-kernels", cache_dir=cache_dir)
    cli = run_cli("generate", path, "--token-ids", "1,2", "-n", "1", "--temperature", "0", "--json",
                  "--use-custom-kernels", env={"XDG_CACHE_HOME": os.path.dirname(cache_dir),
                                               "FUSECHECK_FORCE_STATUS": "INCOMPATIBLE"})
    assert d.verdict == "INCOMPATIBLE" and not d.use_fused
    assert f"kernels: {d.outcome} (" in cli.stderr and outcome == "fused"


def test_decision_offers_a_stored_plan_like_the_engine(tmp_path, cache_dir):
    """The full profile measured INCOMPATIBLE, then `fusecheck plan` stores a plan in the default
    database: decide_kernels reports that plan, layer by layer as the plan file has it, and the
    engine runs it at load."""
    path = hf_checkpoint(*EXTREME)
    env = {"XDG_CACHE_HOME": os.path.dirname(cache_dir)}
    probe = run_cli("probe", path, "--kernels", "fused-int8kv", "--greedy-tokens", "0", env=env)
    assert probe.returncode == 2, probe.stderr  # INCOMPATIBLE, recorded in the database
    before = fusecheck.decide_kernels(path, "fused-int8kv", cache_dir=cache_dir)
    assert before.outcome == "standard (fallback)" and before.plan is None
    out = str(tmp_path / "plan.json")
    plan = run_cli("plan", path, "--kernels", "fused-int8kv", "-q", "--out", out, env=env)
    assert plan.returncode == 0, plan.stderr
    with open(out) as f:
        written = json.load(f)
    d = fusecheck.decide_kernels(path, "fused-int8kv", cache_dir=cache_dir, strict=True)
    assert d.outcome == "fused (per-layer plan)" and d.source == "plan" and not d.use_fused
    assert d.verdict == "INCOMPATIBLE" and "using the stored per-layer plan" in d.message
    assert [(sorted(l["fused"]), l["kv"]) for l in d.plan] == \
        [(sorted(l["fused"]), l["kv"]) for l in written["layers"]]
    cli, outcome = engine_outcome(path, "--kernels", "fused-int8kv", cache_dir=cache_dir)
    assert cli.returncode == 0, cli.stderr
    assert outcome == d.outcome and d.message in cli.stderr
    # Plans and measurements are per device: on "cuda" neither the CPU's plan nor its probe
    # measurement applies, so the static verdict decides there.
    gpu = fusecheck.decide_kernels(path, "fused-int8kv", cache_dir=cache_dir, device="cuda")
    assert gpu.plan is None and gpu.source == "static", (gpu.source, gpu.message)
    with pytest.raises(ValueError):
        fusecheck.decide_kernels(path, "fused-int8kv", cache_dir=cache_dir, device="tpu")
