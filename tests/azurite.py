"""Azurite, Microsoft's Azure Storage emulator, as a real Blob Storage server on loopback for tests.

It comes from the npm registry into `<repo>/.azurite` (ignored by Git) the first time a test needs it,
so a clean checkout with Node.js and npm installs it by itself. Started with telemetry disabled,
bound to 127.0.0.1 on a free port, with its data in a temporary folder.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import subprocess
import time
from pathlib import Path

from rai_pipelines.settings import PROJECT_ROOT
from tests.conftest import _free_port

AZURITE_PACKAGE = "azurite@3.35.0"  # the 3.x release verified here (Node.js 20)
AZURITE_DIR = PROJECT_ROOT / ".azurite"
AZURITE_BLOB = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
# Azurite's fixed development account: public, documented, and accepted by nothing but the emulator.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def ensure_azurite() -> Path:
    """The azurite-blob executable, installed from npm into .azurite/ when absent (under a file lock,
    so that parallel test processes install it once)."""
    if AZURITE_BLOB.exists():
        return AZURITE_BLOB
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("Azurite is not installed and npm is not on PATH: install Node.js and npm")
    AZURITE_DIR.mkdir(exist_ok=True)
    with open(AZURITE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not AZURITE_BLOB.exists():
            done = subprocess.run(
                [npm, "install", "--prefix", str(AZURITE_DIR), AZURITE_PACKAGE, "--no-audit", "--no-fund"],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0 or not AZURITE_BLOB.exists():
                raise RuntimeError(f"npm install {AZURITE_PACKAGE} failed:\n{done.stderr[-3000:]}")
    return AZURITE_BLOB


class Azurite:
    """azurite-blob on a free loopback port, data under `location`."""

    def __init__(self, location: Path):
        executable = ensure_azurite()
        self.port = _free_port()
        self.log = location / "azurite.log"
        self.proc = subprocess.Popen(
            [
                str(executable),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(location),
                "--silent",
                "--disableTelemetry",
                "--skipApiVersionCheck",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Azurite did not start listening within 30 s")

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def container(self, name: str):
        """A new, empty container; returns its ContainerClient."""
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string)
        return service.create_container(name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
