"""The remediation benchmark's world: `count` governed copies of a demo model, each deployed at a
compliant version on the first day and at a violating one on the second, built as the demo builds
its world (rai_pipelines.demo.world) and from the same real data.

A copy is the source model's file under another name (`<source>-NN`), with versions of its own
(`<version>-mNN`: the policies key facts by version, so versions are unique across models), its own
image repository, the team `remediation-bench` (no budget or thresholds of its own: the
organisation's apply), and the source's drift, sampling and explanation settings unless told
otherwise. Its traffic is the source's real traffic replayed (the demo's schedule), its bill the
demo's CUR 2.0 lines for its declared serving resources, its GitOps overlay the demo's. The one
addition to the demo's repository is a commit that labels every copy's Deployment
`rai-pipelines.io/governed: "true"` (the reference policy governs `credit-scoring-ai` by name, any
other Deployment by that label).

Also the instruments the benchmark reads the world with: the Dagster daemon as the demo starts it,
a poller of the bare remote's branch head, the rollback commits' trailers, a CPU sampler.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from rai_pipelines.core import datasets
from rai_pipelines.core.lake import Lake
from rai_pipelines.core.registry import ModelSpec, load_registry
from rai_pipelines.demo import world as demo
from rai_pipelines.demo.telemetry import write_telemetry
from rai_pipelines.gitops.git import run_git
from rai_pipelines.monitoring.snapshots import build_snapshot
from rai_pipelines.settings import PROJECT_ROOT

GENERATION = 1  # bump when the generated world changes: the cache is keyed by it
BENCH = PROJECT_ROOT / ".bench" / "remediation"
# The day before the violating version ships, and the day it does (the tests' LOOP_DAYS).
DAYS = [date(2023, 11, 5), date(2023, 11, 6)]
DAY1, DAY2 = (d.isoformat() for d in DAYS)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
TEAM = "remediation-bench"
GOVERNED_LABEL = 'rai-pipelines.io/governed: "true"'


@dataclass(frozen=True)
class CopyOptions:
    source: str = "credit-scoring-ai"
    explanations: bool = True  # keep the source's explanation report (TreeSHAP of a surrogate)
    multivariate: bool = True  # keep the source's domain-classifier drift test


def copy_name(source: str, index: int) -> str:
    return f"{source}-{index:02d}"


def write_copies(registry: Path, count: int, options: CopyOptions) -> dict[str, ModelSpec]:
    """The copies' model files in `registry` (a folder of their own); returns the registry as loaded."""
    document = yaml.safe_load((PROJECT_ROOT / "models" / f"{options.source}.yaml").read_text())
    registry.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        name = copy_name(options.source, index)
        copy = {**document, "name": name, "team": TEAM}
        copy["description"] = (
            f"Copy {index} of {options.source} for the remediation benchmark. {document['description']}"
        )
        versions = {}
        for version, declared in document["versions"].items():
            own = f"{version}-m{index:02d}"
            repository = declared["image"].rpartition(":")[0].rpartition("/")[0]
            versions[own] = {**declared, "image": f"{repository}/{name}:{own}"}
        copy["versions"] = versions
        if not options.explanations:
            copy.pop("explanations", None)
        if not options.multivariate:
            copy["drift"] = {**document.get("drift", {}), "multivariate": "none"}
        (registry / f"{name}.yaml").write_text(yaml.safe_dump(copy, sort_keys=False))
    return load_registry(registry)


def write_copy_traffic(lake: Lake, spec: ModelSpec, source: str, days: list[date], key: bytes) -> None:
    """demo.world.write_traffic for a copy: the source model's real traffic, reference and labels
    under the copy's name and versions (same schedule, same thresholds per version position)."""
    reference, analysis, target, prefix, delay = demo._traffic_source(source)
    v1 = list(spec.versions)[0]
    ref_log = pa.Table.from_pandas(
        demo._log_frame(spec, reference, prefix, days[0] - timedelta(days=30), v1), preserve_index=False
    )
    ref_labels = pa.table(
        {
            "request_id": [f"{prefix}-{i}" for i in reference["id"]],
            "label": reference["label"].astype("int64").to_numpy(),
        }
    )
    lake.write_table(
        "reference", {"model": spec.name}, build_snapshot(spec, ref_log, ref_labels, key, f"reference of {spec.name}")
    )
    schedule = dict(zip(demo.demo_days(), np.array_split(np.arange(len(analysis)), demo.DAYS), strict=False))
    labels_by_arrival: dict[date, list[pd.DataFrame]] = {}
    for day in days:
        chunk = analysis.iloc[schedule[day]]
        log = demo._log_frame(spec, chunk, prefix, day, demo.deployed_version(spec, day))
        lake.write_table(
            datasets.INFERENCE_LOGS,
            {"model": spec.name, "date": day.isoformat()},
            pa.Table.from_pandas(log, preserve_index=False),
        )
        arrival = day + timedelta(days=delay)
        if arrival <= days[-1]:
            arrived = target[target["id"].isin(chunk["id"])]
            labels_by_arrival.setdefault(arrival, []).append(
                pd.DataFrame(
                    {"request_id": [f"{prefix}-{i}" for i in arrived["id"]], "label": arrived["label"].astype("int64")}
                )
            )
    for arrival, frames in labels_by_arrival.items():
        lake.write_table(
            "labels",
            {"model": spec.name, "date": arrival.isoformat()},
            pa.Table.from_pandas(pd.concat(frames), preserve_index=False),
        )


def govern_every_deployment(remote: Path, specs: list[ModelSpec]) -> None:
    """One commit labelling each copy's base Deployment as governed (after the demo's history)."""
    with tempfile.TemporaryDirectory(prefix="gitops-govern-") as tmp:
        work = Path(tmp) / "work"
        run_git(["clone", "--quiet", str(remote), str(work)])
        for spec in specs:
            path = work / "apps" / spec.name / "base" / "deployment.yaml"
            text = path.read_text()
            if GOVERNED_LABEL not in text:
                path.write_text(
                    text.replace(f"    team: {spec.team}\n", f"    team: {spec.team}\n    {GOVERNED_LABEL}\n", 1)
                )
        when = datetime(demo.SWITCH_DAY.year, demo.SWITCH_DAY.month, demo.SWITCH_DAY.day, 1, tzinfo=timezone.utc)
        demo._commit(work, f"Govern {len(specs)} models by the policies (label {GOVERNED_LABEL})", when)
        run_git(["push", "--quiet", "origin", "main"], cwd=work)


def world_at(home: Path, days: list[date] = DAYS) -> demo.World:
    return demo.World(
        home,
        home / "lake",
        home / "exports" / "aws-cur-legacy",
        home / "exports" / "aws-cur2",
        home / "gitops.git",
        days,
        home / "telemetry",
    )


def build_copies_world(
    home: Path, specs: list[ModelSpec], source: str, key: Callable[[], bytes], days: list[date] = DAYS
) -> demo.World:
    """The demo's world (demo.world.build_world) for the copies, in `home` (which must not exist).
    `key` returns the pseudonymisation key once the folder exists (the embedded default keeps it there)."""
    home.mkdir(parents=True)
    (home / demo.MARKER).write_text("created by benchmarks/remediation_latency.py; safe to delete\n")
    world = world_at(home, days)
    lake = Lake(str(world.lake_root))
    secret = key()
    for spec in specs:
        write_copy_traffic(lake, spec, source, days, secret)
    demo.write_legacy_cur(world.legacy_export_root)
    demo.write_cur2(world.cur2_export_root, specs, days)
    demo.write_gitops_repo(world.gitops_remote, specs)
    govern_every_deployment(world.gitops_remote, specs)
    counts = {
        (s.name, d): lake.read_table(
            datasets.INFERENCE_LOGS, {"model": s.name, "date": d.isoformat()}, ["model_version"]
        ).num_rows
        for s in specs
        for d in days
    }
    write_telemetry(world.telemetry_root, specs, days, demo.deployed_version, lambda s, d: counts[(s.name, d)])
    return world


# -- the cached world: its Dagster instance has materialised everything the facts read ------------------
def world_environment(run: Path) -> dict[str, str]:
    """What the daemon, its runs and the facts child read: the world's locations and the copies' registry."""
    world = world_at(run / "world")
    return {
        **world.env(),
        "RAI_WORKDIR": str(world.home / "work"),
        "RAI_MODEL_REGISTRY": str(run / "models"),
        "RAI_POLICY_DIR": str(PROJECT_ROOT / "policies"),
        "DAGSTER_HOME": str(run / "dagster_home"),
    }


def ensure_world(models: int, options: CopyOptions, say) -> Path:
    """The folder of the cached world of `models` copies, with pristine/ complete; generated (in
    run/, then copied: every absolute path stays valid in run/) if missing."""
    flags = f"expl{int(options.explanations)}-mv{int(options.multivariate)}"
    base = BENCH / f"{options.source}-x{models}-{flags}-g{GENERATION}"
    if (base / "pristine" / ".complete").exists():
        return base
    shutil.rmtree(base, ignore_errors=True)
    start = time.perf_counter()
    say(f"generating the world of {models} model(s) in {base} (once; cached) ...")
    _generate(base / "run", models, options)
    shutil.copytree(base / "run", base / "pristine", symlinks=True)
    (base / "pristine" / ".complete").write_text(f"generated in {time.perf_counter() - start:.0f} s\n")
    say(f"  generated in {time.perf_counter() - start:.0f} s")
    return base


def _generate(run: Path, models: int, options: CopyOptions) -> None:
    """The world, then the daily job on its DAGSTER_HOME: on DAY1 the facts and everything upstream
    of them, on DAY2 everything upstream of the facts but the facts (the benchmark materialises those)."""
    import dagster as dg

    from rai_pipelines.definitions import build_definitions
    from rai_pipelines.defs.keys import facts_keys
    from rai_pipelines.defs.resources import LakeResource
    from rai_pipelines.demo.catalogue_servers import demo_aws_catalogue
    from rai_pipelines.settings import Settings

    specs = list(write_copies(run / "models", models, options).values())
    home = run / "world"

    def key() -> bytes:
        return LakeResource(
            root=str(home / "lake"),
            decision_log_dir=str(home / "decision_log"),
            pseudonymisation_key_file=str(home / "secrets" / "pseudonymisation.key"),
            create_missing_key=True,
        ).pseudonymisation_key()

    build_copies_world(home, specs, options.source, key)
    dagster_home = run / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    with (
        demo_aws_catalogue() as catalogue,
        mock.patch.dict(os.environ, {**world_environment(run), "RAI_AWS_PRICING_ENDPOINT": catalogue.endpoint}),
    ):
        defs = build_definitions(Settings.from_env())
        job = defs.resolve_job_def("daily_governance_job")
        facts = set(facts_keys(specs))
        upstream = dg.AssetSelection.assets(*facts).upstream().resolve(defs.resolve_asset_graph())
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            for day, selection in ((DAY1, upstream), (DAY2, upstream - facts)):
                result = job.execute_in_process(
                    partition_key=day,
                    instance=instance,
                    asset_selection=sorted(selection, key=lambda k: k.to_user_string()),
                    run_config=QUIET,
                    raise_on_error=False,
                )
                if not result.success:
                    failures = [e.message for e in result.all_events if e.is_failure][:3]
                    raise RuntimeError(f"daily_governance_job failed for {day}: {failures}")


# -- the instruments: the daemon, the remote, the CPU ----------------------------------------------------------------
class Daemon:
    """`python -m dagster._daemon run -w workspace.yaml`, as rai_pipelines.demo.run starts it."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log, self.proc, self.started = env, log, None, 0.0

    def start(self) -> None:
        self.started = time.time()
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dagster._daemon", "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the Dagster daemon exited early ({self.proc.returncode}); see {self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def git(remote: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(remote), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


class HeadWatcher(threading.Thread):
    """Polls the bare remote's branch head every `interval` seconds; keeps (time first seen, sha)."""

    def __init__(self, remote: Path, interval: float = 0.2):
        super().__init__(daemon=True)
        self.remote, self.interval = remote, interval
        self.heads = [(time.time(), git(remote, "rev-parse", "refs/heads/main"))]
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            sha = git(self.remote, "rev-parse", "refs/heads/main")
            if sha != self.heads[-1][1]:
                self.heads.append((time.time(), sha))

    def first_seen(self) -> dict[str, float]:
        seen = {}
        for (_, old), (when, new) in zip(self.heads, self.heads[1:], strict=False):
            for sha in git(self.remote, "rev-list", f"{old}..{new}").split():
                seen.setdefault(sha, when)
        return seen


class TreeCpu(threading.Thread):
    """CPU seconds of a process group (the daemon's session: daemon, code servers, run and step
    workers, their git and kubectl), by kind of process, from /proc every `interval` seconds. The
    code server starts a run worker and the run worker its step worker with multiprocessing's
    spawn: they are told apart by their parent. The last interval of a process is missed, and a
    process that lives less than one (git, kubectl mostly) entirely: "tools" is a lower bound."""

    def __init__(self, interval: float = 0.25):
        super().__init__(daemon=True)
        self.interval, self.pgid = interval, None
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (kind, CPU seconds when last seen)
        self.halt = threading.Event()

    def _kind(self, command: str, parent: int) -> str:
        if "dagster._daemon" in command:
            return "daemon"
        if "dagster api grpc" in command:
            return "code server"
        if "spawn_main" in command:
            below = {"code server": "run workers", "run workers": "step workers"}
            return below.get(self.cpu.get(parent, ("",))[0], "workers")
        return "tools"

    def run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self.halt.wait(self.interval):
            if self.pgid is None:
                continue
            for pid in sorted(int(name) for name in os.listdir("/proc") if name.isdigit()):  # parents first
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[2]) != self.pgid:
                        continue
                    if pid not in self.cpu:
                        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                        self.cpu[pid] = (self._kind(command, int(fields[1])), 0.0)
                    self.cpu[pid] = (self.cpu[pid][0], (int(fields[11]) + int(fields[12])) / tick)
                except (OSError, IndexError, ValueError):
                    continue

    def snapshot(self) -> dict[int, tuple[str, float]]:
        return dict(self.cpu)

    @staticmethod
    def between(start: dict, end: dict) -> dict[str, float]:
        kinds: dict[str, float] = {}
        for pid, (kind, cpu) in end.items():
            kinds[kind] = kinds.get(kind, 0.0) + cpu - start.get(pid, (kind, 0.0))[1]
        return kinds


def rollback_commits(remote: Path) -> list[dict]:
    """The branch's commits with a Rai-Decision-Id trailer, oldest first: sha, committer time, trailers."""
    out = git(remote, "log", "--reverse", "--format=%H%x02%ct%x02%(trailers:only,unfold)%x03", "refs/heads/main")
    commits = []
    for record in filter(None, (r.strip("\n") for r in out.split("\x03"))):
        sha, committed, trailers = record.split("\x02")
        fields = dict(line.split(": ", 1) for line in trailers.splitlines() if ": " in line)
        if "Rai-Decision-Id" in fields:
            commits.append({"sha": sha, "committed": int(committed), **fields})
    return commits


def machine_cpu() -> tuple[float, float]:
    """The machine's busy CPU seconds (all cores) and wall seconds, from /proc/stat and the clock."""
    jiffies = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = jiffies[3] + jiffies[4]
    return (sum(jiffies[:8]) - idle) / os.sysconf("SC_CLK_TCK"), time.time()
