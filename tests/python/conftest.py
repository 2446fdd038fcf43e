"""Shared fixtures of the Python package's tests (docs/PYTHON.md). Run by scripts/test_python.sh
(`make test`): FUSECHECK_CLI names the CLI built from the same tree, whose JSON is the oracle for
to_dict(); FUSECHECK_REQUIRE_TORCH=1 turns a missing torch into a failure instead of a skip."""

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples", "python")
HF_MODELS = ["qwen3-tiny-extreme", "qwen3-tiny", "qwen2-tiny", "llama-tiny"]


def hf_dir(name):
    """tests/data/hf/NAME: the committed transformers checkpoints (scripts/reference/make_hf_tiny.py)."""
    return os.path.join(ROOT, "tests", "data", "hf", name)


def hf_checkpoint(name, dtype):
    d = os.path.join(hf_dir(name), dtype)
    assert os.path.isfile(os.path.join(d, "config.json")), f"{d}: missing (tests/data is part of the repo)"
    return d


def reference(name, stem):
    """tests/data/hf/NAME/STEM.json: transformers' references for that checkpoint."""
    with open(os.path.join(hf_dir(name), stem + ".json")) as f:
        return json.load(f)


def cli_path():
    p = os.environ.get("FUSECHECK_CLI") or os.path.join(ROOT, "build", "fusecheck")
    if not os.access(p, os.X_OK):
        pytest.fail(f"the fusecheck CLI ({p}) is needed as the oracle; set FUSECHECK_CLI")
    return p


def run_cli(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FUSECHECK_FORCE")}
    e.update(env or {})
    return subprocess.run([cli_path(), *args], capture_output=True, text=True, env=e, timeout=300)


@pytest.fixture(autouse=True)
def private_database(tmp_path, monkeypatch):
    """Each test gets its own compatibility database (the CLI and the package both resolve it from
    XDG_DATA_HOME), so no test reads another's measurements or the user's."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "xdg" / "fusecheck")  # XDG_CACHE_HOME=tmp_path/xdg for the CLI


def need_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        if os.environ.get("FUSECHECK_REQUIRE_TORCH") == "1":
            pytest.fail("torch is required here (Debian python3-torch; scripts/setup.sh installs it)")
        pytest.skip("torch (Debian python3-torch) is not installed")
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)


def copy_checkpoint(src, dst):
    shutil.copytree(src, dst)
    return str(dst)
