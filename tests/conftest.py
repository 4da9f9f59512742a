"""Shared fixtures: real servers on loopback (a git daemon, an S3-compatible server), the demo
world built from real data, and a Dagster instance that has run the daily job over it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from datetime import date
from pathlib import Path

import pytest

from rai_pipelines.core.registry import load_registry
from rai_pipelines.settings import PROJECT_ROOT, Settings

SHARED_CUR = PROJECT_ROOT / "rai_pipelines" / "demo" / "data" / "aws_cur" / "cur_legacy_anonymized_2023-11.csv.gz"
# Two demo days: the day before version 2 ships and the day it does.
LOOP_DAYS = [date(2023, 11, 5), date(2023, 11, 6)]


@pytest.fixture(scope="session")
def specs():
    return load_registry(PROJECT_ROOT / "models")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GitDaemon:
    """`git daemon` serving bare repositories under `base` on a loopback port, pushes enabled."""

    def __init__(self, base: Path):
        self.base = base
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--informative-errors",
                f"--base-path={base}",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                str(base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("git daemon did not start")

    def url(self, repo: Path) -> str:
        return f"git://127.0.0.1:{self.port}/{repo.relative_to(self.base).as_posix()}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def git_daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("git-daemon")
    daemon = GitDaemon(base)
    yield daemon
    daemon.stop()


def world_environment(world) -> dict[str, str]:
    return {
        **world.env(),
        "RAI_WORKDIR": str(world.home / "work"),
    }


def make_world(home: Path, specs, days=LOOP_DAYS):
    from rai_pipelines.demo.world import build_world

    key_file = home.parent / f"{home.name}.key"
    key_file.write_bytes(os.urandom(32).hex().encode())
    return build_world(home, list(specs.values()), lambda: key_file.read_bytes(), days=days)


def settings_for(world) -> Settings:
    env = world_environment(world)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return Settings.from_env()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def copy_world(world, target: Path):
    """A private copy of a built world (lake, exports, GitOps remote), for tests that change it."""
    from dataclasses import replace

    shutil.copytree(world.home, target, symlinks=True)
    return replace(
        world,
        home=target,
        lake_root=target / "lake",
        legacy_export_root=target / "exports" / "aws-cur-legacy",
        cur2_export_root=target / "exports" / "aws-cur2",
        gitops_remote=target / "gitops.git",
        telemetry_root=target / "telemetry",
    )


class S3Server:
    """moto's S3-compatible server, in this process, on a free loopback port."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
        self.server.start()
        self.host, self.port = self.server.get_host_and_port()
        self.endpoint = f"http://{self.host}:{self.port}"

    def bucket(self, name: str) -> str:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1").create_bucket(Bucket=name)
        return name

    def lake_uri(self, bucket: str, prefix: str) -> str:
        """A lake root pyarrow's S3 file system reads: the endpoint travels in the URI."""
        return f"s3://{bucket}/{prefix}?endpoint_override={self.host}:{self.port}&scheme=http&region=us-east-1"


@pytest.fixture(scope="session")
def s3_server():
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    old = {k: os.environ.get(k) for k in credentials}
    os.environ.update(credentials)
    server = S3Server()
    yield server
    server.server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A few hundred bytes of YAML whose aliases expand to width**levels nodes: the hostile manifest
    of the hardening issue (a 564-byte file took the gate past 3 GB and kustomize to 22 GB)."""
    lines = ["a0: &a0 [" + ", ".join(['"x"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    body = "\n  ".join(lines)
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  k: v\nextra:\n  {body}\n"


def one_currency(totals: dict, currency: str = "USD") -> dict:
    """A witness's day -> currency -> total for an export billed in one currency, as day -> total
    (and a check that no other currency appears)."""
    assert all(set(by_currency) == {currency} for by_currency in totals.values()), totals
    return {day: by_currency[currency] for day, by_currency in totals.items()}


def run_cost_ledger(world, day):
    """The cost_ledger asset of `world` for `day`, as the daily job runs it (failures returned, not raised)."""
    import dagster as dg

    from rai_pipelines.definitions import build_definitions

    job = build_definitions(settings_for(world)).resolve_job_def("daily_governance_job")
    with dg.instance_for_test() as instance:
        return job.execute_in_process(
            partition_key=day.isoformat(),
            instance=instance,
            asset_selection=[dg.AssetKey("cost_ledger")],
            raise_on_error=False,
        )


@pytest.fixture(scope="session", autouse=True)
def aws_catalogue():
    """The demo's AWS Price List (eu-west-1 EC2 on-demand) on loopback, for boto3's pricing client,
    and the settings' catalogue endpoints pointed at loopback for the whole session: no test ever
    asks a public catalogue (GCP's points where nothing listens)."""
    from rai_pipelines.demo.catalogue_servers import demo_aws_catalogue, unreachable_endpoint

    endpoints = {"RAI_AWS_PRICING_ENDPOINT": None, "RAI_GCP_CATALOG_ENDPOINT": unreachable_endpoint()}
    with demo_aws_catalogue() as server:
        endpoints["RAI_AWS_PRICING_ENDPOINT"] = server.endpoint
        old = {k: os.environ.get(k) for k in endpoints}
        os.environ.update(endpoints)
        try:
            yield server
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
