"""The manifest styles a model's deployment may be declared in besides a kustomize overlay: a plain
multi-document YAML file holding the Deployment, a Helm chart's values file, an Argo CD
Application (in argo_application). Which style a path is, and what each renders to (the plain
documents the cluster would get, for the policies and the schema check to judge)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from rai_pipelines.core.errors import BadInputError, GitOpsError
from rai_pipelines.core.registry import validate_model_version
from rai_pipelines.gitops.argo_application import (
    application_sources,
    check_no_override_file,
    find_repository_root,
    is_application,
    name_of_application,
    parse_argo_image,
    pin_argo_application,
    resolve_in_repository,
    select_application,
    source_in_repository,
)
from rai_pipelines.gitops.manifest_nodes import (
    YamlDocuments,
    check_tag,
    child_mapping,
    existing_parent,
    image_repository,
    mapping_of,
    parse_dotted_key,
    pin_comment,
    read_bounded,
    safe_documents,
    sequence_of,
    set_scalar,
    split_image,
)
from rai_pipelines.gitops.render import (
    KUSTOMIZATION_FILES,
    MAX_RENDER_OUTPUT_BYTES,
    _bounded,
    check_overlay_inputs,
    kustomize_render,
    to_plain,
)

__all__ = [
    "STYLES",
    "detect_style",
    "pin_argo_application",
    "pin_helm_values",
    "pin_plain_deployment",
    "render_source",
]

STYLES = ("kustomize", "argo-application", "helm-values", "deployment")
KIND = "Deployment"
_VALUES_FILE_RE = re.compile(r"values[\w.-]*\.ya?ml")
HELM_TIMEOUT_S = 60


def pin_plain_deployment(path: Path, deployment_name: str, image: str, version: str, note: str) -> None:
    """Edit the Deployment `deployment_name` in the YAML file `path` so its containers of `image`'s
    repository (init containers too; sidecars of other repositories untouched) run `image`, and its
    pods carry model-version=`version`. The file's other documents are kept byte for byte, and
    comments are kept; the pin comment replaces an image automation marker on the image."""
    validate_model_version(version, f"{path}: target version")
    repository, _ = split_image(image)
    comment = pin_comment(note)
    file = YamlDocuments(path)
    found = [
        (i, d)
        for i, d in file.mappings()
        if d.get("kind") == "Deployment"
        and isinstance(d.get("metadata"), dict)
        and d["metadata"].get("name") == deployment_name
    ]
    if not found:
        names = [
            str((d.get("metadata") or {}).get("name")) for _, d in file.mappings() if d.get("kind") == "Deployment"
        ]
        raise GitOpsError(
            f"{path}: holds no Deployment named {deployment_name!r} (Deployments: {', '.join(names) or 'none'})"
        )
    if len(found) > 1:
        namespaces = sorted(str(d["metadata"].get("namespace", "default")) for _, d in found)
        raise GitOpsError(f"{path}: holds {len(found)} Deployments named {deployment_name!r} (namespaces {namespaces})")
    index, deployment = found[0]
    where = f"{path}: Deployment {deployment_name}"
    spec = mapping_of(deployment.get("spec"), f"{where}: spec")
    _refuse_version_selector(spec, where)
    template = mapping_of(spec.get("template"), f"{where}: spec.template")
    pod_spec = mapping_of(template.get("spec"), f"{where}: spec.template.spec")
    pinned, seen = 0, []
    for field in ("initContainers", "containers"):
        if pod_spec.get(field) is None:
            continue
        for n, container in enumerate(sequence_of(pod_spec[field], f"{where}: spec.template.spec.{field}")):
            container = mapping_of(container, f"{where}: spec.template.spec.{field}[{n}]")
            reference = container.get("image")
            seen.append(str(reference))
            if isinstance(reference, str) and image_repository(reference) == repository:
                set_scalar(container, "image", image)
                container.yaml_add_eol_comment(comment, "image")
                pinned += 1
    if not pinned:
        raise GitOpsError(f"{where}: no container runs an image of {repository} (images: {', '.join(seen) or 'none'})")
    metadata = child_mapping(template, "metadata", f"{where}: spec.template")
    set_scalar(child_mapping(metadata, "labels", f"{where}: spec.template.metadata"), "model-version", version)
    file.changed.add(index)
    file.write()


def _refuse_version_selector(spec: dict, where: str) -> None:
    """A Deployment's selector cannot change: one selecting on model-version would stop matching
    its own pods when the label changes."""
    selector = spec.get("selector") if isinstance(spec.get("selector"), dict) else {}
    match_labels = selector.get("matchLabels") if isinstance(selector.get("matchLabels"), dict) else {}
    expressions = selector.get("matchExpressions") if isinstance(selector.get("matchExpressions"), list) else []
    if "model-version" in match_labels or any(
        isinstance(e, dict) and e.get("key") == "model-version" for e in expressions
    ):
        raise GitOpsError(
            f"{where}: spec.selector selects on model-version; a Deployment's selector is immutable, so the "
            "label cannot carry the pinned version"
        )


def pin_helm_values(
    values_path: Path, image_tag_key: str, version_label_key: str, tag: str, version: str, note: str
) -> None:
    """Set the image tag and the model-version label value in a Helm values file, both at dotted
    keys that must already exist (`image.tag`, `podLabels.model-version`; `\\.` is a dot inside a
    segment: `podLabels.app\\.kubernetes\\.io/version`). Comments are kept; the tag gets the pin
    comment. Nothing is written on error."""
    validate_model_version(version, f"{values_path}: target version")
    check_tag(tag, f"{values_path}: target tag")
    comment = pin_comment(note)
    tag_segments = parse_dotted_key(image_tag_key, f"{values_path}: image tag key")
    label_segments = parse_dotted_key(version_label_key, f"{values_path}: version label key")
    if tag_segments == label_segments:
        raise GitOpsError(f"{values_path}: the image tag and the version label are the same key {image_tag_key!r}")
    file = YamlDocuments(values_path)
    documents = [(i, d) for i, d in enumerate(file.documents) if d is not None]
    if len(documents) != 1 or not isinstance(documents[0][1], dict):
        raise GitOpsError(f"{values_path}: a Helm values file is one YAML mapping")
    index, values = documents[0]
    parents = []
    for segments, key in ((tag_segments, image_tag_key), (label_segments, version_label_key)):
        parent = existing_parent(values, segments, f"{values_path}: key {key!r}")
        if segments[-1] not in parent:
            raise GitOpsError(f"{values_path}: has no key {key!r}; nothing was changed")
        if isinstance(parent[segments[-1]], (dict, list)):
            raise GitOpsError(f"{values_path}: key {key!r} holds a {type(parent[segments[-1]]).__name__}, not a value")
        parents.append(parent)
    set_scalar(parents[0], tag_segments[-1], tag)
    parents[0].yaml_add_eol_comment(comment, tag_segments[-1])
    set_scalar(parents[1], label_segments[-1], version)
    file.changed.add(index)
    file.write()


def detect_style(path: Path) -> str:
    """Which style the manifests at `path` are: "kustomize" (a directory with a kustomization),
    "argo-application", "helm-values" (a values*.yaml beside a Chart.yaml) or "deployment" (a YAML
    file holding a Deployment)."""
    if path.is_dir():
        if any((path / name).is_file() for name in KUSTOMIZATION_FILES):
            return "kustomize"
        if (path / "Chart.yaml").is_file():
            raise GitOpsError(f"{path} is a Helm chart: name its values file (values*.yaml) to pin")
        raise GitOpsError(f"{path}: a directory without a kustomization ({', '.join(KUSTOMIZATION_FILES)})")
    if not path.is_file():
        raise GitOpsError(f"{path}: no such file or directory")
    if _VALUES_FILE_RE.fullmatch(path.name) and (path.parent / "Chart.yaml").is_file():
        return "helm-values"
    if path.suffix not in (".yaml", ".yml"):
        raise GitOpsError(f"{path}: not a YAML file, a kustomize overlay or a Helm values file")
    documents = safe_documents(path)
    applications = [d for d in documents if is_application(d)]
    deployments = [d for d in documents if d.get("kind") == "Deployment" and d.get("apiVersion") == "apps/v1"]
    if applications and deployments:
        raise GitOpsError(f"{path}: holds both Argo CD Applications and Deployments: cannot tell which to pin")
    if applications:
        return "argo-application"
    if deployments:
        return "deployment"
    kinds = sorted({str(d.get("kind")) for d in documents})
    raise GitOpsError(
        f"{path}: holds no Deployment or Argo CD Application (kinds: {', '.join(kinds) or 'none'}); "
        "a Helm values file must sit beside its Chart.yaml"
    )


def render_source(
    path: Path,
    style: str,
    *,
    repository_root: Path | None = None,
    gitops_repo_urls: tuple[str, ...] = (),
    application_name: str | None = None,
    checkout_revisions: tuple[str, ...] = (),
    release_name: str | None = None,
    namespace: str | None = None,
) -> list[dict]:
    """The documents the cluster would get from the manifests at `path`, as plain dicts.

    An Argo CD Application is rendered from its sources in this repository (`gitops_repo_urls`
    tells which; a source tracking a revision other than HEAD or `checkout_revisions` is refused).
    Helm is rendered with `helm template`; without helm, rendering fails (never assumed right).
    """
    if style == "kustomize":
        if repository_root is not None:
            _check_inputs(repository_root, path)
        return kustomize_render(path)
    if style == "deployment":
        return [to_plain(d) for d in safe_documents(path)]
    if style == "helm-values":
        chart = path.parent
        _require_helm(chart)
        values_files = [] if path.name == "values.yaml" else [path]
        return _helm_template(chart, release_name or _chart_name(chart), namespace, values_files, [], [])
    if style == "argo-application":
        return _render_application(path, repository_root, gitops_repo_urls, application_name, checkout_revisions)
    raise GitOpsError(f"{path}: unknown manifest style {style!r} (one of {', '.join(STYLES)})")


def _check_inputs(repository_root: Path, folder: Path) -> None:
    try:
        check_overlay_inputs(repository_root, os.path.relpath(folder, repository_root))
    except BadInputError as exc:
        raise GitOpsError(str(exc)) from None


def _require_helm(chart: object) -> str:
    helm = shutil.which("helm")
    if helm is None:
        raise GitOpsError(f"helm is not installed: cannot render {chart} to prove the pin; install helm 3")
    return helm


def _chart_name(chart: Path) -> str:
    documents = safe_documents(chart / "Chart.yaml")
    name = documents[0].get("name") if documents else None
    if not isinstance(name, str) or not name:
        raise GitOpsError(f"{chart / 'Chart.yaml'}: has no chart name")
    return name


def _escape_set_value(value: str) -> str:
    """A value for `helm --set`, which splits on commas and reads backslash escapes."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


def _helm_template(
    chart: Path,
    release: str,
    namespace: str | None,
    values_files: list[Path],
    parameters: list[tuple[str, str, bool]],
    extra_args: list[str],
) -> list[dict]:
    """`helm template` of a chart in the repository, under the render's memory limit and bounds."""
    import yaml

    helm = _require_helm(chart)
    for values_file in values_files:
        read_bounded(values_file)
    cmd = [helm, "template", release, str(chart), *extra_args]
    if namespace:
        cmd += ["--namespace", namespace]
    for values_file in values_files:
        cmd += ["--values", str(values_file)]
    for name, value, force_string in parameters:
        cmd += ["--set-string" if force_string else "--set", f"{name}={_escape_set_value(value)}"]
    try:
        out = subprocess.run(_bounded(cmd), capture_output=True, text=True, timeout=HELM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise GitOpsError(f"rendering {chart} with helm timed out after {HELM_TIMEOUT_S} s") from None
    if out.returncode != 0:
        detail = out.stderr.strip().splitlines()[0] if out.stderr.strip() else f"exit code {out.returncode}"
        raise GitOpsError(f"rendering {chart} with helm failed: {detail}")
    if len(out.stdout) > MAX_RENDER_OUTPUT_BYTES:
        raise GitOpsError(f"rendering {chart} produced more than {MAX_RENDER_OUTPUT_BYTES:,} bytes")
    try:
        from rai_pipelines.core.yamlfile import check_yaml_bounds

        check_yaml_bounds(out.stdout, f"helm template of {chart}")
    except BadInputError as exc:
        raise GitOpsError(str(exc)) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [to_plain(d) for d in yaml.load_all(out.stdout, Loader=loader) if isinstance(d, dict)]


# What an Application's kustomize source may set, and how the render applies it. Options that
# would change the render and are not applied here refuse the render instead of being ignored.
_ARGO_KUSTOMIZE_IGNORED = {"version", "forceCommonLabels", "forceCommonAnnotations", "kubeVersion", "apiVersions"}
_ARGO_KUSTOMIZE_APPLIED = {
    "images",
    "namePrefix",
    "nameSuffix",
    "namespace",
    "commonLabels",
    "commonAnnotations",
    "labelWithoutSelector",
    "labelIncludeTemplates",
    "replicas",
    "patches",
}
_ARGO_HELM_OPTIONS = {
    "valueFiles",
    "values",
    "valuesObject",
    "parameters",
    "releaseName",
    "skipCrds",
    "version",
    "passCredentials",
    "ignoreMissingValueFiles",
    "namespace",
    "kubeVersion",
    "apiVersions",
}


def _render_application(
    path: Path,
    repository_root: Path | None,
    gitops_repo_urls: tuple[str, ...],
    application_name: str | None,
    checkout_revisions: tuple[str, ...],
) -> list[dict]:
    _, application = select_application(safe_documents(path), path, application_name)
    where = f"{path}: Application {name_of_application(application)}"
    sources = application_sources(application, where)
    repository_root = repository_root or find_repository_root(path)
    if repository_root is None:
        raise GitOpsError(f"{where}: cannot find the Git repository holding it: pass repository_root")
    if not gitops_repo_urls:
        raise GitOpsError(f"{where}: cannot tell which sources are in this repository: pass gitops_repo_urls")
    check_no_override_file(application, sources, repository_root, gitops_repo_urls, where)
    # `$<ref>/...` values files are read from the checkout only when that source is this repository
    refs = {
        s["ref"]: s for _, s in sources if isinstance(s.get("ref"), str) and source_in_repository(s, gitops_repo_urls)
    }
    rendered: list[dict] = []
    for label, source in sources:
        source_where = f"{where}: {label}"
        if source.get("path") is None and source.get("chart") is None:
            if source.get("ref") is not None:
                continue  # a source of values files for the others
            raise GitOpsError(f"{source_where}: has neither a path nor a chart")
        if source.get("chart") is not None:
            _require_helm(f"chart {source.get('chart')}")
            raise GitOpsError(
                f"{source_where}: the chart {source.get('chart')} comes from {source.get('repoURL')}; only charts in "
                "this repository are rendered to prove a pin"
            )
        if not source_in_repository(source, gitops_repo_urls):
            raise GitOpsError(
                f"{source_where}: its source is not in this repository: cannot render {source.get('repoURL')}"
            )
        revision = source.get("targetRevision")
        if checkout_revisions and revision not in (None, "", "HEAD", *checkout_revisions):
            raise GitOpsError(
                f"{source_where}: tracks revision {revision!r}, not the checkout's ({', '.join(checkout_revisions)})"
            )
        folder = resolve_in_repository(repository_root, source["path"], f"{source_where}.path")
        if not folder.is_dir():
            raise GitOpsError(f"{source_where}: path {source['path']!r} is not a directory of the repository")
        if source.get("helm") is not None or (folder / "Chart.yaml").is_file():
            rendered += _render_argo_helm(application, source, folder, repository_root, refs, source_where)
        elif source.get("kustomize") is not None or any((folder / n).is_file() for n in KUSTOMIZATION_FILES):
            rendered += _render_argo_kustomize(source.get("kustomize") or {}, folder, repository_root, source_where)
        else:
            raise GitOpsError(
                f"{source_where}: is neither a kustomize overlay nor a Helm chart (plain directories, jsonnet and "
                "plugins are not rendered to prove a pin)"
            )
    return rendered


def _render_argo_kustomize(options: object, folder: Path, repository_root: Path, where: str) -> list[dict]:
    """Argo CD's `kustomize edit set ...` of the source, as a kustomization wrapping it."""
    options = mapping_of(options, f"{where}.kustomize")
    unknown = sorted(set(options) - _ARGO_KUSTOMIZE_APPLIED - _ARGO_KUSTOMIZE_IGNORED)
    if unknown:
        raise GitOpsError(f"{where}.kustomize: {', '.join(unknown)} cannot be rendered here to prove a pin")
    _check_inputs(repository_root, folder)
    wrapper: dict = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    images = []
    for index, entry in enumerate(sequence_of(options.get("images") or [], f"{where}.kustomize.images")):
        old, new, tag, digest = parse_argo_image(entry, f"{where}.kustomize.images[{index}]")
        image = {"name": old or new} | ({"newName": new} if old else {})
        images.append(image | ({"newTag": tag} if tag else {}) | ({"digest": digest} if digest else {}))
    if images:
        wrapper["images"] = images
    for key in ("namePrefix", "nameSuffix", "namespace", "commonAnnotations", "replicas"):
        if options.get(key) is not None:
            wrapper[key] = options[key]
    if options.get("commonLabels"):
        with_selectors = not options.get("labelWithoutSelector")
        wrapper["labels"] = [
            {
                "pairs": mapping_of(options["commonLabels"], f"{where}.kustomize.commonLabels"),
                "includeSelectors": with_selectors,
                "includeTemplates": with_selectors or bool(options.get("labelIncludeTemplates")),
            }
        ]
    patches = []
    for index, patch in enumerate(sequence_of(options.get("patches") or [], f"{where}.kustomize.patches")):
        patch = dict(mapping_of(patch, f"{where}.kustomize.patches[{index}]"))
        if isinstance(patch.get("path"), str):  # inlined: the wrapper may only read files under itself
            file = resolve_in_repository(
                repository_root,
                os.path.relpath(folder / patch.pop("path"), repository_root.resolve()),
                f"{where}.kustomize.patches[{index}].path",
            )
            patch["patch"] = read_bounded(file)
        patches.append(patch)
    if patches:
        wrapper["patches"] = patches
    with tempfile.TemporaryDirectory(prefix=".rai-render-", dir=repository_root) as tmp:
        wrapper["resources"] = [os.path.relpath(folder, Path(tmp).resolve())]
        (Path(tmp) / "kustomization.yaml").write_text(json.dumps(wrapper, default=str))
        return kustomize_render(Path(tmp))


def _render_argo_helm(
    application: dict, source: dict, folder: Path, repository_root: Path, refs: dict, where: str
) -> list[dict]:
    _require_helm(folder)
    options = mapping_of(source.get("helm") or {}, f"{where}.helm")
    unknown = sorted(set(options) - _ARGO_HELM_OPTIONS)
    if unknown:
        raise GitOpsError(f"{where}.helm: {', '.join(unknown)} cannot be rendered here to prove a pin")
    with tempfile.TemporaryDirectory(prefix="rai-helm-") as tmp:
        values_files = []
        for index, name in enumerate(sequence_of(options.get("valueFiles") or [], f"{where}.helm.valueFiles")):
            file = _argo_values_file(name, folder, repository_root, refs, f"{where}.helm.valueFiles[{index}]")
            if file.is_file():
                values_files.append(file)
            elif not options.get("ignoreMissingValueFiles"):
                raise GitOpsError(f"{where}.helm.valueFiles[{index}]: {name!r} does not exist")
        for key in ("values", "valuesObject"):
            if options.get(key) is not None:
                inline = Path(tmp) / f"{key}.yaml"
                value = options[key]
                inline.write_text(value if isinstance(value, str) else json.dumps(value, default=str))
                values_files.append(inline)
        parameters = []
        for index, parameter in enumerate(sequence_of(options.get("parameters") or [], f"{where}.helm.parameters")):
            parameter = mapping_of(parameter, f"{where}.helm.parameters[{index}]")
            if not isinstance(parameter.get("name"), str) or parameter.get("value") is None:
                raise GitOpsError(f"{where}.helm.parameters[{index}]: needs a name and a value")
            parameters.append((parameter["name"], str(parameter["value"]), bool(parameter.get("forceString"))))
        extra = [] if options.get("skipCrds") else ["--include-crds"]
        if options.get("kubeVersion"):
            extra += ["--kube-version", str(options["kubeVersion"])]
        for api_version in options.get("apiVersions") or []:
            extra += ["--api-versions", str(api_version)]
        destination = (application.get("spec") or {}).get("destination") or {}
        namespace = options.get("namespace") or (
            destination.get("namespace") if isinstance(destination, dict) else None
        )
        release = options.get("releaseName") or name_of_application(application)
        return _helm_template(folder, str(release), namespace, values_files, parameters, extra)


def _argo_values_file(name: object, folder: Path, repository_root: Path, refs: dict, where: str) -> Path:
    """A values file an Application names: relative to its chart, or `$<ref>/...` in a source of refs."""
    if not isinstance(name, str) or not name:
        raise GitOpsError(f"{where}: {name!r} is not a values file")
    if name.startswith("$"):
        ref, _, rest = name[1:].partition("/")
        if ref not in refs:
            raise GitOpsError(f"{where}: {name!r} names no source of this repository with ref {ref!r}")
        return resolve_in_repository(repository_root, rest, where)
    return resolve_in_repository(repository_root, os.path.relpath(folder / name, repository_root.resolve()), where)
