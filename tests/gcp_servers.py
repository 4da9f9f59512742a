"""Google Cloud emulators as real servers on loopback: bqemulator (BigQuery's REST API over DuckDB)
and gcp-storage-emulator (Cloud Storage's JSON API), each in a virtual environment of its own.

Both are installed from PyPI by `benchmarks/peers.py`'s `peer_python` into benchmarks/.peer-venvs/
(ignored by Git) the first time a test needs them, under a file lock so that parallel test processes
build each once. bqemulator's pins clash with ours (it wants grpcio-tools and grpcio-health-checking
<1.81 and sqlglot<30.12), hence its own venv; it loads DuckDB's spatial extension at start, which
DuckDB would download from its extension site (unreachable here), so the `duckdb-extension-spatial`
wheel (built for the pinned DuckDB) is installed into a DuckDB extension directory under the venv,
used as HOME by the emulator. bqemulator 1.4.0 also needs numpy for its built-in UDFs without
declaring it. Its pytest plugin is not loaded here: it lives in the other venv (run pytest with
`-p no:bqemulator` where it is installed beside the tests).

Start: `python -m bqemulator start --rest-port P --grpc-port G --ephemeral --project ID`;
`BQEMU_GCS_LOCAL_ROOT` maps gs://bucket/... of EXPORT DATA to a local folder.
`gcp-storage-emulator start --host 127.0.0.1 --port P --in-memory`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rai_pipelines.settings import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from peers import peer_python  # noqa: E402

# Verified with Python 3.11 on 2026-11-28: the spatial wheel's version must equal DuckDB's.
BQEMULATOR_REQUIREMENTS = [
    "bqemulator==1.4.0",
    "duckdb==1.5.5",
    "duckdb-extension-spatial==1.5.5",
    "numpy==2.4.6",
    "sqlglot==30.11.0",
    "grpcio-tools==1.80.1",
    "grpcio-health-checking==1.80.1",
]
GCS_EMULATOR_REQUIREMENTS = ["gcp-storage-emulator==2026.7.19", "google-crc32c==1.9.0"]
PROJECT = "rai-billing"

_SCRUBBED = (
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "PYTHONSTARTUP",
    "BIGQUERY_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra)
    return env


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class _Server:
    proc: subprocess.Popen
    log: Path

    def _wait(self, ready, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {self.proc.returncode}:\n{_tail(self.log)}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{what} did not start in {timeout:g} s:\n{_tail(self.log)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class BigQueryEmulator(_Server):
    """bqemulator on a free loopback port, in memory; EXPORT DATA writes gs:// URIs under `gcs_root`."""

    def __init__(self, workdir: Path):
        python = peer_python("bqemulator", BQEMULATOR_REQUIREMENTS)  # built under its own lock
        home = python.parent.parent / "home"
        self._install_spatial(python, home)
        self.gcs_root = workdir / "bq-gcs"
        self.gcs_root.mkdir(parents=True, exist_ok=True)
        self.port, grpc_port = _free_port(), _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "bqemulator.log"
        command = [
            str(python), "-m", "bqemulator", "start", "--rest-host", "127.0.0.1", "--rest-port", str(self.port),
            "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port), "--ephemeral", "--project", PROJECT,
            "--log-level", "warning", "--log-format", "console",
        ]  # fmt: skip
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,  # it reads .bqemu.toml from its working directory
                env=_env(HOME=str(home), BQEMU_GCS_LOCAL_ROOT=str(self.gcs_root)),
            )
        url = f"{self.endpoint}/bigquery/v2/projects/{PROJECT}/datasets"
        self._wait(lambda: urllib.request.urlopen(url, timeout=2).status == 200, "bqemulator")

    @staticmethod
    def _install_spatial(python: Path, home: Path) -> None:
        """DuckDB's spatial extension from the wheel into HOME/.duckdb/extensions (INSTALL of a file
        copies it there; bqemulator's own INSTALL then finds it and does not download)."""
        script = (
            "import glob, os, duckdb, duckdb_extension_spatial as s\n"
            "(path,) = glob.glob(os.path.join(os.path.dirname(s.__file__), 'extensions', 'v*', "
            "'spatial.duckdb_extension'))\n"
            "con = duckdb.connect()\n"
            "con.execute(f\"INSTALL '{path}'\")\n"
            "con.execute('LOAD spatial')\n"
        )
        home.mkdir(exist_ok=True)
        done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, env=_env(HOME=str(home)))
        if done.returncode != 0:
            raise RuntimeError(f"installing DuckDB's spatial extension for bqemulator failed:\n{done.stderr}")

    def client(self):
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.endpoint),
        )


class GcsEmulator(_Server):
    """gcp-storage-emulator on a free loopback port, in memory."""

    def __init__(self, workdir: Path):
        python = peer_python("gcp-storage-emulator", GCS_EMULATOR_REQUIREMENTS)
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "gcs-emulator.log"
        command = [
            str(python.parent / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(self.port),
            "--in-memory", "--quiet",
        ]  # fmt: skip
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=_env())
        self._wait(
            lambda: socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close() is None, "GCS emulator"
        )

    def client(self):
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.endpoint),
        )


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory):
    server = BigQueryEmulator(tmp_path_factory.mktemp("bqemulator"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    server = GcsEmulator(tmp_path_factory.mktemp("gcs-emulator"))
    yield server
    server.stop()
