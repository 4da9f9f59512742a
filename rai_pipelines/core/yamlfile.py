"""Declarations in Git are YAML mappings; reading one names the file in every error. YAML from any
outside hand is bounded before it is expanded: its size, nesting and the number of nodes its
aliases would expand to (a 500-byte alias bomb expands to billions)."""

from __future__ import annotations

from pathlib import Path

from rai_pipelines.core.errors import BadInputError

MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 1_000_000  # after aliases are expanded


def check_yaml_bounds(text: str, where: str) -> None:
    """Refuse YAML whose size, nesting or expanded size (aliases counted as what they stand for)
    is past the bounds, reading only the parser's events: nothing is expanded to find out."""
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise BadInputError(f"{where}: {len(text):,} bytes of YAML, over the limit of {MAX_YAML_BYTES:,}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    anchors: dict[str, int] = {}
    stack: list[list] = [[None, 0]]  # per open collection: its anchor and the nodes it holds so far
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                stack[-1][1] += anchors.get(event.anchor, 1)
            elif isinstance(event, yaml.ScalarEvent):
                stack[-1][1] += 1
                if event.anchor:
                    anchors[event.anchor] = 1
            elif isinstance(event, yaml.CollectionStartEvent):
                stack.append([event.anchor, 1])
                if len(stack) - 1 > MAX_YAML_DEPTH:
                    raise BadInputError(f"{where}: YAML nested deeper than {MAX_YAML_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, count = stack.pop()
                if anchor:
                    anchors[anchor] = count
                stack[-1][1] += count
            else:
                continue
            if stack[-1][1] > MAX_YAML_NODES or sum(level[1] for level in stack) > MAX_YAML_NODES:
                raise BadInputError(
                    f"{where}: YAML that expands to more than {MAX_YAML_NODES:,} nodes (aliases counted as what "
                    "they stand for): refused before it is expanded"
                )
    except yaml.YAMLError as exc:
        raise BadInputError(f"{where}: not valid YAML: {exc}") from None


def read_yaml_mapping(path: str | Path) -> dict:
    from ruamel.yaml import YAML

    path = Path(path)
    text = path.read_text()
    check_yaml_bounds(text, str(path))
    try:
        doc = YAML(typ="safe").load(text)
    except Exception as exc:  # ruamel raises many parser error types
        raise BadInputError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadInputError(f"{path}: expected a mapping at the top level")
    return doc
