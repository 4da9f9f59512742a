"""The size of the base install, what a CI job that only gates manifests installs: a new virtual
environment with the package (built as a wheel from this checkout, its base dependencies from the
package index) and OPA's evaluator, as the README's GitHub Actions job installs them. Prints the
environment's size on disk, minus the empty venv's own, and the packages it holds.

    .venv/bin/python benchmarks/gate_install.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPA = "opa-golib-python-bindings==0.4.4"


def megabytes(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def build_wheel(folder: Path) -> Path:
    """A wheel of this checkout, built offline with the venv's own setuptools."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = folder.glob("rai_pipelines-*.whl")
    return wheel


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="rai-gate-install-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(work)
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        empty_mb = megabytes(venv)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, str(wheel)], check=True)
        subprocess.run([*pip, "--no-deps", "--ignore-requires-python", OPA], check=True)
        packages = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        figures = {
            "base_install_mb": round(megabytes(venv) - empty_mb, 1),
            "venv_total_mb": round(megabytes(venv), 1),
            "packages": sorted(packages),
        }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
