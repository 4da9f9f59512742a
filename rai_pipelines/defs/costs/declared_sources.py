"""More billing sources than the defaults, declared in a YAML file (RAI_BILLING_SOURCES):

    aws_focus:      [{root: s3://bucket, billing_account_id: "123456789012", prefix: focus, name: rai-focus}]
    azure_focus:    [{billing_account_id: ..., export_name: ..., directory: exports, container: billing,
                      connection_string: {env: AZURE_STORAGE_CONNECTION_STRING}}]
    gcp_bigquery:   [{project: ..., dataset: ..., billing_account_id: 01ABCD-..., detailed: true}]
    gcp_storage:    [{root: gs://bucket/gcp-billing, billing_account_id: 01ABCD-...}]
    aws_cur:        [{root: s3://bucket, layout: cur2, billing_account_id: "123456789012"}]

A value written `{env: NAME}` is read from the environment variable NAME, so that secrets stay out
of Git. Every error names the file, the source and the field.
"""

from __future__ import annotations

import os
from pathlib import Path

import pydantic

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.yamlfile import read_yaml_mapping
from rai_pipelines.defs.costs.resources import (
    AwsCurExport,
    AwsFocusExport,
    AzureFocusExport,
    GcpBigQueryExport,
    GcpStorageExport,
)

KINDS = {
    "aws_cur": AwsCurExport,
    "aws_focus": AwsFocusExport,
    "azure_focus": AzureFocusExport,
    "gcp_bigquery": GcpBigQueryExport,
    "gcp_storage": GcpStorageExport,
}


def _resolve(value, where: str):
    if isinstance(value, dict):
        if set(value) != {"env"} or not isinstance(value["env"], str):
            raise BadInputError(f"{where}: a mapping value must be {{env: VARIABLE_NAME}}")
        name = value["env"]
        if name not in os.environ:
            raise BadInputError(f"{where}: environment variable {name} is not set")
        return os.environ[name]
    return value


def load_billing_sources(path: str | Path) -> dict[str, list]:
    """The declared sources by kind, as the billing resource's config objects."""
    doc = read_yaml_mapping(path)
    unknown = sorted(set(doc) - set(KINDS))
    if unknown:
        raise BadInputError(f"{path}: unknown source kind(s) {', '.join(unknown)} (known: {', '.join(KINDS)})")
    out: dict[str, list] = {}
    for kind, entries in doc.items():
        if not isinstance(entries, list):
            raise BadInputError(f"{path}: {kind} must be a list of sources")
        configs = []
        for i, entry in enumerate(entries):
            where = f"{path}: {kind}[{i}]"
            if not isinstance(entry, dict):
                raise BadInputError(f"{where}: expected a mapping")
            fields = KINDS[kind].model_fields
            extra = sorted(set(entry) - set(fields))
            if extra:
                raise BadInputError(f"{where}: unknown field(s) {', '.join(extra)}")
            missing = [name for name, spec in fields.items() if spec.is_required() and name not in entry]
            if missing:
                raise BadInputError(f"{where}: missing field(s) {', '.join(missing)}")
            values = {k: _resolve(v, f"{where}.{k}") for k, v in entry.items()}
            try:
                configs.append(KINDS[kind](**values))
            except pydantic.ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
                )
                raise BadInputError(f"{where}: {problems}") from None
        out[kind] = configs
    return out
