"""What the benchmarks share: one core and one thread for the measured child, and a work folder
that is temporary unless --workdir names one."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

# Native thread pools read these when they load, so they are set before NumPy, Arrow or Polars is imported.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "POLARS_MAX_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
}


def pin_to_one_core() -> int:
    """One thread per pool and the first allowed CPU only; returns that CPU."""
    os.environ.update(SINGLE_THREAD_ENV)
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def run_in_workdir(workdir: str | None, prefix: str, report) -> None:
    """Run report(workdir) in the given folder, or in a temporary one removed afterwards; exit with its status."""
    if workdir:
        folder = Path(workdir)
        folder.mkdir(parents=True, exist_ok=True)
        sys.exit(report(folder))
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        status = report(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    sys.exit(status)
