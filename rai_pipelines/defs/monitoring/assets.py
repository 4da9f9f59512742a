"""Per-model monitoring assets, built from the model registry: feature snapshots (with Great
Expectations checks), drift, fairness and performance reports, one partition per day. Adding a
model file adds its assets; the computations live in plain modules (reports, drift, fairness)."""

import dagster as dg
import pyarrow as pa

from rai_pipelines.core import datasets
from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.markdown import table
from rai_pipelines.core.quality import SuiteResult
from rai_pipelines.core.registry import ModelSpec
from rai_pipelines.defs.keys import model_asset_key
from rai_pipelines.defs.resources import LakeResource
from rai_pipelines.monitoring.data_quality import validate_snapshot
from rai_pipelines.monitoring.labels import LABELS_READ, labels_for_day
from rai_pipelines.monitoring.lake_reads import (
    drift_history,
    fairness_history,
    model_partition,
    read_reference,
    read_snapshot,
    read_window,
    reference_profile,
)
from rai_pipelines.monitoring.plots import distribution_plot, drift_history_plot, fairness_history_plot
from rai_pipelines.monitoring.reports import (
    drift_markdown,
    drift_summary,
    fairness_markdown,
    fairness_summary,
    performance_markdown,
    performance_summary,
    reference_calibration,
)
from rai_pipelines.monitoring.snapshots import build_snapshot, read_inference_log


def _check_result(name: str, result: SuiteResult, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=result.passed,
        severity=severity,
        metadata={
            "expectations": result.evaluated,
            "failed": dg.MetadataValue.md(
                table(
                    ["column", "expectation", "finding"], [(f.column, f.expectation, f.detail) for f in result.findings]
                )
                if result.findings
                else "none"
            ),
        },
    )


def build_model_assets(spec: ModelSpec, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """A model's daily assets: its feature snapshot and the reports computed from it (the explanation
    report where the model declares explanations)."""
    from rai_pipelines.defs.monitoring.explanations import build_explanation_report

    builders = [build_feature_snapshots, build_drift_report, build_fairness_report, build_performance_report]
    if spec.explanations is not None:
        builders.append(build_explanation_report)
    return [build(spec, partitions_def) for build in builders]


def report_args(spec: ModelSpec, partitions_def: dg.PartitionsDefinition, kinds=frozenset({"python"})) -> dict:
    """What the reports share: daily, per model, computed from the model's feature snapshot."""
    return {
        "key_prefix": [spec.asset_prefix],
        "deps": [model_asset_key(spec, datasets.FEATURE_SNAPSHOTS)],
        "partitions_def": partitions_def,
        "group_name": "monitoring",
        "tags": {"model": spec.name},
        "kinds": set(kinds),
    }


def build_feature_snapshots(spec: ModelSpec, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    prefix = [spec.asset_prefix]
    tags = {"model": spec.name}
    snapshot_key = model_asset_key(spec, datasets.FEATURE_SNAPSHOTS)

    @dg.asset(
        name=datasets.FEATURE_SNAPSHOTS,
        key_prefix=prefix,
        partitions_def=partitions_def,
        group_name="monitoring",
        kinds={"parquet"},
        tags=tags,
        owners=[f"team:{spec.team}"] if spec.team else None,
        description=f"{spec.name}: the day's inference log (sampled as declared) with features, score, decision, "
        "protected attributes (restricted columns) and the labels that have arrived; request ids pseudonymised, "
        "undeclared columns (PII among them) left behind.",
        check_specs=[
            dg.AssetCheckSpec(
                "snapshot_is_complete",
                asset=snapshot_key,
                blocking=True,
                description="Great Expectations: rows present, every declared column there, no missing feature, "
                "score or decision, scores in [0, 1]. A failure stops the reports of this run.",
            ),
            dg.AssetCheckSpec(
                "snapshot_matches_reference",
                asset=snapshot_key,
                description="Great Expectations: numeric features within the reference's range (99% of rows), "
                "categorical features within its levels, more than one group per protected attribute.",
            ),
        ],
    )
    def feature_snapshots(context: dg.AssetExecutionContext, lake: LakeResource):
        day = context.partition_key
        store = lake.lake()
        log_partition = model_partition(spec, day)
        found = read_inference_log(store, log_partition)
        if found is None:
            raise BadInputError(
                f"{spec.name}: no inference log for {day} at {store.uri('inference_logs', log_partition)} "
                "(data.parquet or data.jsonl)"
            )
        log, source = found
        # A bad reference is refused before anything of the day is written (checked once: the profile
        # is stored). A day inside a period reference is part of it, so that profile is built after.
        in_reference = spec.reference.is_period and spec.reference.start <= day <= spec.reference.end
        profile = None if in_reference else reference_profile(store, spec)
        labels, read = labels_for_day(store, spec, day)
        snapshot = build_snapshot(spec, log, labels, lake.pseudonymisation_key(), source)
        frame = snapshot.to_pandas()
        complete = validate_snapshot(frame, spec, None, "complete")
        if complete.passed:
            uri = store.write_table(datasets.FEATURE_SNAPSHOTS, log_partition, snapshot)
            store.write_json(datasets.FEATURE_SNAPSHOTS, log_partition, LABELS_READ, read)
        else:
            # Kept for inspection, never where the reports, the weekly window or a period reference
            # read: the day's previous snapshot, if any, stays as it was.
            uri = store.write_table(datasets.FEATURE_SNAPSHOTS_REJECTED, log_partition, snapshot)
        profile = profile or reference_profile(store, spec)
        like_reference = validate_snapshot(frame, spec, profile, "like_reference")
        versions = frame["model_version"].value_counts().sort_index()
        left_behind = sorted(set(log.column_names) & set(spec.pii_columns))
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": snapshot.num_rows,
                "dagster/uri": uri,
                "log_rows": log.num_rows,
                "labelled_rows": int(frame["label"].notna().sum()),
                "pii_columns_dropped": ", ".join(left_behind) or "none in the log",
                "rows_by_version": dg.MetadataValue.md(table(["model version", "rows"], versions.items())),
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(f.name, str(f.type)) for f in snapshot.schema]
                ),
            }
        )
        yield _check_result("snapshot_is_complete", complete, dg.AssetCheckSeverity.ERROR)
        yield _check_result("snapshot_matches_reference", like_reference, dg.AssetCheckSeverity.WARN)

    return feature_snapshots


def build_drift_report(spec: ModelSpec, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=datasets.DRIFT_REPORT,
        **report_args(spec, partitions_def),
        description=f"{spec.name}: drift of the features against the reference (KS for numeric, chi-squared for "
        "categorical, corrected for multiple tests, with an effect size beside every p-value) and of the model "
        "score; PNG plots of the drifted features.",
    )
    def drift_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        day = context.partition_key
        store = lake.lake()
        current = read_window(store, spec, day)
        needs_rows = spec.drift_backend == "alibi-detect" or spec.drift_multivariate != "none"
        reference = read_reference(store, spec) if needs_rows else None
        summary = drift_summary(spec, reference, current, reference_profile(store, spec))
        drifted = sorted({f["feature"] for d in summary["versions"].values() for f in d["features"] if f["drifted"]})
        if reference is None and drifted:
            reference = read_reference(store, spec, columns=drifted)  # for the plots only
        rows = [
            {
                "model_version": v,
                **{k: f[k] for k in ("feature", "kind", "p_value", "statistic", "effect_size", "psi", "drifted")},
            }
            for v, doc in summary["versions"].items()
            for f in doc["features"]
        ]
        store.write_table(datasets.DRIFT_REPORT, model_partition(spec, day), pa.Table.from_pylist(rows))
        plots = {}
        for version, doc in summary["versions"].items():
            for feature in doc["features"]:
                if feature["drifted"] and feature["kind"] != "missingness":  # missing shares: drift_over_time.png
                    name = f"{version}__{feature['feature']}.png"
                    png = distribution_plot(
                        feature["feature"],
                        feature["kind"],
                        reference[feature["feature"]],
                        current.loc[current["model_version"] == version, feature["feature"]],
                        f"{spec.name} {version} {day}: {feature['feature']} "
                        f"(effect {feature['effect_size']:.2f}, p={feature['p_value']:.2g})",
                    )
                    plots[name] = store.write_bytes(datasets.DRIFT_REPORT, model_partition(spec, day), name, png)
        history = drift_history(store, spec, day, summary)
        plots["drift_over_time.png"] = store.write_bytes(
            datasets.DRIFT_REPORT,
            model_partition(spec, day),
            "drift_over_time.png",
            drift_history_plot(history, f"{spec.name}: every feature's drift up to {day}"),
        )
        uri = store.write_json(
            datasets.DRIFT_REPORT, model_partition(spec, day), "report.json", {**summary, "plots": plots}
        )
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md(drift_markdown(spec, summary)),
                "dagster/uri": uri,
                "drift_share": {v: d["drift_share"] for v, d in summary["versions"].items()},
                **{f"plot {name}": dg.MetadataValue.path(path) for name, path in plots.items()},
            }
        )

    return drift_report


def build_fairness_report(spec: ModelSpec, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=datasets.FAIRNESS_REPORT,
        **report_args(spec, partitions_def),
        description=f"{spec.name}: favourable-outcome rate and, where labels exist, true- and false-positive rates "
        "per protected group and declared intersection; demographic-parity and equalized-odds ratios with "
        "bootstrap intervals; groups below the minimum size are shown but not scored; fairness over time as PNG.",
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
                "tpr": s["tpr"],
                "fpr": s["fpr"],
                "eligible": s["eligible"],
                "attribute_ratio": a["ratio"],
            }
            for v, doc in summary["versions"].items()
            for a in doc["attributes"]
            for g, s in a["groups"].items()
        ]
        if rows:
            store.write_table(datasets.FAIRNESS_REPORT, model_partition(spec, day), pa.Table.from_pylist(rows))
        metadata = {}
        if spec.protected_attributes:
            history = fairness_history(store, spec, day, summary)
            png = fairness_history_plot(history, None, f"{spec.name}: demographic parity up to {day}")
            metadata["plot fairness_over_time.png"] = dg.MetadataValue.path(
                store.write_bytes(datasets.FAIRNESS_REPORT, model_partition(spec, day), "fairness_over_time.png", png)
            )
        uri = store.write_json(datasets.FAIRNESS_REPORT, model_partition(spec, day), "report.json", summary)
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md(fairness_markdown(spec, summary)),
                "dagster/uri": uri,
                "fairness_score": dg.MetadataValue.json(
                    {v: d["fairness_score"] for v, d in summary["versions"].items()}
                ),
                **metadata,
            }
        )

    return fairness_report


def build_performance_report(spec: ModelSpec, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=datasets.PERFORMANCE_REPORT,
        **report_args(spec, partitions_def),
        description=f"{spec.name}: ROC AUC and accuracy estimated from the scores before the labels arrive "
        "(CBPE, calibrated on the labelled reference), and ROC AUC, accuracy and calibration (Brier score, "
        "expected calibration error) on the labelled rows of the day; re-materialised when late labels arrive.",
    )
    def performance_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        day = context.partition_key
        store = lake.lake()
        reference = read_reference(store, spec)
        calibration, note = reference_calibration(spec, reference)
        summary = performance_summary(spec, read_snapshot(store, spec, day), calibration, note)
        uri = store.write_json(datasets.PERFORMANCE_REPORT, model_partition(spec, day), "report.json", summary)
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md(performance_markdown(spec, summary)),
                "dagster/uri": uri,
                "labelled_rows": sum(d["labelled_rows"] for d in summary["versions"].values()),
                "roc_auc": dg.MetadataValue.json({v: d["roc_auc"] for v, d in summary["versions"].items()}),
            }
        )

    return performance_report
