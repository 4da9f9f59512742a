"""Declarations in Git are YAML mappings; reading one names the file in every error."""

from __future__ import annotations

from pathlib import Path

from rai_pipelines.core.errors import BadInputError


def read_yaml_mapping(path: str | Path) -> dict:
    from ruamel.yaml import YAML

    path = Path(path)
    try:
        doc = YAML(typ="safe").load(path.read_text())
    except Exception as exc:  # ruamel raises many parser error types
        raise BadInputError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadInputError(f"{path}: expected a mapping at the top level")
    return doc
