"""Billing sources: one module per kind of source (its reader and its normalisation together), all
found through SOURCE_KINDS. A new source is one module that defines a `SOURCE` (see
`ledger_schema.SourceKind`) plus one line here.

Sources are declared as a list of (kind, fields), in the code location's settings or in a YAML
file (RAI_BILLING_SOURCES):

    aws_focus:      [{root: s3://bucket, billing_account_id: "123456789012", prefix: focus, name: rai-focus}]
    azure_focus:    [{billing_account_id: ..., export_name: ..., directory: exports, container: billing,
                      connection_string: {env: AZURE_STORAGE_CONNECTION_STRING}}]
    gcp_bigquery:   [{project: ..., dataset: ..., billing_account_id: 01ABCD-..., detailed: true}]
    gcp_storage:    [{root: gs://bucket/gcp-billing, billing_account_id: 01ABCD-...}]
    focus_files:    [{root: s3://bucket/oci-focus, billing_account_id: ocid1.tenancy...,
                      tag_keys: {ml.model_name: model_name}}]
    aws_cur:        [{root: s3://bucket, layout: cur2, billing_account_id: "123456789012"}]
    onprem:         [{usage_root: /data/usage, declaration: costs/onprem.yaml}]

A value written `{env: NAME}` is read from the environment variable NAME, so that secrets stay out
of Git. Every error names the file, the source and the field.
"""

from __future__ import annotations

import os
from pathlib import Path

import pydantic

from rai_pipelines.core.errors import BadInputError, validation_problems
from rai_pipelines.core.yamlfile import read_yaml_mapping
from rai_pipelines.costs.ledger_schema import SourceConfig, SourceKind
from rai_pipelines.costs.sources import aws_cur, aws_focus, azure_focus, focus_files, gcp_bigquery, gcp_storage, onprem

SOURCE_KINDS: dict[str, SourceKind] = {
    "aws_cur": aws_cur.SOURCE,
    "aws_focus": aws_focus.SOURCE,
    "azure_focus": azure_focus.SOURCE,
    "focus_files": focus_files.SOURCE,
    "gcp_bigquery": gcp_bigquery.SOURCE,
    "gcp_storage": gcp_storage.SOURCE,
    "onprem": onprem.SOURCE,
}


def source_kind(kind: str, where: str = "billing source") -> SourceKind:
    if kind not in SOURCE_KINDS:
        raise BadInputError(f"{where}: unknown source kind {kind!r} (known: {', '.join(SOURCE_KINDS)})")
    return SOURCE_KINDS[kind]


def kind_of(config: SourceConfig) -> str:
    """The kind a declared source's config belongs to."""
    for kind, entry in SOURCE_KINDS.items():
        if type(config) is entry.config:
            return kind
    raise TypeError(f"{type(config).__name__} is not the config of any billing source kind")


def source_config(kind: str, fields: dict, where: str) -> SourceConfig:
    """Validate one source's fields against its kind: unknown and missing fields, wrong types."""
    config = source_kind(kind, where).config
    extra = sorted(set(fields) - set(config.model_fields))
    if extra:
        raise BadInputError(f"{where}: unknown field(s) {', '.join(extra)}")
    missing = [name for name, spec in config.model_fields.items() if spec.is_required() and name not in fields]
    if missing:
        raise BadInputError(f"{where}: missing field(s) {', '.join(missing)}")
    try:
        return config(**fields)
    except pydantic.ValidationError as exc:
        problems = validation_problems(exc)
        raise BadInputError(f"{where}: {problems}") from None


def open_reader(kind: str, config: SourceConfig):
    """The reader of one declared source: it finds the source's files for a day."""
    return source_kind(kind).reader(config)


def _resolve(value, where: str):
    if isinstance(value, dict):
        if set(value) != {"env"} or not isinstance(value["env"], str):
            raise BadInputError(f"{where}: a mapping value must be {{env: VARIABLE_NAME}}")
        name = value["env"]
        if name not in os.environ:
            raise BadInputError(f"{where}: environment variable {name} is not set")
        return os.environ[name]
    return value


def load_billing_sources(path: str | Path) -> dict[str, list[SourceConfig]]:
    """The sources a YAML file declares, by kind."""
    doc = read_yaml_mapping(path)
    unknown = sorted(set(doc) - set(SOURCE_KINDS))
    if unknown:
        raise BadInputError(f"{path}: unknown source kind(s) {', '.join(unknown)} (known: {', '.join(SOURCE_KINDS)})")
    out: dict[str, list[SourceConfig]] = {}
    for kind, entries in doc.items():
        if not isinstance(entries, list):
            raise BadInputError(f"{path}: {kind} must be a list of sources")
        configs = []
        for i, entry in enumerate(entries):
            where = f"{path}: {kind}[{i}]"
            if not isinstance(entry, dict):
                raise BadInputError(f"{where}: expected a mapping")
            values = {k: _resolve(v, f"{where}.{k}") for k, v in entry.items()}
            configs.append(source_config(kind, values, where))
        out[kind] = configs
    return out
