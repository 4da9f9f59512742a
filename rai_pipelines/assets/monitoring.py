"""Per-model monitoring assets, built from the model registry: feature snapshots, drift and
fairness reports, one partition per day. Adding a model file adds its assets."""

import dagster as dg
import pandas as pd
import pyarrow as pa

from rai_pipelines.errors import BadInputError
from rai_pipelines.fairness import demographic_parity, fairness_score
from rai_pipelines.markdown import table
from rai_pipelines.partitions import daily_partitions
from rai_pipelines.registry import ModelSpec
from rai_pipelines.resources import LakeResource
from rai_pipelines.snapshots import PROTECTED_PREFIX, build_snapshot


def _partition(spec: ModelSpec, day: str) -> dict[str, str]:
    return {"model": spec.name, "date": day}


def read_snapshot(lake, spec: ModelSpec, day: str) -> pd.DataFrame:
    return lake.read_table("feature_snapshots", _partition(spec, day)).to_pandas()


def read_reference(lake, spec: ModelSpec) -> pd.DataFrame:
    partition = {"model": spec.name}
    if not lake.exists("reference", partition):
        raise BadInputError(f"{spec.name}: no reference window at {lake.uri('reference', partition)}")
    return lake.read_table("reference", partition).to_pandas()


def drift_summary(spec: ModelSpec, reference: pd.DataFrame, snapshot: pd.DataFrame) -> dict:
    from rai_pipelines.drift import AlibiTabularDrift

    detector = AlibiTabularDrift(
        list(spec.numeric_features), list(spec.categorical_features), spec.drift_p_value, spec.drift_correction
    )
    versions = {}
    for version, current in snapshot.groupby("model_version", sort=True):
        result = detector.detect(reference, current, score_column="score")
        versions[version] = {
            "rows": result.current_rows,
            "reference_rows": result.reference_rows,
            "threshold": result.threshold,
            "correction": result.correction,
            "dataset_drift": result.dataset_drift,
            "drift_share": result.drift_share,
            "drifted_features": result.drifted_features,
            "prediction_drift_p_value": result.prediction_p_value,
            "prediction_drift": result.prediction_drift,
            "features": [vars(f) for f in result.features],
        }
    return {"model": spec.name, "detector": "alibi-detect TabularDrift + KSDrift(score)", "versions": versions}


def fairness_summary(spec: ModelSpec, snapshot: pd.DataFrame) -> dict:
    versions = {}
    for version, current in snapshot.groupby("model_version", sort=True):
        results = [
            demographic_parity(
                current["decision"],
                current[PROTECTED_PREFIX + attr],
                spec.favourable_outcome,
                spec.min_group_size,
                attr,
                attr in spec.enforced_protected_attributes,
            )
            for attr in spec.protected_attributes
        ]
        worst = min((r for r in results if r.enforced and r.ratio is not None), key=lambda r: r.ratio, default=None)
        versions[version] = {
            "rows": len(current),
            "favourable_rate": float((current["decision"] == spec.favourable_outcome).mean()),
            "fairness_score": fairness_score(results),
            "worst_attribute": worst.attribute if worst else None,
            "worst_group": worst.worst_group if worst else None,
            "attributes": [vars(r) for r in results],
        }
    return {
        "model": spec.name,
        "metric": "demographic parity ratio of the favourable outcome (four-fifths rule)",
        "min_group_size": spec.min_group_size,
        "versions": versions,
    }


def _ratio_text(ratio: float | None) -> str:
    return f"{ratio:.3f}" if ratio is not None else "–"


def build_model_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    prefix = [spec.asset_prefix]
    tags = {"model": spec.name}

    @dg.asset(
        name="feature_snapshots",
        key_prefix=prefix,
        partitions_def=daily_partitions,
        group_name="monitoring",
        kinds={"parquet"},
        tags=tags,
        owners=[f"team:{spec.team}"] if spec.team else None,
        description=f"{spec.name}: the day's inference log with features, score, decision, protected "
        "attributes (restricted columns) and late labels; request ids pseudonymised.",
    )
    def feature_snapshots(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        day = context.partition_key
        store = lake.lake()
        log_partition = _partition(spec, day)
        if not store.exists("inference_logs", log_partition):
            raise BadInputError(
                f"{spec.name}: no inference log for {day} at {store.uri('inference_logs', log_partition)}"
            )
        log = store.read_table("inference_logs", log_partition)
        labels = store.read_dataset("labels", {"model": spec.name})
        snapshot = build_snapshot(
            spec, log, labels, lake.pseudonymisation_key(), store.uri("inference_logs", log_partition)
        )
        uri = store.write_table("feature_snapshots", log_partition, snapshot)
        versions = pd.Series(snapshot.column("model_version").to_pylist()).value_counts().sort_index()
        labelled = snapshot.num_rows - snapshot.column("label").null_count
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": snapshot.num_rows,
                "dagster/uri": uri,
                "labelled_rows": labelled,
                "rows_by_version": dg.MetadataValue.md(table(["model version", "rows"], versions.items())),
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(f.name, str(f.type)) for f in snapshot.schema]
                ),
            }
        )

    # Both reports are daily, per model, computed from that day's feature snapshot.
    report = {
        "key_prefix": prefix,
        "deps": [feature_snapshots],
        "partitions_def": daily_partitions,
        "group_name": "monitoring",
        "tags": tags,
        "kinds": {"python"},
    }

    @dg.asset(
        name="drift_report",
        **report,
        description=f"{spec.name}: data drift of the day's features against the reference window "
        "(KS for numeric, chi-squared for categorical, corrected for multiple tests) and prediction drift.",
    )
    def drift_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        day = context.partition_key
        store = lake.lake()
        summary = drift_summary(spec, read_reference(store, spec), read_snapshot(store, spec, day))
        rows = [
            {"model_version": v, **{k: f[k] for k in ("feature", "kind", "p_value", "statistic", "drifted")}}
            for v, doc in summary["versions"].items()
            for f in doc["features"]
        ]
        store.write_table("drift_report", _partition(spec, day), pa.Table.from_pylist(rows))
        uri = store.write_json("drift_report", _partition(spec, day), "report.json", summary)
        md = []
        for version, doc in summary["versions"].items():
            md.append(
                f"**{spec.name} {version}**: {len(doc['drifted_features'])} of {len(doc['features'])} features "
                f"drifted (threshold p < {doc['threshold']:.4g}, {doc['correction']}); prediction drift "
                f"p = {doc['prediction_drift_p_value']:.3g}\n"
            )
            md.append(
                table(
                    ["feature", "test", "p-value", "statistic", "drifted"],
                    [
                        (
                            f["feature"],
                            "KS" if f["kind"] == "numeric" else "chi²",
                            f["p_value"],
                            f["statistic"],
                            "yes" if f["drifted"] else "",
                        )
                        for f in doc["features"]
                    ],
                )
            )
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md("\n\n".join(md)),
                "dagster/uri": uri,
                "drift_share": {v: d["drift_share"] for v, d in summary["versions"].items()},
            }
        )

    @dg.asset(
        name="fairness_report",
        **report,
        description=f"{spec.name}: favourable-outcome rate per protected group and the demographic-parity "
        "ratio (four-fifths rule); groups below the minimum size are shown but not scored.",
    )
    def fairness_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        day = context.partition_key
        store = lake.lake()
        summary = fairness_summary(spec, read_snapshot(store, spec, day))
        rows = [
            {
                "model_version": v,
                "attribute": a["attribute"],
                "enforced": a["enforced"],
                "group": g,
                "count": s["count"],
                "favourable_rate": s["favourable_rate"],
                "eligible": s["eligible"],
                "attribute_ratio": a["ratio"],
            }
            for v, doc in summary["versions"].items()
            for a in doc["attributes"]
            for g, s in a["groups"].items()
        ]
        if rows:
            store.write_table("fairness_report", _partition(spec, day), pa.Table.from_pylist(rows))
        uri = store.write_json("fairness_report", _partition(spec, day), "report.json", summary)
        md = []
        for version, doc in summary["versions"].items():
            score = doc["fairness_score"]
            md.append(
                f"**{spec.name} {version}**: fairness score {f'{score:.3f}' if score is not None else 'not computed'}"
                f" (worst: {doc['worst_attribute']}={doc['worst_group']})\n"
            )
            for a in doc["attributes"]:
                md.append(
                    f"{a['attribute']} ({'enforced' if a['enforced'] else 'reported'}): ratio "
                    f"{_ratio_text(a['ratio'])} {a['note']}\n"
                )
                md.append(
                    table(
                        ["group", "rows", "favourable rate", "scored"],
                        [
                            (g, s["count"], s["favourable_rate"], "yes" if s["eligible"] else "no (small)")
                            for g, s in sorted(a["groups"].items())
                        ],
                    )
                )
        if not spec.protected_attributes:
            md.append(f"{spec.name} declares no protected attribute: fairness is not computed.")
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md("\n\n".join(md)),
                "dagster/uri": uri,
                "fairness_score": dg.MetadataValue.json(
                    {v: d["fairness_score"] for v, d in summary["versions"].items()}
                ),
            }
        )

    return [feature_snapshots, drift_report, fairness_report]


def report_json(lake, dataset: str, spec: ModelSpec, day: str) -> dict:
    return lake.read_json(dataset, _partition(spec, day), "report.json")


__all__ = ["build_model_assets", "report_json", "read_snapshot"]
