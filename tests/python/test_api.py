"""fusecheck's Python API against the CLI built from the same tree: to_dict() is the CLI's JSON,
reports are the CLI's reports, errors carry the CLI's one-line message."""

import json
import os
import shutil

import pytest

import fusecheck
from conftest import HF_MODELS, hf_checkpoint, run_cli

KERNELS = ["generic", "fused", "fused-int8kv"]
EXIT = {"COMPATIBLE": 0, "WARNING": 1, "INCOMPATIBLE": 2}


@pytest.mark.parametrize("name", HF_MODELS)
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
@pytest.mark.parametrize("kernels", KERNELS)
def test_check_to_dict_is_the_cli_json(name, dtype, kernels):
    path = hf_checkpoint(name, dtype)
    r = fusecheck.check_model(path, kernels, use_cache=False)
    cli = run_cli("check", path, "--kernels", kernels, "--format", "json", "--no-cache")
    assert cli.returncode == EXIT[r.verdict], cli.stderr
    want = json.loads(cli.stdout)
    assert r.to_dict() == want
    assert r.verdict == want["verdict"] and r.score == want["score"]["total"]
    assert r.issues == want["score"]["issues"]
    assert r.kernels == kernels and r.fingerprint == want["fingerprint"]
    assert len(r.layers) == want["config"]["num_layers"]


def test_known_verdicts():
    # qwen3-tiny-extreme's k_norm gains reach 96.5 (like Qwen3-0.6B's); qwen3-tiny's are near 1.
    extreme = hf_checkpoint("qwen3-tiny-extreme", "bf16")
    assert fusecheck.check_model(extreme, "generic", use_cache=False).verdict == "INCOMPATIBLE"
    r = fusecheck.check_model(extreme, "fused", use_cache=False)
    # The lossless profile's verdict is the CLI's (its fitted rules, docs/VALIDATION.md); the
    # findings still name the gain.
    cli = run_cli("check", extreme, "--kernels", "fused", "--no-cache", "--format", "json")
    assert r.verdict == json.loads(cli.stdout)["verdict"]
    assert any("k_norm max gain 96.50" in i for i in r.issues)
    k1 = r.layers[1]["norms"]["k_norm"]
    assert k1["max_abs"] == 96.5 and r.layers[1]["layer"] == 1
    assert fusecheck.check_model(hf_checkpoint("qwen3-tiny", "bf16"), use_cache=False).verdict == "COMPATIBLE"


@pytest.mark.parametrize("fmt", ["text", "markdown", "model-card", "json"])
def test_report_is_the_cli_report(fmt):
    path = hf_checkpoint("qwen3-tiny-extreme", "bf16")
    r = fusecheck.check_model(path, "fused", use_cache=False)
    cli = run_cli("check", path, "--kernels", "fused", "--format", fmt, "--no-cache", "--color", "never")
    assert r.report(fmt) == cli.stdout
    assert r.report(fmt, verbose=True) == run_cli(
        "check", path, "--kernels", "fused", "--format", fmt, "--no-cache", "--color", "never", "-v").stdout


def test_thresholds_and_force_status():
    path = hf_checkpoint("qwen3-tiny-extreme", "bf16")
    r = fusecheck.check_model(path, "generic", thresholds={"max_safe_weight_ratio": 500,
                              "max_safe_amplification": 100, "extreme_weight_threshold": 200,
                              "max_safe_gain_cv": 100}, use_cache=False)
    cli = run_cli("check", path, "--kernels", "generic", "--format", "json", "--no-cache",
                  "--max-weight-ratio", "500", "--max-amplification", "100",
                  "--extreme-threshold", "200", "--max-gain-cv", "100")
    assert r.to_dict() == json.loads(cli.stdout)
    assert r.verdict == "COMPATIBLE"  # every threshold above the model's worst value
    forced = fusecheck.check_model(path, "generic", use_cache=False, force_status="COMPATIBLE")
    assert forced.verdict == "COMPATIBLE" and forced.to_dict()["overridden"] is True
    os.environ["FUSECHECK_FORCE_STATUS"] = "WARNING"
    try:
        assert fusecheck.check_model(path, "generic", use_cache=False).verdict == "WARNING"
    finally:
        del os.environ["FUSECHECK_FORCE_STATUS"]


def test_cache(cache_dir):
    path = hf_checkpoint("qwen3-tiny", "bf16")
    first = fusecheck.check_model(path, "fused", cache_dir=cache_dir)
    second = fusecheck.check_model(path, "fused", cache_dir=cache_dir)
    assert not first.from_cache and second.from_cache
    assert os.listdir(cache_dir)
    assert second.verdict == first.verdict and second.score == first.score


def cli_error(*args):
    cli = run_cli(*args)
    assert cli.returncode in (3, 64), cli.stderr
    line = cli.stderr.strip().splitlines()[-1]
    prefix = "fusecheck: error: "
    assert line.startswith(prefix), line
    return line[len(prefix):]


def assert_check_error(excinfo):
    assert type(excinfo.value) is fusecheck.CheckError
    assert not isinstance(excinfo.value, RuntimeError)
    assert "\n" not in str(excinfo.value)


def broken_checkpoints(tmp_path):
    good = hf_checkpoint("qwen3-tiny", "bf16")
    cases = {"missing": str(tmp_path / "does-not-exist")}
    for case in ["truncated", "bad-config", "bad-header"]:
        d = tmp_path / case
        shutil.copytree(good, d)
        st = d / "model.safetensors"
        if case == "truncated":
            data = st.read_bytes()
            st.write_bytes(data[: len(data) // 2])
        elif case == "bad-config":
            (d / "config.json").write_text('{"model_type": "qwen3", "hidden_size": ')
        else:
            data = bytearray(st.read_bytes())
            data[8:16] = b"not json"
            st.write_bytes(bytes(data))
        cases[case] = str(d)
    return cases


def test_unreadable_checkpoints_raise_the_cli_message(tmp_path):
    for case, path in broken_checkpoints(tmp_path).items():
        want = cli_error("check", path, "--kernels", "fused", "--no-cache")
        with pytest.raises(fusecheck.CheckError) as e:
            fusecheck.check_model(path, use_cache=False)
        assert_check_error(e)
        assert str(e.value) == want, case


def test_bad_arguments_raise_check_error():
    path = hf_checkpoint("qwen3-tiny", "bf16")
    with pytest.raises(fusecheck.CheckError) as e:
        fusecheck.check_model(path, "no-such-profile", use_cache=False)
    assert_check_error(e)
    assert str(e.value) == cli_error("check", path, "--kernels", "no-such-profile", "--no-cache")
    for bad in [{"max_safe_weight_ratio": -1}, {"max_safe_weight_ratio": "x"},
                {"max_safe_weight_ratoi": 30}]:
        with pytest.raises(fusecheck.CheckError) as e:
            fusecheck.check_model(path, thresholds=bad, use_cache=False)
        assert_check_error(e)
    with pytest.raises(fusecheck.CheckError):
        fusecheck.check_model(path, force_status="MAYBE", use_cache=False)
    r = fusecheck.check_model(path, use_cache=False)
    with pytest.raises(fusecheck.CheckError) as e:
        r.report("pdf")
    assert_check_error(e)
    with pytest.raises(fusecheck.CheckError):
        fusecheck.probe(path, device="cuda")
    with pytest.raises(TypeError):
        fusecheck.check_model(path, kernels=3)
