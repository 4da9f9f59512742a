"""Remediation latency through the real Dagster daemon: from a model's violating governance facts
to the rollback commit on the GitOps remote, for one violation and for --models simultaneous
violations in as many applications; and the duplicate commits after further sensor ticks and a
daemon restart. Targets: latency_s <= 60, latency_s_50_models <= 120, duplicate_commits 0.

    .venv/bin/python benchmarks/remediation_latency.py [--models 50] [--ticks 10] [--scenario both]
        [--max-concurrent-runs N] [--dequeue-interval S] [--phase S] [--no-explanations] [--no-multivariate]

The world (benchmarks/remediation_world.py) is the demo's, for copies of credit-scoring-ai
(`credit-scoring-ai-NN`, versions `1.4.2-mNN` then `2.0.0-mNN`, team remediation-bench, the
Deployment labelled governed): real car-loan traffic, the real CUR and a CUR 2.0 export of each
version's declared serving, a GitOps bare repository whose head deploys the GPU version 2.0.0-mNN.
Generated once per --models and copy options, and cached under .bench/remediation/<key>/pristine:
the daily job (execute_in_process on that DAGSTER_HOME) materialises, on 2023-11-05, the governance
facts and everything upstream of them, and on 2023-11-06 everything upstream of the facts but the
facts. Shortcut: the daily job's assets that no facts asset depends on (finops_recommendations)
are not materialised; everything the facts read is, by the project's code from that data.

Each measurement copies the pristine folder to .bench/remediation/<key>/run (same absolute paths),
writes the project's dagster.yaml into its DAGSTER_HOME (or one with the flags' changes), and
starts `python -m dagster._daemon run -w workspace.yaml` as the demo does. Once the policy sensor
has ticked (30 s interval, as shipped), a child process materialises the 2023-11-06 facts of the
violating models in one run of daily_governance_job on that instance, --phase seconds after a
tick ended (0: just after, so the sensor's interval is waited nearly in full): their estimated
cost per inference (g5.2xlarge at the catalogue price over the day's real requests) exceeds the
policies' 0.005 USD. The benchmark polls the bare remote's branch head every 0.2 s.

latency_s is from the facts asset's materialisation event (event log timestamp) to the first poll
that sees the rollback commit; latency_s_<N>_models from the last of the N facts events to the last
commit seen. The breakdown comes from the instance: the tick that requested each run (sensor ticks'
run ids and timestamps) and the run's events: ENQUEUED (the tick created it), STARTING (the run
coordinator launched it), START (run worker process up, code loaded), STEP_START (resources built;
under the multiprocess executor also a step process started and the code loaded again), then clone,
render, evaluate, commit and push until the poll sees the commit. CPU seconds of the daemon's
process group (daemon, code servers, run and step workers) are sampled from /proc, and a new
process's load of the code location is timed. Push attempts are counted by a logging wrapper of
git-receive-pack that the runs' git uses (GIT_CONFIG_* in the daemon's environment sets
remote.origin.receivepack); a race is an attempt that did not move the branch (git refuses a
non-fast-forward push before sending it), retried inside the run after a rebase, or by a retry run
when the run's two attempts fail. duplicate_commits counts rollback commits (Rai-Decision-Id
trailer) on the branch beyond one per (Rai-Model, Rai-Bad-Version), after --ticks further policy
sensor ticks, the second half of them after a daemon restart. The last line is one JSON object
with the figures. Other processes on the machine slow all of it down: the CPU line says how busy
the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from remediation_world import (  # noqa: E402
    DAY2,
    QUIET,
    CopyOptions,
    Daemon,
    HeadWatcher,
    TreeCpu,
    ensure_world,
    git,
    machine_cpu,
    rollback_commits,
    world_environment,
)

from rai_pipelines.settings import PROJECT_ROOT  # noqa: E402

SENSOR = "governance_policy_sensor"
ROLLBACK_JOB = "gitops_rollback_job"


# -- the instance ---------------------------------------------------------------------------------------
def _sensor_ticks(instance, name: str = SENSOR) -> list:
    from dagster._core.scheduler.instigation import InstigatorType

    states = [s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR) if s.name == name]
    ticks = [t for s in states for t in instance.get_ticks(s.instigator_origin_id, s.selector_id)]
    return sorted(ticks, key=lambda t: t.timestamp)


def completed_ticks(instance, after: float) -> list:
    from dagster._core.scheduler.instigation import TickStatus

    return [t for t in _sensor_ticks(instance) if t.status != TickStatus.STARTED and (t.end_timestamp or 0) > after]


def wait_for(predicate, timeout: float, what: str, daemon=None, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon is not None:
            daemon.check()
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


# -- the facts child ----------------------------------------------------------------------------------------
def facts_child(args) -> None:
    """In the world's environment: wait for a policy sensor tick to end, then --phase seconds, then
    materialise the 2023-11-06 facts of the first --violations models in one run."""
    import dagster as dg

    from rai_pipelines.core.registry import load_registry
    from rai_pipelines.definitions import build_definitions
    from rai_pipelines.defs.keys import facts_keys
    from rai_pipelines.settings import Settings

    specs = sorted(load_registry(os.environ["RAI_MODEL_REGISTRY"]).values(), key=lambda s: s.name)
    job = build_definitions(Settings.from_env()).resolve_job_def("daily_governance_job")
    with dg.DagsterInstance.get() as instance:
        loaded = time.time()
        tick = wait_for(lambda: completed_ticks(instance, loaded), 300, "a policy sensor tick", every=0.2)[0]
        time.sleep(args.phase)
        started = time.time()
        result = job.execute_in_process(
            partition_key=DAY2,
            instance=instance,
            asset_selection=facts_keys(specs[: args.violations]),
            run_config=QUIET,
            raise_on_error=False,
        )
    print(
        json.dumps(
            {
                "run_id": result.run_id,
                "success": result.success,
                "tick_end": tick.end_timestamp,
                "started": started,
                "ended": time.time(),
            }
        )
    )


# -- one measurement --------------------------------------------------------------------------------------
def write_instance_config(dagster_home: Path, max_concurrent_runs: int | None, dequeue_interval: int | None) -> dict:
    """The project's dagster.yaml, as is, or with the flags' changes; returns what the instance reads."""
    target = dagster_home / "dagster.yaml"
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", target)
    config = yaml.safe_load(target.read_text())
    if max_concurrent_runs is not None:
        config["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
    if dequeue_interval is not None:
        config["run_coordinator"] = {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_interval_seconds": dequeue_interval},
        }
    if max_concurrent_runs is not None or dequeue_interval is not None:
        target.write_text(yaml.safe_dump(config, sort_keys=False))
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return {
            "max_concurrent_runs": instance.get_concurrency_config().run_queue_config.max_concurrent_runs,
            "dequeue_interval_s": instance.run_coordinator.dequeue_interval_seconds,
        }


CODE_LOAD = """
import json, resource, time
start = time.perf_counter()
from rai_pipelines.definitions import defs
defs()
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.perf_counter() - start}))
"""


def code_load(env: dict[str, str]) -> dict:
    """What a run or step worker pays before its first step: Python, Dagster and the code location
    (rai_pipelines.definitions for the world's models) in a new process."""
    out = subprocess.run([sys.executable, "-c", CODE_LOAD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rollback_runs(instance) -> list:
    import dagster as dg

    return instance.get_run_records(dg.RunsFilter(job_name=ROLLBACK_JOB))


def _all_remediated(instance, remote: Path, violations: int) -> bool:
    done = {(c["Rai-Model"], c["Rai-Bad-Version"]) for c in rollback_commits(remote)}
    return len(done) >= violations and all(r.dagster_run.is_finished for r in _rollback_runs(instance))


def measure(base: Path, violations: int, args, ticks: int, say) -> dict:
    import dagster as dg

    from rai_pipelines.demo.catalogue_servers import unreachable_endpoint

    run = base / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(base / "pristine", run, symlinks=True)
    dagster_home = run / "dagster_home"
    instance_config = write_instance_config(dagster_home, args.max_concurrent_runs, args.dequeue_interval)
    attempts_log, wrapper = run / "push-attempts.log", run / "receive-pack-logger"
    wrapper.write_text(f'#!/bin/sh\ndate +%s.%N >> "{attempts_log}"\nexec git receive-pack "$@"\n')
    wrapper.chmod(0o755)
    env = {
        **os.environ,
        **world_environment(run),
        "RAI_AWS_PRICING_ENDPOINT": unreachable_endpoint(),
        "RAI_GCP_CATALOG_ENDPOINT": unreachable_endpoint(),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "remote.origin.receivepack",
        "GIT_CONFIG_VALUE_0": str(wrapper),
    }
    loaded = code_load(env)
    remote = run / "world" / "gitops.git"
    watcher = HeadWatcher(remote)
    watcher.start()
    daemon, sampler = Daemon(env, run / "dagster-daemon.log"), TreeCpu()
    marks: dict[str, float] = {}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        try:
            daemon.start()
            sampler.pgid = daemon.proc.pid
            sampler.start()
            marks["daemon_started"] = daemon.started
            wait_for(lambda: completed_ticks(instance, daemon.started), 600, "the policy sensor's first tick", daemon)
            marks["first_tick_done"] = time.time()
            say(f"  daemon up, first policy tick after {marks['first_tick_done'] - daemon.started:.1f} s")
            cpu_before, machine_before = sampler.snapshot(), machine_cpu()
            marks["facts_child"] = time.time()
            child = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--facts-child",
                    "--violations",
                    str(violations),
                    "--phase",
                    str(args.phase),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if child.returncode != 0:
                raise RuntimeError(f"the facts child failed:\n{child.stderr[-3000:]}")
            facts_run = json.loads(child.stdout.strip().splitlines()[-1])
            if not facts_run["success"]:
                raise RuntimeError(f"the facts run {facts_run['run_id']} failed; see the instance in {dagster_home}")
            say(f"  facts of {violations} model(s) materialised in {facts_run['ended'] - facts_run['started']:.1f} s")
            wait_for(
                lambda: _all_remediated(instance, remote, violations),
                args.timeout,
                f"{violations} rollback commit(s)",
                daemon,
                every=0.5,
            )
            marks["remediated"] = time.time()
            time.sleep(2 * sampler.interval)
            cpu = TreeCpu.between(cpu_before, sampler.snapshot())
            machine = [b - a for a, b in zip(machine_before, machine_cpu(), strict=True)]
            say(f"  {violations} rollback commit(s) on the remote")
            if ticks:
                before = ticks - ticks // 2
                wait_for(
                    lambda: len(completed_ticks(instance, marks["remediated"])) >= before,
                    before * 90 + 120,
                    f"{before} further policy ticks",
                    daemon,
                    every=2,
                )
                daemon.stop()
                daemon.start()
                marks["restarted"] = daemon.started
                wait_for(
                    lambda: len(completed_ticks(instance, marks["restarted"])) >= ticks // 2,
                    (ticks // 2) * 90 + 300,
                    f"{ticks // 2} policy ticks after the restart",
                    daemon,
                    every=2,
                )
                # a run requested by the last tick must be seen through to its commit
                wait_for(
                    lambda: all(r.dagster_run.is_finished for r in _rollback_runs(instance)),
                    600,
                    "the last rollback runs",
                    daemon,
                )
                say(f"  {ticks} further policy ticks, a daemon restart among them")
        finally:
            daemon.stop()
            for thread in (watcher, sampler):
                thread.halt.set()
                thread.join()
        result = analyse(instance, run, remote, watcher, facts_run, violations, attempts_log, marks)
    result.update(
        instance=instance_config, cpu=cpu, machine_cpu_s=machine[0], machine_wall_s=machine[1], code_load=loaded
    )
    return result


# -- what the instance and the remote say -----------------------------------------------------------------
def _event_times(instance, run_id: str) -> dict[str, float]:
    times: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        if entry.dagster_event is not None:
            times.setdefault(entry.dagster_event.event_type_value, entry.timestamp)
    return times


SEGMENTS = (  # (name, from event, to event) on one violation's timeline; "facts", "tick" and "seen" are ours
    ("facts_to_tick_s", "facts", "tick"),
    ("tick_to_enqueued_s", "tick", "PIPELINE_ENQUEUED"),
    ("queue_wait_s", "PIPELINE_ENQUEUED", "PIPELINE_STARTING"),  # the run coordinator launches it
    ("start_up_s", "PIPELINE_STARTING", "PIPELINE_START"),  # run worker process, code load
    ("step_start_up_s", "PIPELINE_START", "STEP_START"),  # resources (and a step process: multiprocess executor)
    ("step_to_commit_seen_s", "STEP_START", "seen"),  # clone, render, evaluate, commit, push
)


def analyse(
    instance,
    run: Path,
    remote: Path,
    watcher: HeadWatcher,
    facts_run: dict,
    violations: int,
    attempts_log: Path,
    marks: dict,
) -> dict:
    import dagster as dg

    from rai_pipelines.core.registry import load_registry
    from rai_pipelines.defs.keys import model_facts_key

    specs = sorted(load_registry(run / "models").values(), key=lambda s: s.name)[:violations]
    materialised = {  # the facts run's own events: a later run's facts must not move the start
        e.dagster_event.asset_key: e.timestamp
        for e in instance.all_logs(facts_run["run_id"], of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    }
    facts_at = {spec.name: materialised[model_facts_key(spec)] for spec in specs}
    seen = watcher.first_seen()
    commits = rollback_commits(remote)
    runs = {r.dagster_run.run_id: r for r in _rollback_runs(instance)}
    events = {run_id: _event_times(instance, run_id) for run_id in runs}
    ticks = [t for t in _sensor_ticks(instance) if t.timestamp >= marks["daemon_started"] - 1]
    requested_by = {run_id: tick for tick in ticks for run_id in tick.run_ids}
    timelines = {}
    for spec in specs:
        commit = next(c for c in commits if c["Rai-Model"] == spec.name)
        landed = [
            r
            for r in runs.values()
            if r.dagster_run.tags.get("rai-pipelines/decision-id") == commit["Rai-Decision-Id"]
            and r.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        ]
        final = min(landed, key=lambda r: r.create_timestamp)
        root = final.dagster_run.tags.get("dagster/root_run_id", final.dagster_run.run_id)
        points = {
            **events[final.dagster_run.run_id],
            "facts": facts_at[spec.name],
            "tick": requested_by[root].timestamp,
            "seen": seen[commit["sha"]],
        }
        timeline = {name: points[b] - points[a] for name, a, b in SEGMENTS}
        if root != final.dagster_run.run_id:  # earlier attempts failed: their time is in the queue segment
            timeline["earlier_attempts_s"] = points["PIPELINE_ENQUEUED"] - events[root]["PIPELINE_ENQUEUED"]
        timeline.update(
            latency_s=points["seen"] - points["facts"],
            tick_duration_s=requested_by[root].end_timestamp - requested_by[root].timestamp,
            committed_to_seen_s=points["seen"] - commit["committed"],
            run_after_commit_s=points.get("PIPELINE_SUCCESS", points["seen"]) - points["seen"],
            slot_s=points.get("PIPELINE_SUCCESS", points["seen"]) - points["PIPELINE_STARTING"],
            committed_at=commit["committed"],
            seen_at=points["seen"],
            facts_at=points["facts"],
        )
        timelines[spec.name] = timeline
    last_facts = max(facts_at.values())
    last = max(timelines, key=lambda name: timelines[name]["seen_at"])
    violations_committed: dict[tuple[str, str], int] = {}
    for c in commits:
        key = (c["Rai-Model"], c["Rai-Bad-Version"])
        violations_committed[key] = violations_committed.get(key, 0) + 1
    attempts = len(attempts_log.read_text().splitlines()) if attempts_log.exists() else 0
    pushed = int(git(remote, "rev-list", "--count", f"{watcher.heads[0][1]}..refs/heads/main"))
    slots = [  # each run's hold on a concurrency slot: launched until it ended
        (e["PIPELINE_STARTING"], e.get("PIPELINE_SUCCESS") or e.get("PIPELINE_FAILURE") or e["PIPELINE_STARTING"])
        for e in events.values()
        if "PIPELINE_STARTING" in e
    ]
    others = [
        r
        for r in instance.get_run_records()
        if r.dagster_run.job_name != ROLLBACK_JOB
        and r.dagster_run.run_id != facts_run["run_id"]
        and r.create_timestamp.timestamp() >= marks["daemon_started"]
    ]
    failed = [r for r in runs.values() if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
    return {
        "violations": violations,
        "latency_s": timelines[last]["seen_at"] - last_facts,
        "facts_run_s": facts_run["ended"] - facts_run["started"],
        "facts_spread_s": last_facts - min(facts_at.values()),
        "timelines": timelines,
        "last": last,
        "duplicate_commits": sum(n - 1 for n in violations_committed.values()),
        "violations_without_commit": violations - len(violations_committed),
        "rollback_runs": len(runs),
        "failed_runs": len(failed),
        "failure_reasons": sorted({_failure(instance, r.dagster_run.run_id) for r in failed}),
        "retry_runs": sum(1 for r in runs.values() if "dagster/parent_run_id" in r.dagster_run.tags),
        "step_processes": sum(1 for e in events.values() if "STEP_WORKER_STARTING" in e),
        "push_attempts": attempts,
        "pushes_landed": pushed,
        "push_races": attempts - pushed,
        "runs_span_s": (max(b for _, b in slots) - min(a for a, _ in slots)) if slots else 0.0,
        "slots_busy_s": sum(b - a for a, b in slots),
        "ticks": [(t.timestamp, t.end_timestamp, t.status.value, len(t.run_ids)) for t in ticks],
        "busiest_tick": _busiest_tick(ticks, events),
        "other_runs": sorted(
            f"{r.dagster_run.job_name} {r.dagster_run.tags.get('dagster/partition', '')} from "
            f"{r.dagster_run.tags.get('dagster/sensor_name') or r.dagster_run.tags.get('dagster/schedule_name') or '?'}"
            for r in others
        ),
        "marks": marks,
    }


def _busiest_tick(ticks: list, events: dict) -> dict:
    """The tick that requested the most runs: its evaluation (start to the first run enqueued) and
    its run submission (first to last run enqueued)."""
    tick = max(ticks, key=lambda t: len(t.run_ids))
    enqueued = sorted(events[r]["PIPELINE_ENQUEUED"] for r in tick.run_ids if "PIPELINE_ENQUEUED" in events.get(r, {}))
    if not enqueued:
        return {"runs": 0}
    return {
        "runs": len(enqueued),
        "evaluation_s": enqueued[0] - tick.timestamp,
        "submission_s": enqueued[-1] - enqueued[0],
    }


def _failure(instance, run_id: str) -> str:
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value in ("STEP_FAILURE", "PIPELINE_FAILURE"):
            return (entry.message or event.message or "")[:200]
    return "unknown"


# -- the report -------------------------------------------------------------------------------------------
def _median_max(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}/{max(values):.1f}"


def _timeline_line(t: dict) -> str:
    return (
        f"facts -> sensor tick {t['facts_to_tick_s']:.1f} s (that tick ran {t['tick_duration_s']:.1f} s), "
        f"tick -> run enqueued {t['tick_to_enqueued_s']:.1f} s, queue wait {t['queue_wait_s']:.1f} s"
        + (f" (of which earlier failed attempts {t['earlier_attempts_s']:.1f} s)" if "earlier_attempts_s" in t else "")
        + f", run start-up (process, code load) {t['start_up_s']:.1f} s, step start-up (resources; a step process "
        f"and code load under the multiprocess executor) {t['step_start_up_s']:.1f} s, step -> commit seen "
        f"{t['step_to_commit_seen_s']:.1f} s (clone, render, evaluate, commit, push); commit time -> seen "
        f"{t['committed_to_seen_s']:.1f} s; the run ends {t['run_after_commit_s']:.1f} s after the commit is seen"
    )


def report(result: dict, say) -> dict:
    n, t, runs = (result["violations"], result["timelines"], max(result["rollback_runs"], 1))
    last, label, target = (t[result["last"]], "latency_s" if n == 1 else f"latency_s_{n}_models", 60 if n == 1 else 120)
    if n == 1:
        say(f"one violation: {label} {result['latency_s']:.1f} s (target {target}), facts event to commit seen:")
    else:
        say(
            f"{n} violations in {n} applications: {label} {result['latency_s']:.1f} s (target {target}), from the "
            f"last facts event (the {n} spread over {result['facts_spread_s']:.1f} s) to the last commit seen; "
            f"the last commit's ({result['last']}) timeline:"
        )
    say("    " + _timeline_line(last))
    if n > 1:
        names = [name for name, _, _ in SEGMENTS] + ["latency_s"]
        say(
            "  per violation, median/max s: "
            + ", ".join(f"{m} {_median_max([x[m] for x in t.values()])}" for m in names)
        )
    reasons = "; ".join(result["failure_reasons"])
    say(
        f"  runs: {result['rollback_runs']} rollback runs ({result['failed_runs']} failed, {result['retry_runs']} "
        f"retries{': ' + reasons if reasons else ''}); push attempts {result['push_attempts']}, landed "
        f"{result['pushes_landed']}, push races retried {result['push_races']}"
    )
    slots, span, busy = (result["instance"]["max_concurrent_runs"], result["runs_span_s"], result["slots_busy_s"])
    cpu = result["cpu"]
    per_run = sum(cpu.get(k, 0.0) for k in ("run workers", "step workers", "workers", "tools")) / runs
    window = result["marks"]["remediated"] - result["marks"]["facts_child"]
    say(
        f"  slots: each run held one {busy / runs:.1f} s (launch to end); {result['rollback_runs']} runs over "
        f"{span:.1f} s on {slots} slot(s) = {busy:.0f} of {span * slots:.0f} slot-s busy "
        f"({busy / max(span * slots, 1e-9):.0%}), dequeue interval {result['instance']['dequeue_interval_s']} s"
    )
    say(
        "  CPU from the facts to the last commit ("
        + f"{window:.0f} s): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(cpu.items()))
        + f"; {per_run:.1f} CPU-s per rollback run (run, step workers, any git or kubectl seen); the machine was "
        f"{result['machine_cpu_s'] / result['machine_wall_s']:.2f} of {os.cpu_count()} cores busy (other processes "
        f"included); {n} runs need {per_run * n / os.cpu_count():.0f} s of all cores at best"
    )
    say(
        f"  a new process loading the code location ({n} model(s)) takes {result['code_load']['cpu_s']:.1f} CPU-s "
        f"({result['code_load']['wall_s']:.1f} s); the run worker loads it, and a step worker again in "
        f"{result['step_processes']} of {result['rollback_runs']} runs (multiprocess executor)"
    )
    ticks, busiest = [b - a for a, b, _, _ in result["ticks"] if b], result["busiest_tick"]
    if busiest["runs"] > 1:
        say(
            f"  the tick that requested {busiest['runs']} runs: evaluation {busiest['evaluation_s']:.1f} s (to its "
            f"first run enqueued), then {busiest['submission_s']:.1f} s submitting them "
            f"({busiest['submission_s'] / (busiest['runs'] - 1):.2f} s a run)"
        )
    say(
        f"  policy sensor: {len(ticks)} ticks, {_median_max(ticks)} s each (median/max); facts run "
        f"{result['facts_run_s']:.1f} s; other runs the daemon launched: {result['other_runs'] or 'none'}; "
        f"duplicate_commits {result['duplicate_commits']} (target 0), violations without a commit "
        f"{result['violations_without_commit']}; load average {os.getloadavg()[0]:.1f}"
    )
    return {
        label: round(result["latency_s"], 1),
        **{f"{label}_{name}": round(last[name], 2) for name, _, _ in SEGMENTS},
        f"{label}_tick_duration_s": round(last["tick_duration_s"], 2),
        f"{label}_push_races": result["push_races"],
        f"{label}_retry_runs": result["retry_runs"],
        f"{label}_slot_s_per_run": round(busy / runs, 2),
        f"{label}_cpu_s_per_run": round(per_run, 2),
        f"{label}_code_load_cpu_s": round(result["code_load"]["cpu_s"], 2),
        f"{label}_duplicate_commits": result["duplicate_commits"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=50, help="simultaneous violations, one application each")
    parser.add_argument(
        "--ticks", type=int, default=10, help="policy sensor ticks after the rollbacks (half after a restart)"
    )
    parser.add_argument("--scenario", choices=("both", "single", "batch"), default="both")
    parser.add_argument("--max-concurrent-runs", type=int, help="instead of dagster.yaml's")
    parser.add_argument(
        "--dequeue-interval", type=int, help="the run queue's dequeue interval in s, instead of dagster.yaml's"
    )
    parser.add_argument(
        "--phase", type=float, default=0.0, help="seconds after a sensor tick ends that the facts start"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="for the rollbacks of one scenario")
    parser.add_argument("--no-explanations", action="store_true", help="copies without the explanation report")
    parser.add_argument(
        "--no-multivariate", action="store_true", help="copies without the domain-classifier drift test"
    )
    parser.add_argument("--facts-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--violations", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.facts_child:
        facts_child(args)
        return
    if args.models < 1 or args.ticks < 0:
        parser.error("--models must be positive and --ticks not negative")
    options = CopyOptions(explanations=not args.no_explanations, multivariate=not args.no_multivariate)
    figures: dict = {}
    scenarios = {"both": (1, args.models), "single": (1,), "batch": (args.models,)}[args.scenario]
    for count in scenarios:
        base = ensure_world(count, options, print)
        ticks = args.ticks if count == scenarios[-1] else 0
        print(f"measuring {count} violation(s) with the real daemon ({base / 'run'}) ...", flush=True)
        result = measure(base, count, args, ticks, lambda line: print(line, flush=True))
        figures.update(report(result, lambda line: print(line, flush=True)))
        if ticks:
            figures["duplicate_commits"] = result["duplicate_commits"]
        figures.update(
            max_concurrent_runs=result["instance"]["max_concurrent_runs"],
            dequeue_interval_s=result["instance"]["dequeue_interval_s"],
        )
    figures.update(
        ticks_after=args.ticks, phase_s=args.phase, cores=os.cpu_count(), load_1m=round(os.getloadavg()[0], 1)
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
