"""The demo world's utilisation telemetry: what a Prometheus `query_range` call returns for each
serving replica, saved one file per metric and day as a collector would (for instance a CronJob
running `curl .../api/v1/query_range?query=...&step=300`).

The figures follow each model's traffic and a plausible serving profile, not a random draw:
- credit-scoring-ai 1.4.2 on two m5.large replicas uses about a quarter of a core each; 2.0.0 on a
  g5.2xlarge keeps its GPU a few percent busy (the same scores moved to a GPU);
- employment-screening-ai runs two c5.xlarge replicas (4 vCPUs each) at about half a core at its
  daily peak: over-provisioned, which the FinOps layer's rightsizing finds.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from rai_pipelines.core.registry import ModelSpec

STEP_SECONDS = 300
MIB = 1024 * 1024

# per model: (CPU cores per replica at the daily peak, resident memory in MiB, GPU busy share)
PROFILES = {
    "credit-scoring-ai": (0.30, 900.0, 0.04),
    "employment-screening-ai": (0.55, 1400.0, 0.0),
}


def telemetry_file(root: Path, day: date, metric: str) -> Path:
    return root / "prometheus" / day.isoformat() / f"{metric}.json"


def _series(name: str, version: str, replica: int, stamps: np.ndarray, values: np.ndarray) -> dict:
    return {
        "metric": {
            "namespace": "ml-production",
            "pod": f"{name}-{version.replace('.', '-')}-{replica}",
            "app": name,
            "model_version": version,
        },
        "values": [[int(t), f"{v:.6g}"] for t, v in zip(stamps, values, strict=True)],
    }


def write_telemetry(root: Path, specs: list[ModelSpec], days: list[date], deployed, inferences_per_day) -> None:
    """One `query_range` response per metric and day: cpu_cores, memory_bytes, gpu_utilisation (for
    GPU instances) and inferences_per_s, a series per replica of the version deployed that day.
    `deployed(spec, day)` names the version; `inferences_per_day(spec, day)` its traffic."""
    rng = np.random.default_rng(7)
    for day in days:
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        stamps = np.arange(int(start.timestamp()), int((start + timedelta(days=1)).timestamp()), STEP_SECONDS)
        hours = (stamps - stamps[0]) / 3600.0
        diurnal = 0.55 + 0.45 * np.clip(np.sin((hours - 6) / 24 * 2 * np.pi), 0, None)  # busiest mid-afternoon
        results: dict[str, list[dict]] = {
            m: [] for m in ("cpu_cores", "memory_bytes", "gpu_utilisation", "inferences_per_s")
        }
        for spec in specs:
            version = deployed(spec, day)
            serving = spec.version(version).serving
            peak_cpu, memory_mib, gpu_busy = PROFILES.get(spec.name, (0.3, 1000.0, 0.0))
            per_second = inferences_per_day(spec, day) / 86400 / serving.replicas
            for replica in range(serving.replicas):
                noise = rng.normal(1.0, 0.06, stamps.size).clip(0.7, 1.3)
                load = diurnal * noise
                results["cpu_cores"].append(_series(spec.name, version, replica, stamps, peak_cpu * load))
                memory = memory_mib * MIB * (1 + 0.03 * rng.standard_normal(stamps.size).clip(-2, 2))
                results["memory_bytes"].append(_series(spec.name, version, replica, stamps, memory))
                results["inferences_per_s"].append(
                    _series(spec.name, version, replica, stamps, per_second * load / diurnal.mean())
                )
                if serving.instance_type.startswith(("g", "p")):
                    results["gpu_utilisation"].append(
                        _series(spec.name, version, replica, stamps, (gpu_busy * load).clip(0, 1))
                    )
        for metric, series in results.items():
            target = telemetry_file(root, day, metric)
            target.parent.mkdir(parents=True, exist_ok=True)
            document = {"status": "success", "data": {"resultType": "matrix", "result": series}}
            target.write_text(json.dumps(document))
