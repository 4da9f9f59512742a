"""The Kubernetes schema check of what a pin will commit: every rendered resource against the
OpenAPI schema of its kind (the JSON schemas the kubernetes-validate package ships), and the few
rules the API server enforces that the schema does not carry (a container needs an image, label
values are label values, a workload's selector matches its pod template)."""

from __future__ import annotations

import datetime
import functools
import json
import re

from rai_pipelines.core.errors import GitOpsError

DEFAULT_KUBERNETES_VERSION = "1.31.0"
MAX_PROBLEMS_LISTED = 100

_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.\d+)?")
_SCHEMA_DIRECTORY_RE = re.compile(r"v(\d+)\.(\d+)\.(\d+)-local")
_LABEL_VALUE_RE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_PLAIN_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

# Where each workload kind holds its pod spec, and whether its selector must match the template.
_POD_SPEC_PATHS = {
    ("v1", "Pod"): ("spec",),
    ("v1", "ReplicationController"): ("spec", "template", "spec"),
    ("apps/v1", "Deployment"): ("spec", "template", "spec"),
    ("apps/v1", "StatefulSet"): ("spec", "template", "spec"),
    ("apps/v1", "DaemonSet"): ("spec", "template", "spec"),
    ("apps/v1", "ReplicaSet"): ("spec", "template", "spec"),
    ("batch/v1", "Job"): ("spec", "template", "spec"),
    ("batch/v1", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
_SELECTING_WORKLOADS = {("apps/v1", k) for k in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")}


def validate_against_kubernetes_schema(
    documents: list[dict],
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    strict: bool = True,
    require_known: bool = False,
) -> list[str]:
    """Check each document against the schema of its kind in Kubernetes `kubernetes_version`
    (with `strict`, an unknown field is a problem too). Raises GitOpsError listing every problem as
    `<Kind>/<name>: <path>: <message>`. Returns the kinds not schema-checked (custom resources such
    as an Argo CD Application, Flux kinds), `<Kind> (<apiVersion>)`; with `require_known` they are
    problems instead."""
    directory = schema_directory(kubernetes_version, strict)
    problems: list[str] = []
    skipped: set[str] = set()
    for index, document in enumerate(documents):
        if not isinstance(document, dict):
            problems.append(f"document {index + 1}: a {type(document).__name__}, not a mapping")
            continue
        document = _jsonable(document)
        kind, api_version = document.get("kind"), document.get("apiVersion")
        metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
        label = f"{kind}/{metadata.get('name') or f'(document {index + 1})'}"
        if not isinstance(kind, str) or not isinstance(api_version, str):
            problems.append(f"{label}: (top level): apiVersion and kind must be strings")
            continue
        validator = _validator(directory, kind, api_version)
        if validator is None:
            skipped.add(f"{kind} ({api_version})")
            continue
        errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
        for error in errors:
            problems += [f"{label}: {p}" for p in _describe(error)]
        problems += [f"{label}: {p}" for p in _api_server_rules(document, api_version, kind)]
    if require_known:
        problems += [f"{k}: no schema for this kind in Kubernetes {kubernetes_version}" for k in sorted(skipped)]
    if problems:
        listed = problems[:MAX_PROBLEMS_LISTED]
        more = len(problems) - len(listed)
        raise GitOpsError(
            f"{len(problems)} problem(s) against the Kubernetes {kubernetes_version} schema"
            f"{' (strict)' if strict else ''}:\n  " + "\n  ".join(listed) + (f"\n  ... and {more} more" if more else "")
        )
    return sorted(skipped)


@functools.lru_cache(maxsize=1)
def shipped_versions() -> list[tuple[int, int, int]]:
    """The Kubernetes versions whose schemas the installed kubernetes-validate ships."""
    found = set()
    for entry in _schema_root().iterdir():
        match = _SCHEMA_DIRECTORY_RE.fullmatch(entry.name)
        if match:
            found.add(tuple(int(g) for g in match.groups()))
    return sorted(found)


def schema_directory(kubernetes_version: str, strict: bool):
    """The folder of the schemas for that Kubernetes minor version; refused when the installed
    package has none (an older schema would judge a newer cluster's fields wrongly)."""
    match = _VERSION_RE.fullmatch(str(kubernetes_version))
    if not match:
        raise GitOpsError(f"Kubernetes version {kubernetes_version!r} is not `1.N` or `1.N.P`")
    wanted = (int(match.group(1)), int(match.group(2)))
    versions = shipped_versions()
    chosen = [v for v in versions if v[:2] == wanted]
    if not chosen:
        shipped = (
            f"{'.'.join(map(str, versions[0][:2]))} to {'.'.join(map(str, versions[-1][:2]))}" if versions else "none"
        )
        raise GitOpsError(
            f"kubernetes-validate ships no schemas for Kubernetes {wanted[0]}.{wanted[1]} (it has {shipped}): "
            "upgrade it or check against a version it ships"
        )
    name = "v{}.{}.{}-local".format(*chosen[-1]) + ("-strict" if strict else "")
    return _schema_root() / name


def _schema_root():
    import importlib.resources

    return importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"


def _schema_file_name(kind: str, api_version: str) -> str:
    # kubernetes-validate's naming: `apps/v1` -> `apps-v1`, `networking.k8s.io/v1` -> `networking-v1`, `v1` -> `v1`
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{group_version}.json"


@functools.lru_cache(maxsize=16)
def _definitions(directory) -> dict:
    return json.loads((directory / "_definitions.json").read_text())


@functools.lru_cache(maxsize=512)
def _validator(directory, kind: str, api_version: str):
    """A validator for the kind, made once and kept; None when there is no schema for it (a custom
    resource, or a group whose first label only looks like a built-in one: `apps.example.com/v1`)."""
    import jsonschema
    from referencing import Registry, Resource

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", kind) or not re.fullmatch(r"[A-Za-z0-9.\-/]+", api_version):
        return None
    file = directory / _schema_file_name(kind, api_version)
    if not file.is_file():
        return None
    schema = json.loads(file.read_text())
    properties = schema.get("properties", {})
    if api_version not in properties.get("apiVersion", {}).get("enum", []) or kind not in properties.get(
        "kind", {}
    ).get("enum", []):
        return None
    registry = Resource.from_contents(_definitions(directory)) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _json_path(path) -> str:
    parts = []
    for item in path:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif _PLAIN_KEY_RE.fullmatch(str(item)):
            parts.append(f".{item}")
        else:
            parts.append(f"[{json.dumps(str(item))}]")
    return "".join(parts).lstrip(".") or "(top level)"


def _describe(error) -> list[str]:
    """A schema error as `<path>: <message>`; an unknown field is named in its path."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = sorted(str(k) for k in error.instance if k not in known)
        if extra:
            return [f"{_json_path([*path, k])}: unknown field" for k in extra]
    message = error.message
    if error.validator == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        wanted = " or ".join(repr(t) for t in types if t != "null")
        message = f"{error.instance!r} is not of type {wanted}"
    return [f"{_json_path(path)}: {message}"]


def _at(document: dict, path: tuple[str, ...]):
    node = document
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _api_server_rules(document: dict, api_version: str, kind: str) -> list[str]:
    problems = []
    problems += _label_problems(document.get("metadata"), "metadata")
    pod_path = _POD_SPEC_PATHS.get((api_version, kind))
    if pod_path is None:
        return problems
    template_path = pod_path[:-1]
    if template_path:
        problems += _label_problems(_at(document, (*template_path, "metadata")), ".".join((*template_path, "metadata")))
    pod_spec = _at(document, pod_path)
    if isinstance(pod_spec, dict):
        for field in ("initContainers", "containers"):
            containers = pod_spec.get(field)
            for index, container in enumerate(containers if isinstance(containers, list) else []):
                image = container.get("image") if isinstance(container, dict) else None
                if not isinstance(image, str) or not image.strip():
                    problems.append(
                        f"{'.'.join(pod_path)}.{field}[{index}].image: a container needs an image "
                        "(the API server refuses one without)"
                    )
    if (api_version, kind) in _SELECTING_WORKLOADS:
        selector = _at(document, ("spec", "selector", "matchLabels"))
        labels = _at(document, ("spec", "template", "metadata", "labels"))
        labels = labels if isinstance(labels, dict) else {}
        for key, value in (selector or {}).items() if isinstance(selector, dict) else []:
            if labels.get(key) != value:
                problems.append(
                    f"spec.selector.matchLabels[{json.dumps(str(key))}]: selects {value!r} but the pod template is "
                    f"labelled {labels.get(key)!r} (the API server refuses a selector that misses its template)"
                )
    return problems


def _label_problems(metadata: object, where: str) -> list[str]:
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    if not isinstance(labels, dict):
        return []
    return [
        f"{where}.labels[{json.dumps(str(key))}]: {value!r} is not a label value (at most 63 characters: "
        "letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
        for key, value in labels.items()
        if isinstance(value, str) and not _LABEL_VALUE_RE.fullmatch(value)
    ]


def _jsonable(value):
    """Documents as JSON would carry them: a YAML date (an unquoted 2023-11-05) is the string kubectl sends."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value
