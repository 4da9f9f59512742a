"""Peer tools for the benchmarks, each in a virtual environment of its own.

A peer library (Evidently, ...) must not share the project's environment: its pins clash with ours
(Evidently 0.7 breaks on pandas 3 and wants plotly<6; we pin numpy<2 for alibi-detect). So each peer
gets `benchmarks/.peer-venvs/<name>/`, built once with `python3 -m venv` and that venv's pip, and a
script under `benchmarks/peers/` runs there and prints its figures as one JSON object on its last
stdout line:

    python = peer_python("evidently", EVIDENTLY_REQUIREMENTS)
    figures = run_peer(python, PEERS_DIR / "evidently_drift.py", "--reference", ref, ..., timeout=1800)

The venv holds a stamp with its requirement list; a changed list rebuilds the venv from scratch. The
first build downloads from the package index (about a minute for Evidently); later calls cost nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
PEERS_DIR = BENCHMARKS_DIR / "peers"
PEER_VENVS_DIR = BENCHMARKS_DIR / ".peer-venvs"
STAMP_NAME = ".peer-requirements.json"

# Verified with Python 3.11: evidently 0.7.23 does not cap pandas, and its import fails on pandas 3
# (pandas.core.dtypes.common.infer_dtype_from_object is gone), so pandas stays on 2.3.
EVIDENTLY_REQUIREMENTS = [
    "evidently==0.7.23",
    "pandas==2.3.3",
    "numpy==2.4.6",
    "pyarrow==26.0.1",
    "scipy==1.17.1",
]

# NannyML 0.13's CBPE (benchmarks/peers/nannyml_cbpe.py). Verified with Python 3.11: its import needs
# statsmodels (not declared) and fails on pandas 3, so pandas stays on 2.3.
NANNYML_REQUIREMENTS = [
    "nannyml==0.13.0",
    "statsmodels==0.15.0",
    "pandas==2.3.3",
    "numpy==2.4.6",
    "scikit-learn==1.9.1",
    "scipy==1.17.1",
    "pyarrow==26.0.1",
]

# The FinOps Foundation's FOCUS validator (benchmarks/peers/focus_validate.py). 2.2.1 checks FOCUS 1.2,
# the ledger's version, with the specification's own rule model (model-1.2.0.1.json, bundled: nothing
# is downloaded). It is an sdist for Python >= 3.12.
FOCUS_VALIDATOR_REQUIREMENTS = [
    "focus-validator==2.2.1",
    # its own pins (numpy<2, polars 1.x, pandera 0.26, sqlglot 27, duckdb 1.x), resolved once and kept:
    # pyarrow 21 is the newest that still imports with numpy 1.26
    "pyarrow==21.0.0",
    "numpy==1.26.4",
    "pandas==2.3.3",
    "polars==1.44.2",
    "duckdb==1.5.6",
    "pandera==0.26.1",
    "multimethod==2.0.2",
    "sqlglot==27.29.0",
    "pandasql==0.7.3",
    "SQLAlchemy==2.1.9",
    "pydantic==2.14.4",
    "pytz==2025.2",
    "graphviz==0.21",
    "jsonschema==4.26.0",
    "ddt==1.7.2",
    "tabulate==0.10.0",
]
# focus-validator 2.x needs Python >= 3.12; this machine has it through pyenv.
FOCUS_VALIDATOR_PYTHON = "3.12"

# The parent's venv must not leak into the peer's interpreter.
_SCRUBBED_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


def _tail(text: str | bytes | None, lines: int = 30) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _peer_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _SCRUBBED_ENV}
    env["DO_NOT_TRACK"] = "1"  # Evidently's telemetry switch; the machine has no route out anyway.
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run_step(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=_peer_env())
    if done.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {done.returncode}): {' '.join(command)}\n"
            f"--- stderr (tail) ---\n{_tail(done.stderr)}\n--- stdout (tail) ---\n{_tail(done.stdout)}"
        )


def base_python(version: str | None) -> str:
    """The interpreter a peer venv is made from: this one's `python3`, or Python `version` (X.Y) from
    the PATH or pyenv, with a clear error when the machine has none."""
    if version is None:
        return "python3"
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    if candidates:
        return str(candidates[-1])
    raise RuntimeError(f"Python {version} is needed for this peer and is not installed (pyenv install {version})")


def peer_python(name: str, requirements: list[str], version: str | None = None) -> Path:
    """The python of the peer venv `name` with exactly `requirements` installed (built once, cached),
    made from Python `version` (X.Y) when given."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad peer venv name: {name!r}")
    venv = PEER_VENVS_DIR / name
    python = venv / "bin" / "python"
    stamp = venv / STAMP_NAME
    wanted = json.dumps([f"python {version or 'default'}", *requirements], indent=1) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    PEER_VENVS_DIR.mkdir(parents=True, exist_ok=True)
    # Test workers running in parallel may ask for the same venv: one builds it, the others wait.
    with open(PEER_VENVS_DIR / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and stamp.exists() and stamp.read_text() == wanted:
            return python
        return _build_peer_venv(name, venv, python, stamp, wanted, requirements, version)


def _build_peer_venv(name, venv, python, stamp, wanted, requirements, version) -> Path:
    # --clear: a changed requirement list starts from an empty venv, so nothing stale stays behind.
    _run_step([base_python(version), "-m", "venv", "--clear", str(venv)], f"creating peer venv {name!r}")
    if requirements:
        _run_step(
            [str(python), "-m", "pip", "install", "--quiet", *requirements],
            f"installing {requirements} into peer venv {name!r}",
        )
    stamp.write_text(wanted)  # written last: an interrupted install is redone on the next call
    return python


def run_peer(python: Path, script: Path, *args: str, timeout: float) -> dict:
    """Run `script` with the peer's `python` and return the JSON object on its last stdout line."""
    command = [str(python), str(script), *map(str, args)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_peer_env())
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"peer script {script.name} timed out after {timeout:g} s: {' '.join(command)}\n"
            f"--- stderr (tail) ---\n{_tail(exc.stderr)}"
        ) from None
    if done.returncode != 0:
        raise RuntimeError(
            f"peer script {script.name} failed (exit {done.returncode}): {' '.join(command)}\n"
            f"--- stderr (tail) ---\n{_tail(done.stderr)}"
        )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        raise RuntimeError(
            f"peer script {script.name} did not end its stdout with a JSON object: {' '.join(command)}\n"
            f"--- stdout (tail) ---\n{_tail(done.stdout, 5)}\n--- stderr (tail) ---\n{_tail(done.stderr)}"
        )
    return result


# The FinOps Foundation's focus-converter (benchmarks/peers/focus_converter_run.py). 1.0.0 is the newest
# release; it pins polars 0.20.10 and pyarrow<15, and depends on focus-validator, so the validator's pins
# hold here too (numpy<2; pandera 0.17 needs multimethod 1.10). Verified with Python 3.11: typer 0.9 (its
# CLI) fails on click 8.3+ ("Secondary flag is not valid for non-boolean flag"), so click stays on 8.1.
FOCUS_CONVERTER_REQUIREMENTS = [
    "focus-converter==1.0.0",
    "focus-validator==1.0.0",
    "polars==0.20.10",
    "pyarrow==14.0.2",
    "pandas==2.3.3",
    "numpy==1.26.4",
    "pandera==0.17.2",
    "multimethod==1.10",
    "typer==0.9.4",
    "click==8.1.8",
    "sqlglot==18.17.0",
    "pydantic==2.14.4",
    "pytz==2023.4",
]
