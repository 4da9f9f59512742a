"""The late-labels sensor: labels arrive days after the traffic they belong to; the days they
belong to are re-materialised (snapshot, reports, facts) exactly once per labels file version."""

import json
from datetime import date, timedelta

import dagster as dg

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.defs.keys import model_asset_keys, model_facts_key
from rai_pipelines.defs.resources import LakeResource, ModelRegistryResource
from rai_pipelines.monitoring.labels import label_partitions, labels_read, match_labels


def build_late_labels_sensor(
    specs, refresh_job, lookback_days: int = 62, minimum_interval_seconds: int = 60
) -> dg.SensorDefinition:
    """Watches each model's labels files and re-materialises exactly the days that hold requests of
    a labels file whose current version their snapshot did not read. The cursor caches, per file
    version, the days it belongs to (found once, by request id); staleness is checked every tick
    against what each snapshot recorded, so a failed rebuild is requested again."""

    @dg.sensor(
        job=refresh_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Late labels: finds the traffic days that newly arrived labels belong to and re-materialises "
        "those days' feature snapshots, reports and governance facts.",
    )
    def late_labels_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
        store = lake.lake()
        cached = json.loads(context.cursor) if context.cursor else {}
        cursor: dict[str, dict] = {}
        stale: dict[tuple[str, str], list[str]] = {}
        for spec in specs:
            partitions = label_partitions(store, spec)
            if not partitions:
                continue
            horizon = (date.fromisoformat(partitions[-1]["date"]) - timedelta(days=lookback_days)).isoformat()
            recorded: dict[str, dict | None] = {}
            for partition in (p for p in partitions if p["date"] >= horizon):
                key, fingerprint = f"{spec.name}/{partition['date']}", store.fingerprint("labels", partition)
                entry = cached.get(key)
                if entry is None or entry.get("fingerprint") != fingerprint:
                    try:
                        arrival = match_labels(store, spec, partition)
                    except BadInputError as exc:  # the file stays as it is; it is read again once rewritten
                        context.log.error(f"late labels: {exc}")
                        cursor[key] = {"fingerprint": fingerprint, "days": [], "error": str(exc)}
                        continue
                    if arrival.unmatched:
                        window = f"the {spec.label_max_delay_days} days before {arrival.arrival}"
                        context.log.warning(
                            f"{store.uri('labels', partition)}: {arrival.unmatched} of {arrival.rows} labels match "
                            f"no request of {spec.name} in {window}"
                        )
                    entry = {"fingerprint": arrival.fingerprint, "days": list(arrival.days)}
                cursor[key] = entry
                for day in entry["days"]:
                    if day not in recorded:
                        recorded[day] = labels_read(store, spec, day)
                    read = recorded[day]
                    if read is not None and read.get(partition["date"]) != entry["fingerprint"]:
                        stale.setdefault((spec.name, day), []).append(f"{partition['date']}:{entry['fingerprint']}")
        by_name = {spec.name: spec for spec in specs}
        requests = [
            dg.RunRequest(
                run_key=f"late-labels:{model}:{day}:{','.join(versions)}",
                partition_key=day,
                asset_selection=[*model_asset_keys(by_name[model]), model_facts_key(by_name[model])],
                tags={"rai-pipelines/model": model, "rai-pipelines/labels-arrived": ",".join(versions)},
            )
            for (model, day), versions in sorted(stale.items())
        ]
        return dg.SensorResult(
            run_requests=requests,
            cursor=json.dumps(cursor, sort_keys=True),
            skip_reason=None if requests else "every snapshot has read the current version of its labels",
        )

    return late_labels_sensor


def build_model_registry_sensor(minimum_interval_seconds: int = 300) -> dg.SensorDefinition:
    """Reports model files the code location left out: a bad file does not stop the other models'
    assets, schedules and sensors, and each tick of this sensor fails, naming the file and what is
    wrong with it, until it is fixed (then the code location must be reloaded to add the model)."""

    @dg.sensor(
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Model registry: fails, naming each model file that is not valid (that model's assets are "
        "left out of the code location until it is fixed and the location reloaded).",
    )
    def model_registry_sensor(context: dg.SensorEvaluationContext, registry: ModelRegistryResource):
        specs, problems = registry.load_reporting()
        if problems:
            raise BadInputError(
                f"{len(problems)} model file(s) left out of the code location: " + "; ".join(problems.values())
            )
        return dg.SkipReason(f"all {len(specs)} model files are valid")

    return model_registry_sensor
