"""A model's explanation report: per-feature attributions of each day's scores (TreeSHAP of the
model's own LightGBM model or of a surrogate) and their drift against the reference. Built for the
models whose registry file declares `explanations`."""

import dagster as dg
import pyarrow as pa

from rai_pipelines.core import datasets
from rai_pipelines.core.markdown import table
from rai_pipelines.core.registry import ModelSpec
from rai_pipelines.defs.monitoring.assets import report_args
from rai_pipelines.defs.resources import LakeResource
from rai_pipelines.monitoring.explanations import explanation_summary
from rai_pipelines.monitoring.lake_reads import model_partition, read_window, reference_explainer
from rai_pipelines.monitoring.plots import importance_plot


def explanation_markdown(spec: ModelSpec, summary: dict) -> str:
    md = [
        f"Explainer: {summary['explainer']} ({summary['method']}; output {summary['output']}; "
        f"held-out fidelity {summary['holdout_fidelity']})"
    ]
    for version, doc in summary["versions"].items():
        fidelity = "n/a" if doc["fidelity"] is None else f"{doc['fidelity']:.3f}"
        ranking = "not used" if doc["ndcg"] is None else f"{doc['ndcg']:.3f}"
        md.append(
            f"**{spec.name} {version}**: {doc['rows_explained']} rows explained, fidelity R² {fidelity}, "
            f"ranking nDCG {ranking}{' (below 0.9)' if doc['ndcg_alarm'] else ''}, attribution drift in "
            f"{', '.join(doc['drifted_features']) or 'no feature'}; additivity error {doc['additivity_error']:.1e}"
            + (f". {doc['note']}" if doc["note"] else "")
        )
        md.append(
            table(
                ["feature", "mean |attribution| (reference)", "mean |attribution|", "KS p-value", "effect", "drifted"],
                [
                    (
                        f["feature"],
                        f["reference_importance"],
                        f["importance"],
                        f["p_value"],
                        f["effect_size"],
                        "yes" if f["drifted"] else "",
                    )
                    for f in sorted(doc["features"], key=lambda f: -f["reference_importance"])
                ],
            )
        )
    return "\n\n".join(md)


def build_explanation_report(spec: ModelSpec, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=datasets.EXPLANATION_REPORT,
        **report_args(spec, partitions_def, kinds={"python", "lightgbm"}),
        description=f"{spec.name}: per-feature attributions (TreeSHAP) of the day's scores, the explainer's "
        "fidelity against the logged scores, the drift of each feature's attributions and the nDCG of the "
        "global ranking against the reference.",
    )
    def explanation_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        day = context.partition_key
        store = lake.lake()
        settings = spec.explanations
        explainer, reference = reference_explainer(store, spec)
        summary = explanation_summary(
            explainer,
            reference,
            read_window(store, spec, day),
            settings.min_fidelity,
            settings.max_rows,
            spec.drift_p_value,
            spec.drift_min_effect_size,
        )
        partition = model_partition(spec, day)
        rows = [{"model_version": v, **f} for v, doc in summary["versions"].items() for f in doc["features"]]
        store.write_table(datasets.EXPLANATION_REPORT, partition, pa.Table.from_pylist(rows))
        plots = {}
        for version, doc in summary["versions"].items():
            png = importance_plot(doc["features"], f"{spec.name} {version} {day}: attributions")
            name = f"{version}__importance.png"
            plots[name] = store.write_bytes(datasets.EXPLANATION_REPORT, partition, name, png)
        uri = store.write_json(datasets.EXPLANATION_REPORT, partition, "report.json", {**summary, "plots": plots})
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md(explanation_markdown(spec, summary)),
                "dagster/uri": uri,
                "fidelity": dg.MetadataValue.json({v: d["fidelity"] for v, d in summary["versions"].items()}),
                **{f"plot {name}": dg.MetadataValue.path(path) for name, path in plots.items()},
            }
        )

    return explanation_report
