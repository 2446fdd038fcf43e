"""fusecheck: is a Hugging Face checkpoint safe on fused kernels, and what should the engine do?

The checker, the probe and the load-time decision of the fusecheck C++ tool, for Python engines
(docs/PYTHON.md). Every call returns plain Python objects; ``to_dict()`` is the CLI's JSON
(``fusecheck check --format json``: ``fusecheck.check/1``; ``fusecheck probe --json``:
``fusecheck.probe/1``). A checkpoint that cannot be read raises :class:`CheckError` with the CLI's
one-line message. The calls release the GIL and may run from several threads at once.
"""

from ._api import (
    CheckError,
    CheckResult,
    Database,
    Decision,
    Error,
    IncompatibleModelError,
    ProbeResult,
    check_model,
    decide_kernels,
    probe,
)
from ._native import version as __version__

__all__ = [
    "CheckError",
    "CheckResult",
    "Database",
    "Decision",
    "Error",
    "IncompatibleModelError",
    "ProbeResult",
    "check_model",
    "decide_kernels",
    "probe",
]
