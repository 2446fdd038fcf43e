"""The public API over fusecheck._native (see the package docstring and docs/PYTHON.md)."""

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _native

# The CLI's testing overrides, read here as the CLI reads them (the C++ library reads no
# environment): FUSECHECK_FORCE_STATUS=COMPATIBLE|WARNING|INCOMPATIBLE and FUSECHECK_FORCE_FUSED=1.
FORCE_STATUS_ENV = "FUSECHECK_FORCE_STATUS"
FORCE_FUSED_ENV = "FUSECHECK_FORCE_FUSED"

PathLike = Union[str, "os.PathLike[str]"]


class Error(Exception):
    """Base class of fusecheck's exceptions."""


class CheckError(Error):
    """The checkpoint (or an argument) cannot be used; the message is the CLI's one line."""


class IncompatibleModelError(Error):
    """Under ``strict``, the model is INCOMPATIBLE with the requested fused kernels."""

    def __init__(self, message: str, decision: "Decision"):
        super().__init__(message)
        self.decision = decision


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except _native.Error as e:
        raise CheckError(str(e)) from None


def _path(path: PathLike) -> str:
    return os.fspath(path)


@dataclass(frozen=True)
class CheckResult:
    """The static check of one checkpoint for one kernel profile."""

    verdict: str  # "COMPATIBLE" | "WARNING" | "INCOMPATIBLE"
    score: float
    issues: List[str]
    recommendation: str
    layers: List[Dict[str, Any]]  # per layer: noise metrics and the layer's norms' gain statistics
    kernels: str
    fingerprint: str
    from_cache: bool
    _native: Any = field(repr=False, compare=False)

    def to_dict(self) -> Dict[str, Any]:
        """The ``fusecheck.check/1`` JSON (as ``fusecheck check --format json`` prints it)."""
        return json.loads(self._native.json)

    def report(self, format: str = "text", verbose: bool = False) -> str:
        """The CLI's report: ``text``, ``markdown``, ``model-card`` (or ``json``)."""
        return _call(self._native.report, format, verbose)


def _layers(d: Dict[str, Any]) -> List[Dict[str, Any]]:
    analysis = d["analysis"]
    layers = [dict(l) for l in analysis["layers"]]
    for l in layers:
        l["norms"] = {}
    for n in analysis["norms"]:
        if n["kind"] != "final" and 0 <= n["layer"] < len(layers):
            layers[n["layer"]]["norms"][n["role"]] = n["stats"]
    return layers


def check_model(
    path: PathLike,
    kernels: str = "fused",
    thresholds: Optional[Dict[str, Any]] = None,
    use_cache: bool = True,
    *,
    cache_dir: Optional[PathLike] = None,
    force_status: Optional[str] = None,
) -> CheckResult:
    """Static check: reads safetensors headers and norm tensors only (``fusecheck check``).

    ``thresholds``: keys of data/thresholds.json to override (docs/ANALYSIS.md).
    ``force_status`` (or FUSECHECK_FORCE_STATUS): report this verdict, for testing fallbacks.
    """
    if force_status is None:
        force_status = os.environ.get(FORCE_STATUS_ENV) or None
    t = None if thresholds is None else json.dumps(thresholds)
    cache = "" if cache_dir is None else _path(cache_dir)
    nat = _call(_native.check, _path(path), kernels, t, use_cache, cache, force_status)
    d = json.loads(nat.json)
    score = d["score"]
    return CheckResult(
        verdict=d["verdict"],
        score=float(score["total"]),
        issues=list(score["issues"]),
        recommendation="\n".join(score["recommendations"]),
        layers=_layers(d),
        kernels=d["kernels"]["name"],
        fingerprint=d["fingerprint"],
        from_cache=bool(d["from_cache"]),
        _native=nat,
    )


@dataclass(frozen=True)
class ProbeResult:
    """A measurement of a fused profile against the standard path and fp32 (``fusecheck probe``)."""

    verdict: str  # "COMPATIBLE" | "INCOMPATIBLE"
    reason: str
    kernels: str
    static_verdict: str
    layers: List[Dict[str, Any]]  # per layer: propagated and shadow relative errors
    _json: str = field(repr=False)

    def to_dict(self) -> Dict[str, Any]:
        """The ``fusecheck.probe/1`` JSON (as ``fusecheck probe --json`` prints it)."""
        return json.loads(self._json)


def _db_path(db: Optional[PathLike], use_cache: bool) -> str:
    """The compatibility database, resolved as the CLI resolves it (docs/USER_GUIDE.md):
    ``db``, else $XDG_DATA_HOME/fusecheck/fusecheck.db, else ~/.local/share/fusecheck/fusecheck.db.
    "" (none) when ``use_cache`` is off."""
    if not use_cache:
        return ""
    if db is not None:
        return _path(db)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "fusecheck", "fusecheck.db")


def probe(
    path: PathLike,
    kernels: str = "fused-int8kv",
    device: str = "cpu",
    sequences: Optional[Sequence[Sequence[int]]] = None,
    *,
    tokens: int = 64,
    greedy_tokens: int = 32,
    use_cache: bool = True,
    cache_dir: Optional[PathLike] = None,
    db: Optional[PathLike] = None,
) -> ProbeResult:
    """Runs the model on fp32, standard and fused kernels and measures the difference.

    ``sequences``: calibration token ids (default: the built-in texts through the checkpoint's
    tokenizer, or seeded pseudo-random ids, cut to ``tokens``). The measurement is cached, and then
    outranks the static check in :func:`decide_kernels`; it is recorded in the compatibility
    database (``db``, default as the CLI's). Only ``device="cpu"`` exists.
    """
    if device != "cpu":
        raise CheckError(f'device "{device}": only "cpu" is implemented in the Python package')
    seqs = [] if sequences is None else [[int(t) for t in s] for s in sequences]
    if sequences is not None and (not seqs or any(len(s) < 2 for s in seqs)):
        raise CheckError("sequences: give at least one sequence of two or more token ids")
    cache = "" if cache_dir is None else _path(cache_dir)
    text = _call(_native.probe, _path(path), kernels, seqs, tokens, greedy_tokens, use_cache, cache,
                 _db_path(db, use_cache))
    d = json.loads(text)
    return ProbeResult(
        verdict=d["verdict"],
        reason=d["reason"],
        kernels=d["kernels"],
        static_verdict=d["static_verdict"],
        layers=[dict(l) for l in d["layers"]],
        _json=text,
    )


@dataclass(frozen=True)
class Decision:
    """The load-time decision: which kernels to run and why."""

    use_fused: bool  # fuse every layer; False for a per-layer plan (see ``plan``)
    verdict: Optional[str]  # None when the checkpoint could not be checked
    source: str  # "static" | "probe" | "database" | "forced" | "plan" ("" = could not be checked)
    message: str  # for the log: the warning, the fallback notice, or ""
    kernels: str
    outcome: str  # "fused", "fused (warning)", "standard (fallback)", "fused (forced)",
    # "fused (per-layer plan)"
    static_verdict: Optional[str] = None
    measured_verdict: Optional[str] = None
    basis: str = ""
    check_error: str = ""  # the checker's error when the checkpoint could not be read
    # The stored per-layer plan the decision uses (`fusecheck plan`), when the full profile is
    # INCOMPATIBLE: per layer {"fused": [group names], "kv": KV format}; None otherwise.
    plan: Optional[List[Dict[str, Any]]] = None

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def decide_kernels(
    path: PathLike,
    kernels: str = "fused",
    strict: bool = False,
    force: bool = False,
    *,
    use_cache: bool = True,
    cache_dir: Optional[PathLike] = None,
    db: Optional[PathLike] = None,
    device: str = "cpu",
) -> Decision:
    """Decides fused vs standard kernels before any weight is read (forced > measured > static).

    COMPATIBLE: fused. WARNING: fused, with the warning in ``message``. INCOMPATIBLE: standard
    kernels with the fallback warning, or :class:`IncompatibleModelError` under ``strict``. A
    checkpoint that cannot be checked falls back, or raises :class:`CheckError` under ``strict``.
    ``force`` (or FUSECHECK_FORCE_FUSED=1) fuses whatever the verdict, with a notice.
    ``device`` ("cpu" or "cuda"): the backend the model will run on; stored per-layer plans and
    measurements are those made on it, as the engine's own decision on that device reads them.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
    force = force or os.environ.get(FORCE_FUSED_ENV) == "1"
    cache = "" if cache_dir is None else _path(cache_dir)
    status = os.environ.get(FORCE_STATUS_ENV) or None  # the check's testing override, as the CLI
    r = _call(_native.decide, _path(path), kernels, strict, force, use_cache, cache, status,
              _db_path(db, use_cache), device)
    d = Decision(
        use_fused=bool(r["use_fused"]),
        verdict=r["verdict"],
        source=r["source"],
        message=r["message"],
        kernels=r["kernels"],
        outcome=r["outcome"],
        static_verdict=r["static_verdict"],
        measured_verdict=r["measured_verdict"],
        basis=r["basis"],
        check_error=r["check_error"],
        plan=r["plan"],
    )
    if strict and r["strict_refusal"]:
        raise IncompatibleModelError(d.message, d)
    if strict and d.check_error and not force:
        raise CheckError(d.check_error)
    return d


class Database:
    """The compatibility database (SQLite, WAL mode; docs/USER_GUIDE.md, "Compatibility database"),
    the one the CLI's ``fusecheck db`` commands and the load-time decision use.

    ``path``: the database file; default as the CLI's ($XDG_DATA_HOME/fusecheck/fusecheck.db, else
    ~/.local/share/fusecheck/fusecheck.db). Records are ``fusecheck.db/1`` dicts
    (docs/JSON_SCHEMA.md). Errors (a damaged file, an unreadable checkpoint, a bad import line)
    raise :class:`CheckError` with the CLI's one-line message.
    """

    def __init__(self, path: Optional[PathLike] = None):
        self.path = _db_path(path, True)

    def add(self, model_dir: PathLike, kernels: str = "fused", probe: bool = False, *,
            name: str = "", revision: str = "") -> Dict[str, Any]:
        """Checks the checkpoint (and measures it with ``probe``) and records the result, as
        ``fusecheck db add``; returns the stored record."""
        return json.loads(_call(_native.db_add, self.path, _path(model_dir), kernels, probe, name,
                                revision))

    def lookup(self, model: Union[PathLike, str], kernels: str = "") -> List[Dict[str, Any]]:
        """Records of a checkpoint directory (by its fingerprint), a model name, or a fingerprint
        prefix of 8+ hex digits, as ``fusecheck db lookup``; ``kernels`` "" = every profile."""
        query = _path(model)
        if os.path.isdir(query):
            query = check_model(query, kernels or "fused").fingerprint
        return json.loads(_call(_native.db_find, self.path, query, kernels))

    def list(self) -> List[Dict[str, Any]]:
        """Every record, as ``fusecheck db list``."""
        return json.loads(_call(_native.db_find, self.path, "", ""))

    def export(self, file: PathLike, model: str = "") -> int:
        """Writes the records (of ``model``: a name or fingerprint prefix; "" = all) to ``file`` as
        JSON lines, atomically, as ``fusecheck db export``, with the stored per-layer plans of
        those checkpoints; returns how many records."""
        return _call(_native.db_export, self.path, _path(file), model)

    def import_file(self, file: PathLike, prefer_imported: bool = False) -> Dict[str, Any]:
        """Validates and imports an export, as ``fusecheck db import``: never over a local
        measurement unless ``prefer_imported``. Returns the counts and the rejected lines
        ("FILE:LINE: why")."""
        return dict(_call(_native.db_import, self.path, _path(file), prefer_imported))
