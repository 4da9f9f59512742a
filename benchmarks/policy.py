"""Policy engine speed, on one core: decisions per second for the full decision object on OPA's
evaluator (with 1,000 and 10,000 model versions in data.ai_models, one call per decision, and a
tick's decisions in one call, and one call per decision in a process started with GOGC=400, a
deployment's setting), on regopy beside it; and the policy sensor's tick after a commit, in
a new process with the render cache an earlier process left. Targets: 3,000 decisions/s whatever
the number of versions, a tick under 5 s.

    .venv/bin/python benchmarks/policy.py [--decisions 20000] [--versions 1000] [--deployments 1000]

The tick is the real sensor (build_sensor_context on a test instance): it checks the GitOps remote,
clones it, renders the overlays (or takes them from the render cache), evaluates every Deployment
with the facts of every version and appends the decisions to the log. The last line is one JSON
object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import pin_to_one_core  # noqa: E402

from rai_pipelines.governance.bundle import PolicyBundle  # noqa: E402
from rai_pipelines.governance.rego import evaluate_decisions, make_engine  # noqa: E402
from rai_pipelines.settings import PROJECT_ROOT  # noqa: E402

REFERENCE = """package apexlogic.ai_governance

import data.ai_models

deny contains msg if {
	input.kind == "Deployment"
	input.metadata.labels.app == "credit-scoring-ai"
	ai_models[input.spec.template.metadata.labels["model-version"]].fairness_score < 0.8
	msg := "AI model fairness score below acceptable threshold (0.8)."
}

deny contains msg if {
	input.kind == "Deployment"
	input.metadata.labels.app == "credit-scoring-ai"
	ai_models[input.spec.template.metadata.labels["model-version"]].estimated_cost_per_inference_usd > 0.005
	msg := "Estimated inference cost exceeds budget (0.005 USD)."
}
"""


def facts_for(versions: int, rng: random.Random) -> dict:
    return {
        f"{i}.0.0": {
            "fairness_applicable": True,
            "fairness_score": rng.uniform(0.6, 1.0),
            "estimated_cost_per_inference_usd": rng.uniform(0.0005, 0.008),
            "drift_share": 0.1,
            "drifted_features": [],
        }
        for i in range(versions)
    }


def deployment(app: str, version: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "labels": {"app": app, "team": "t", "rai-pipelines.io/governed": "true"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": app, "model-version": version}},
                "spec": {"containers": [{"name": "model", "image": f"registry.example.com/{app}:{version}"}]},
            }
        },
    }


def _expected_denials(manifests: list[dict], facts: dict) -> int:
    return sum(
        1
        for m in manifests
        if (f := facts[m["spec"]["template"]["metadata"]["labels"]["model-version"]])["fairness_score"] < 0.8
        or f["estimated_cost_per_inference_usd"] > 0.005
    )


def decisions_per_second(engine_name: str, decisions: int, versions: int, one_call: bool = False) -> float:
    """The shipped policy's decision object for `decisions` Deployments: one evaluation per decision
    (a gate, a rollback's re-check), or all of them in one call (a sensor tick)."""
    rng = random.Random(7)
    facts = facts_for(versions, rng)
    manifests = [deployment("credit-scoring-ai", f"{rng.randrange(versions)}.0.0") for _ in range(decisions)]
    shipped = PolicyBundle.load(PROJECT_ROOT / "policies")
    engine = make_engine(engine_name)
    evaluate_decisions(engine, shipped, manifests[:1], facts)  # compiled once, as the sensor does
    start = time.perf_counter()
    if one_call:
        results = evaluate_decisions(engine, shipped, manifests, facts)
    else:
        results = [evaluate_decisions(engine, shipped, [m], facts)[0] for m in manifests]
    rate = decisions / (time.perf_counter() - start)
    assert sum(1 for r in results if not r.allowed) == _expected_denials(manifests, facts)
    return rate


def reference_decisions_per_second(decisions: int, versions: int) -> float:
    """The reference policy's two deny rules alone, on OPA, one call per decision."""
    rng = random.Random(7)
    facts = facts_for(versions, rng)
    manifests = [deployment("credit-scoring-ai", f"{rng.randrange(versions)}.0.0") for _ in range(decisions)]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "reference.rego").write_text(REFERENCE)
        reference = PolicyBundle.load(tmp)
        engine = make_engine("opa")
        engine.evaluate(reference, "data.apexlogic.ai_governance.deny", manifests[:1], {"ai_models": facts})
        start = time.perf_counter()
        denies = [
            engine.evaluate(reference, "data.apexlogic.ai_governance.deny", [m], {"ai_models": facts})[0]
            for m in manifests
        ]
        rate = decisions / (time.perf_counter() - start)
    assert sum(1 for d in denies if d) == _expected_denials(manifests, facts)
    return rate


def build_gitops_world(deployments: int, versions: int, work: Path) -> dict:
    """A GitOps remote of `deployments` governed apps (one production overlay each) and the facts of
    `versions` model versions in a lake."""
    from rai_pipelines.core.lake import Lake
    from rai_pipelines.core.registry import load_registry
    from rai_pipelines.demo.world import _base_files
    from rai_pipelines.governance.facts import facts_table

    rng = random.Random(11)
    spec = load_registry(PROJECT_ROOT / "models")["credit-scoring-ai"]
    seed = work / "seed"
    for i in range(deployments):
        app = f"model-{i:04d}"
        version = f"{rng.randrange(versions)}.0.0"
        for name, text in _base_files(spec).items():
            text = text.replace("credit-scoring-ai", app).replace(
                "team: credit-risk", 'team: t\n    rai-pipelines.io/governed: "true"'
            )
            (seed / "apps" / app / "base").mkdir(parents=True, exist_ok=True)
            (seed / "apps" / app / "base" / name).write_text(text)
        overlay = seed / "apps" / app / "overlays" / "production"
        overlay.mkdir(parents=True)
        (overlay / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: ml\n"
            "resources:\n  - ../../base\npatches:\n  - path: model-version.yaml\n"
        )
        (overlay / "model-version.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\nspec:\n  template:\n"
            f'    metadata:\n      labels:\n        model-version: "{version}"\n'
        )
    remote = work / "gitops.git"
    for args in (
        ["init", "-q", "-b", "main", str(seed)],
        ["-C", str(seed), "add", "-A"],
        ["-C", str(seed), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "seed"],
        ["clone", "-q", "--bare", str(seed), str(remote)],
    ):
        subprocess.run(["git", *args], check=True)
    facts = facts_for(versions, rng)
    rows = [
        {"date": "2023-11-06", "model_name": f"m{i}", "model_version": v, "inference_count": 1000, **f}
        for i, (v, f) in enumerate(facts.items())
    ]
    lake = Lake(str(work / "lake"))
    for row in rows:  # facts are per model: one partition each
        lake.write_table("governance_facts", {"model": row["model_name"], "date": row["date"]}, facts_table([row]))
    return {"remote": remote, "work": work}


# One sensor tick in this process, with the resources of a world: the figure the child prints.
TICK = """
import json, sys, time
import dagster as dg
from rai_pipelines.defs.gitops.resources import GitOpsResource
from rai_pipelines.defs.governance.resources import PolicyResource
from rai_pipelines.defs.governance.sensors import build_policy_sensor
from rai_pipelines.defs.jobs import gitops_rollback_job
from rai_pipelines.defs.resources import LakeResource

work, policies = sys.argv[1], sys.argv[2]
resources = {
    "lake": LakeResource(root=work + "/lake", decision_log_dir=work + "/log",
                         pseudonymisation_key_file=work + "/key", create_missing_key=True),
    "gitops": GitOpsResource(remote=work + "/gitops.git", workdir=work + "/checkouts"),
    "policy": PolicyResource(bundle_dir=policies),
}
facts_key = dg.AssetKey(["m0", "governance_facts"])  # the sensor's trigger: any model's new facts
sensor = build_policy_sensor(gitops_rollback_job, [facts_key])
with dg.instance_for_test() as instance:
    instance.report_runless_asset_event(dg.AssetMaterialization(facts_key, partition="2023-11-06"))
    context = dg.build_sensor_context(instance=instance, resources=resources)
    start = time.perf_counter()
    result = sensor.evaluate_tick(context)
    print(json.dumps({"tick_s": time.perf_counter() - start, "run_requests": len(result.run_requests)}))
"""


GOGC_RUN = """
import json, sys
sys.path.insert(0, sys.argv[1])
from policy import decisions_per_second
rate = decisions_per_second("opa", int(sys.argv[2]), int(sys.argv[3]))
# VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's peak when it was forked
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps([rate, peak_kb / 1024]))
"""


def decisions_per_second_with_gogc(gogc: int, decisions: int, versions: int) -> tuple[float, float]:
    """`decisions_per_second` on OPA in a new process started with GOGC set: the evaluator's Go
    runtime reads GOGC from the environment the process started with (setting os.environ later does
    nothing), so this is a deployment's setting, not the library's. Inherits this process's CPU.
    Returns the rate and that process's peak RSS in MB."""
    out = subprocess.run(
        [sys.executable, "-c", GOGC_RUN, str(Path(__file__).resolve().parent), str(decisions), str(versions)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GOGC": str(gogc)},
    )
    rate, peak_rss_mb = json.loads(out.stdout.strip().splitlines()[-1])
    return rate, peak_rss_mb


def _tick_in_a_new_process(work: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", TICK, str(work), str(PROJECT_ROOT / "policies")],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _commit_to_one_overlay(remote: Path, work: Path, name: str) -> None:
    edit = work / name
    subprocess.run(["git", "clone", "-q", str(remote), str(edit)], check=True)
    patch = edit / "apps" / "model-0000" / "overlays" / "production" / "model-version.yaml"
    patch.write_text(patch.read_text().replace('model-version: "', 'model-version: "9'))
    subprocess.run(
        ["git", "-C", str(edit), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "pin"], check=True
    )
    subprocess.run(["git", "-C", str(edit), "push", "-q", "origin", "main"], check=True)


def sensor_ticks(deployments: int, versions: int, work: Path) -> dict:
    """The first render of every overlay; then, in a new process each: the first tick (which leaves
    the render cache) and the tick after a commit to one overlay, with that cache."""
    from rai_pipelines.gitops.git import GitOpsCheckout
    from rai_pipelines.gitops.render import RenderCache, rendered_deployments

    world = build_gitops_world(deployments, versions, work)
    with GitOpsCheckout(str(world["remote"]), "main", str(work / "first-render")) as checkout:
        start = time.perf_counter()
        rendered, failures = rendered_deployments(
            checkout.path, "apps/*/overlays/production", checkout.head, RenderCache(work / "first-render-cache")
        )
        first_render = time.perf_counter() - start
    assert len(rendered) == deployments and not failures
    first = _tick_in_a_new_process(work)
    _commit_to_one_overlay(world["remote"], work, "edit")
    after_commit = _tick_in_a_new_process(work)
    records = sum(1 for _ in open(work / "log" / "decisions.jsonl"))
    assert records == 2 * deployments, (records, deployments)
    # the pinned overlay's new version has no facts: an alert now, whatever it was before
    assert abs(after_commit["run_requests"] - first["run_requests"]) <= 1
    print(
        f"sensor: {deployments} deployments over {versions} versions, {first['run_requests']} rollbacks requested: "
        f"first render of every overlay {first_render:.2f} s on {os.cpu_count()} cores; a tick in a new process "
        f"{first['tick_s']:.2f} s with no render cache, {after_commit['tick_s']:.2f} s after a commit to one overlay "
        "with the cache the first left"
    )
    return {"first_render_s": first_render, "first_tick_s": first["tick_s"], "sensor_tick_s": after_commit["tick_s"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--versions", type=int, default=1_000)
    parser.add_argument("--deployments", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ticks = sensor_ticks(args.deployments, args.versions, Path(tmp))  # on every core, like a code server
    cpu = pin_to_one_core()
    figures = {
        "decisions_per_s": decisions_per_second("opa", args.decisions, args.versions),
        "decisions_per_s_10000_versions": decisions_per_second("opa", args.decisions, 10_000),
        "tick_decisions_per_s": decisions_per_second("opa", args.decisions, args.versions, one_call=True),
        "decisions_per_s_regopy": decisions_per_second("regopy", min(args.decisions, 5_000), args.versions),
        "decisions_per_s_regopy_one_call": decisions_per_second(
            "regopy", min(args.decisions, 5_000), args.versions, one_call=True
        ),
        "reference_decisions_per_s": reference_decisions_per_second(args.decisions, args.versions),
    }
    # not the default: what a deployment that starts its processes with GOGC=400 gets (README, Configuration)
    figures["decisions_per_s_gogc400"], gogc_rss_mb = decisions_per_second_with_gogc(400, args.decisions, args.versions)
    print(
        f"on CPU {cpu} alone, {args.decisions} decisions of the shipped policy's decision object: "
        + ", ".join(f"{k} {v:.0f}" for k, v in figures.items())
    )
    print(
        json.dumps(
            {
                **{k: round(v) for k, v in figures.items()},
                **{k: round(v, 2) for k, v in ticks.items()},
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "gogc400_peak_rss_mb": round(gogc_rss_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
