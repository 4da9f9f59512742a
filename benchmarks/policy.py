"""Policy engine speed: decisions per second on one core with the built bundle reused, and one
policy-sensor tick over many deployed model versions (targets: 2,000 decisions/s, tick under 5 s).

    .venv/bin/python benchmarks/policy.py [--decisions 20000] [--versions 1000] [--deployments 1000]

The tick is the real sensor (build_sensor_context on a test instance): it checks the GitOps remote,
clones it, renders every overlay, evaluates every Deployment with the facts of every version and
appends the decisions to the log. The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from rai_pipelines.governance.bundle import PolicyBundle
from rai_pipelines.governance.rego import RegopyEngine, evaluate_decisions
from rai_pipelines.settings import PROJECT_ROOT

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
        "spec": {"template": {"metadata": {"labels": {"app": app, "model-version": version}}}},
    }


def decisions_per_second(decisions: int, versions: int) -> tuple[float, float]:
    rng = random.Random(7)
    facts = facts_for(versions, rng)
    manifests = [deployment("credit-scoring-ai", f"{rng.randrange(versions)}.0.0") for _ in range(decisions)]
    shipped = PolicyBundle.load(PROJECT_ROOT / "policies")
    start = time.perf_counter()
    results = evaluate_decisions(RegopyEngine(), shipped, manifests, facts)
    full = decisions / (time.perf_counter() - start)
    expected = sum(
        1
        for m in manifests
        if (f := facts[m["spec"]["template"]["metadata"]["labels"]["model-version"]])["fairness_score"] < 0.8
        or f["estimated_cost_per_inference_usd"] > 0.005
    )
    assert sum(1 for r in results if not r.allowed) == expected
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "reference.rego").write_text(REFERENCE)
        reference = PolicyBundle.load(tmp)
        engine = RegopyEngine()
        start = time.perf_counter()
        denies = engine.evaluate(reference, "data.apexlogic.ai_governance.deny", manifests, {"ai_models": facts})
        brief = decisions / (time.perf_counter() - start)
        assert sum(1 for d in denies if d) == expected
    return full, brief


def sensor_tick_seconds(deployments: int, versions: int, work: Path) -> float:
    import dagster as dg
    from rai_pipelines.defs.sensors import build_policy_sensor

    from rai_pipelines.core.lake import Lake
    from rai_pipelines.core.registry import load_registry
    from rai_pipelines.defs.gitops.resources import GitOpsResource
    from rai_pipelines.defs.governance.resources import PolicyResource
    from rai_pipelines.defs.resources import LakeResource
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
    Lake(str(work / "lake")).write_table("governance_facts", {"date": "2023-11-06"}, facts_table(rows))
    lake = LakeResource(
        root=str(work / "lake"),
        decision_log_dir=str(work / "log"),
        pseudonymisation_key_file=str(work / "key"),
        create_missing_key=True,
    )
    gitops = GitOpsResource(remote=str(remote), workdir=str(work / "checkouts"))
    policy = PolicyResource(bundle_dir=str(PROJECT_ROOT / "policies"))
    from rai_pipelines.defs.jobs import gitops_rollback_job

    sensor = build_policy_sensor(gitops_rollback_job)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("governance_facts", partition="2023-11-06"))
        context = dg.build_sensor_context(
            instance=instance, resources={"lake": lake, "gitops": gitops, "policy": policy}
        )
        start = time.perf_counter()
        result = sensor.evaluate_tick(context)
        cold = time.perf_counter() - start
        # The next day's facts arrive; the GitOps repository is unchanged, so its render is reused.
        instance.report_runless_asset_event(dg.AssetMaterialization("governance_facts", partition="2023-11-07"))
        context = dg.build_sensor_context(
            instance=instance, cursor=result.cursor, resources={"lake": lake, "gitops": gitops, "policy": policy}
        )
        start = time.perf_counter()
        warm_result = sensor.evaluate_tick(context)
        warm = time.perf_counter() - start
        # A rollback commits to one overlay: the next tick clones and renders only that overlay again.
        edit = work / "edit"
        subprocess.run(["git", "clone", "-q", str(remote), str(edit)], check=True)
        patch = edit / "apps" / "model-0000" / "overlays" / "production" / "model-version.yaml"
        patch.write_text(patch.read_text().replace('model-version: "', 'model-version: "9'))
        subprocess.run(
            ["git", "-C", str(edit), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "pin"], check=True
        )
        subprocess.run(["git", "-C", str(edit), "push", "-q", "origin", "main"], check=True)
        context = dg.build_sensor_context(
            instance=instance, cursor=warm_result.cursor, resources={"lake": lake, "gitops": gitops, "policy": policy}
        )
        start = time.perf_counter()
        sensor.evaluate_tick(context)
        after_commit = time.perf_counter() - start
    requested = len(result.run_requests)
    records = sum(1 for _ in open(work / "log" / "decisions.jsonl"))
    assert records == 3 * deployments, (records, deployments)
    assert len(warm_result.run_requests) == requested
    print(
        f"sensor tick: {deployments} deployments over {versions} versions, {requested} rollbacks requested, "
        f"{deployments} decisions logged: {cold:.2f} s with a new GitOps commit to clone and render, "
        f"{warm:.2f} s when only the facts changed, {after_commit:.2f} s after a commit to one overlay"
    )
    return cold, warm, after_commit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--versions", type=int, default=1_000)
    parser.add_argument("--deployments", type=int, default=1_000)
    args = parser.parse_args()
    full, brief = decisions_per_second(args.decisions, args.versions)
    print(
        f"{args.decisions} decisions over {args.versions} versions: {full:.0f}/s for the shipped policy's "
        f"decision object, {brief:.0f}/s for the brief's deny rules"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cold, warm, after_commit = sensor_tick_seconds(args.deployments, args.versions, Path(tmp))
    print(
        json.dumps(
            {
                "decisions_per_s": round(full),
                "reference_decisions_per_s": round(brief),
                "sensor_tick_s": round(cold, 2),
                "sensor_tick_warm_s": round(warm, 2),
                "sensor_tick_after_commit_s": round(after_commit, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
