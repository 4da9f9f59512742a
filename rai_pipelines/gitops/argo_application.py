"""Pinning a model's version in an Argo CD Application: the image override its source carries
(kustomize `images`, Helm `parameters` or `valuesObject`), the model-version label (a kustomize
patch of the Application, or a Helm parameter), and the Argo CD Image Updater annotations that
would bump the pin again."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString, ScalarString

from rai_pipelines.core.errors import GitOpsError
from rai_pipelines.core.registry import validate_model_version
from rai_pipelines.gitops.git import redact
from rai_pipelines.gitops.manifest_nodes import (
    YamlDocuments,
    child_mapping,
    dump_text_yaml,
    existing_parent,
    image_repository,
    load_text_yaml,
    mapping_of,
    normalise_repo_url,
    parse_dotted_key,
    pin_comment,
    sequence_of,
    set_scalar,
    split_image,
)

IMAGE_UPDATER_PREFIX = "argocd-image-updater.argoproj.io/"
IMAGE_LIST_ANNOTATION = IMAGE_UPDATER_PREFIX + "image-list"
VERSION_LABEL_POINTER = "/spec/template/metadata/labels/model-version"
_SETTING_OPS = ("add", "replace")


def is_application(document: object) -> bool:
    return (
        isinstance(document, dict)
        and document.get("kind") == "Application"
        and str(document.get("apiVersion", "")).startswith("argoproj.io/")
    )


def name_of_application(application: dict) -> str:
    metadata = application.get("metadata")
    return str(metadata.get("name")) if isinstance(metadata, dict) else "?"


def select_application(documents: list, path: Path, name: str | None) -> tuple[int, dict]:
    """The one Application of a file (the one named `name` when the file holds several)."""
    found = [(i, d) for i, d in enumerate(documents) if is_application(d)]
    if name is not None:
        found = [(i, d) for i, d in found if name_of_application(d) == name]
    if not found:
        raise GitOpsError(f"{path}: holds no Argo CD Application" + (f" named {name!r}" if name else ""))
    if len(found) > 1:
        names = sorted(name_of_application(d) for _, d in found)
        raise GitOpsError(f"{path}: holds {len(found)} Applications ({', '.join(names)}): name the one to pin")
    return found[0]


def application_sources(application: dict, where: str) -> list[tuple[str, CommentedMap]]:
    """(`spec.source` or `spec.sources[i]`, the source) for each source of the Application."""
    spec = mapping_of(application.get("spec"), f"{where}: spec")
    single, many = spec.get("source"), spec.get("sources")
    if single is not None and many is not None:
        raise GitOpsError(f"{where}: sets both spec.source and spec.sources (Argo CD ignores spec.source)")
    if many is not None:
        return [
            (f"spec.sources[{i}]", mapping_of(s, f"{where}: spec.sources[{i}]"))
            for i, s in enumerate(sequence_of(many, f"{where}: spec.sources"))
        ]
    if single is None:
        raise GitOpsError(f"{where}: has neither spec.source nor spec.sources")
    return [("spec.source", mapping_of(single, f"{where}: spec.source"))]


def source_in_repository(source: dict, gitops_repo_urls: tuple[str, ...]) -> bool | None:
    """Whether the source is the GitOps repository; None when no URL of it was given."""
    if not gitops_repo_urls:
        return None
    url = source.get("repoURL")
    return isinstance(url, str) and normalise_repo_url(url) in {normalise_repo_url(u) for u in gitops_repo_urls}


def parse_argo_image(entry: object, where: str) -> tuple[str | None, str, str | None, str | None]:
    """An Argo CD kustomize image override `[<old name>=]<new name>[:<tag>|@<digest>]` as
    (old name, new name, tag, digest)."""
    if not isinstance(entry, str) or not entry or any(c.isspace() for c in entry):
        raise GitOpsError(f"{where}: {entry!r} is not a kustomize image override (`[old=]name:tag`)")
    old, separator, new = entry.partition("=")
    if not separator:
        old, new = None, entry
    name, digest = new, None
    if "@" in new:
        name, digest = new.split("@", 1)
    repository = image_repository(name)
    tag = name[len(repository) + 1 :] if len(name) > len(repository) else None
    if not repository or old == "":
        raise GitOpsError(f"{where}: {entry!r} is not a kustomize image override (`[old=]name:tag`)")
    return old, repository, tag, digest


def _pin_kustomize_images(kustomize: CommentedMap, where: str, image: str, repository: str, comment: str) -> bool:
    """Set the override of `repository` to `image`; False when no override names it."""
    images = kustomize.get("images")
    if images is None:
        return False
    images = sequence_of(images, f"{where}.kustomize.images")
    pinned = False
    for index, entry in enumerate(images):
        old, new, _, _ = parse_argo_image(entry, f"{where}.kustomize.images[{index}]")
        if old == repository and new != repository:
            raise GitOpsError(
                f"{where}.kustomize.images[{index}]: {entry!r} renames {repository} to {new}: the pin would deploy "
                f"{new}, not {image}; pin that repository's tag or remove the rename"
            )
        if new == repository or old == repository:
            value = image if old in (None, repository) else f"{old}={image}"
            images[index] = type(entry)(value) if isinstance(entry, ScalarString) else value
            images.yaml_add_eol_comment(comment, index)
            pinned = True
    return pinned


def _append_kustomize_image(kustomize: CommentedMap, where: str, image: str, comment: str) -> None:
    if kustomize.get("images") is None:
        kustomize["images"] = CommentedSeq()
    images = sequence_of(kustomize["images"], f"{where}.kustomize.images")
    images.append(image)
    images.yaml_add_eol_comment(comment, len(images) - 1)


def _pin_version_in_patches(kustomize: CommentedMap, where: str, version: str, deployment_name: str | None) -> bool:
    """Set model-version in the Application's kustomize patch of the Deployment (a strategic-merge
    patch, or a JSON 6902 patch whose target is the Deployment); False when it has none."""
    patches = kustomize.get("patches")
    if patches is None:
        return False
    candidates = []
    for index, entry in enumerate(sequence_of(patches, f"{where}.kustomize.patches")):
        entry_where = f"{where}.kustomize.patches[{index}]"
        entry = mapping_of(entry, entry_where)
        text = entry.get("patch")
        if not isinstance(text, str):
            continue  # a patch file (`path:`) is outside the Application: not edited here
        target = entry.get("target") or {}
        target = mapping_of(target, f"{entry_where}.target")
        document = load_text_yaml(text, f"{entry_where}.patch")
        if isinstance(document, list):
            kind, name = target.get("kind"), target.get("name")
            carries = any(isinstance(op, dict) and op.get("path") == VERSION_LABEL_POINTER for op in document)
        elif isinstance(document, dict):
            metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
            kind = document.get("kind") or target.get("kind")
            name = metadata.get("name") or target.get("name")
            labels = (((document.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
            carries = isinstance(labels, dict) and "model-version" in labels
        else:
            continue
        if kind != "Deployment" or (deployment_name is not None and name not in (None, deployment_name)):
            continue
        candidates.append((entry, text, document, carries, entry_where))
    chosen = [c for c in candidates if c[3]] or candidates
    if len(chosen) > 1 and not all(c[3] for c in chosen):
        raise GitOpsError(
            f"{where}.kustomize.patches: {len(chosen)} patches of Deployments, none carrying model-version: "
            "name the Deployment to pin"
        )
    for entry, text, document, _, entry_where in chosen:
        if isinstance(document, list):
            operations = [
                op
                for op in document
                if isinstance(op, dict)
                and op.get("path") == VERSION_LABEL_POINTER
                and op.get("op") in ("add", "replace")
            ]
            for op in operations:
                set_scalar(op, "value", version)
            if not operations:
                document.append(CommentedMap(op="add", path=VERSION_LABEL_POINTER, value=version))
        else:
            spec = child_mapping(document, "spec", entry_where)
            metadata = child_mapping(child_mapping(spec, "template", f"{entry_where}.spec"), "metadata", entry_where)
            set_scalar(child_mapping(metadata, "labels", entry_where), "model-version", version)
        new_text = dump_text_yaml(document)
        if not text.endswith("\n"):
            new_text = new_text.rstrip("\n")
        old = entry["patch"]
        if isinstance(old, ScalarString):
            entry["patch"] = type(old)(new_text)
        else:
            entry["patch"] = LiteralScalarString(new_text) if "\n" in new_text else new_text
    return bool(chosen)


def _has_key(root: object, segments: list[str]) -> bool:
    node = root
    for segment in segments:
        if not isinstance(node, dict) or segment not in node:
            return False
        node = node[segment]
    return True


def _helm_value(helm: CommentedMap, name: str):
    """What the Application sets for a Helm value (its parameter first: parameters win), or None."""
    for parameter in helm.get("parameters") or []:
        if isinstance(parameter, dict) and parameter.get("name") == name:
            return parameter.get("value")
    node = helm.get("valuesObject")
    for segment in parse_dotted_key(name, "helm value"):
        if not isinstance(node, dict) or segment not in node:
            return None
        node = node[segment]
    return node


def _set_helm_value(helm: CommentedMap, name: str, value: str, where: str, comment: str | None) -> None:
    """Set a Helm value where the Application sets it: its parameter and its valuesObject key (both,
    when both hold it); otherwise a new string parameter (or valuesObject key without parameters)."""
    segments = parse_dotted_key(name, f"{where}.helm")
    parameters = helm.get("parameters")
    values_object = helm.get("valuesObject")
    done = False
    if parameters is not None:
        for index, parameter in enumerate(sequence_of(parameters, f"{where}.helm.parameters")):
            parameter = mapping_of(parameter, f"{where}.helm.parameters[{index}]")
            if parameter.get("name") == name:
                set_scalar(parameter, "value", value)
                parameter["forceString"] = True  # `--set` would read 2 or 1.10 as numbers
                if comment:
                    parameter.yaml_add_eol_comment(comment, "value")
                done = True
    if values_object is not None:
        values_object = mapping_of(values_object, f"{where}.helm.valuesObject")
        if _has_key(values_object, segments) or (not done and parameters is None):
            parent = existing_parent(values_object, segments, f"{where}.helm.valuesObject", create=True)
            set_scalar(parent, segments[-1], value)
            if comment:
                parent.yaml_add_eol_comment(comment, segments[-1])
            done = True
    if not done:
        if parameters is None:
            helm["parameters"] = parameters = CommentedSeq()
        parameters.append(CommentedMap(name=name, value=value, forceString=True))
        if comment:
            parameters[-1].yaml_add_eol_comment(comment, "value")


def _pin_helm_source(
    source: CommentedMap,
    where: str,
    tag_parameter: str,
    version_parameter: str | None,
    repository: str,
    tag: str,
    version: str,
    comment: str,
    add_when_absent: bool,
) -> bool:
    """Set the tag and version parameters of a Helm source; False when it sets no tag (and
    `add_when_absent` is off)."""
    helm = mapping_of(source.get("helm"), f"{where}.helm")
    if _helm_value(helm, tag_parameter) is None and not add_when_absent:
        return False
    prefix = tag_parameter.rpartition(".")[0]
    if prefix:
        named = _helm_value(helm, f"{prefix}.repository")
        registry = _helm_value(helm, f"{prefix}.registry")
        if isinstance(named, str) and repository not in (named, f"{registry}/{named}"):
            raise GitOpsError(
                f"{where}.helm: {prefix}.repository is {named!r}, not {repository}: {tag_parameter} is the tag of "
                "another image"
            )
    if version_parameter is None:
        raise GitOpsError(
            f"{where}.helm: name the Helm value that carries the model-version label (version_parameter, "
            "e.g. podLabels.model-version)"
        )
    _set_helm_value(helm, tag_parameter, tag, where, comment)
    _set_helm_value(helm, version_parameter, version, where, None)
    return True


def _updater_entries(raw: str) -> list[tuple[str, str]]:
    """`[<alias>=]<image>[:<constraint>]` entries of an image-list annotation as (alias, entry)."""
    entries = []
    for entry in (e.strip() for e in raw.split(",")):
        if entry:
            alias, separator, _ = entry.partition("=")
            entries.append((alias if separator else "", entry))
    return entries


def neutralise_image_updater(application: CommentedMap, repository: str, where: str) -> list[str]:
    """Remove the Argo CD Image Updater configuration of `repository` from the Application's
    annotations (its image-list entries, and the annotations of their aliases); what was removed."""
    metadata = application.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict) or IMAGE_LIST_ANNOTATION not in annotations:
        return []
    raw = annotations[IMAGE_LIST_ANNOTATION]
    if not isinstance(raw, str):
        raise GitOpsError(f"{where}: annotation {IMAGE_LIST_ANNOTATION} is not a string")
    kept, removed = [], []
    for alias, entry in _updater_entries(raw):
        spec = entry.partition("=")[2] if alias else entry
        (removed if image_repository(spec) == repository else kept).append((alias, entry))
    if not removed:
        return []
    neutralised = []
    if kept:
        separator = ", " if ", " in raw else ","
        set_scalar(annotations, IMAGE_LIST_ANNOTATION, separator.join(e for _, e in kept))
        neutralised.append(f"{IMAGE_LIST_ANNOTATION} (entry {', '.join(e for _, e in removed)} removed)")
    else:
        del annotations[IMAGE_LIST_ANNOTATION]
        neutralised.append(f"{IMAGE_LIST_ANNOTATION} (removed: it listed only {', '.join(e for _, e in removed)})")
    aliases = {a for a, _ in removed if a} - {a for a, _ in kept if a}
    for key in list(annotations):
        option = key[len(IMAGE_UPDATER_PREFIX) :] if key.startswith(IMAGE_UPDATER_PREFIX) else ""
        if "." in option and option.split(".", 1)[0] in aliases:
            del annotations[key]
            neutralised.append(key)
    if not annotations:
        del metadata["annotations"]
    return neutralised


def resolve_in_repository(repository_root: Path, relative: object, where: str) -> Path:
    """A path an Application names, inside the repository (no escape by `..` or a symbolic link)."""
    if not isinstance(relative, str) or relative.startswith("/"):
        raise GitOpsError(f"{where}: path {relative!r} is not relative to the repository")
    root = repository_root.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise GitOpsError(f"{where}: path {relative!r} leaves the repository")
    return target


def find_repository_root(path: Path) -> Path | None:
    for folder in [path.resolve().parent, *path.resolve().parents]:
        if (folder / ".git").exists():
            return folder
    return None


def check_no_override_file(
    application: dict,
    sources: list[tuple[str, CommentedMap]],
    repository_root: Path | None,
    gitops_repo_urls: tuple[str, ...],
    where: str,
) -> None:
    """Argo CD merges `.argocd-source-<app>.yaml` (the Image Updater's git write-back) over the
    Application's source: a pin in the Application would not be what is deployed."""
    if repository_root is None:
        return
    name = name_of_application(application)
    for label, source in sources:
        if source_in_repository(source, gitops_repo_urls) and isinstance(source.get("path"), str):
            folder = resolve_in_repository(repository_root, source["path"], f"{where}: {label}.path")
            for candidate in (f".argocd-source-{name}.yaml", ".argocd-source.yaml"):
                if (folder / candidate).is_file():
                    raise GitOpsError(
                        f"{where}: {(folder / candidate).relative_to(repository_root.resolve())} overrides the "
                        "Application's parameters (Argo CD Image Updater's git write-back): a pin in the Application "
                        "would not be deployed; remove that file's override first"
                    )


def pin_argo_application(
    path: Path,
    image: str,
    version: str,
    note: str,
    version_parameter: str | None = None,
    *,
    gitops_repo_urls: tuple[str, ...] = (),
    image_tag_parameter: str = "image.tag",
    deployment_name: str | None = None,
    application_name: str | None = None,
    repository_root: Path | None = None,
) -> list[str]:
    """Edit the Argo CD Application in `path` so it deploys `image` labelled model-version=`version`,
    and remove the Image Updater configuration of that image; the annotations neutralised.

    A kustomize source gets its `images` override of the repository set (the label through the
    Application's kustomize patch of the Deployment, or a Helm source's `version_parameter`); a
    Helm source gets `image_tag_parameter` and `version_parameter` set as string parameters (or in
    `valuesObject` where the Application sets them there). Nothing is written on error.
    """
    validate_model_version(version, f"{path}: target version")
    repository, tag = split_image(image)
    comment = pin_comment(note)
    file = YamlDocuments(path)
    index, application = select_application(file.documents, path, application_name)
    where = f"{path}: Application {name_of_application(application)}"
    sources = application_sources(application, where)
    if repository_root is None:
        repository_root = find_repository_root(path)
    check_no_override_file(application, sources, repository_root, gitops_repo_urls, where)

    kustomize_sources = [(w, s) for w, s in sources if s.get("kustomize") is not None]
    helm_sources = [(w, s) for w, s in sources if s.get("helm") is not None]
    for label, source in kustomize_sources:
        mapping_of(source["kustomize"], f"{where}: {label}.kustomize")
    args = (image_tag_parameter, version_parameter, repository, tag, version, comment)
    pinned_kustomize = [
        (w, s)
        for w, s in kustomize_sources
        if _pin_kustomize_images(s["kustomize"], f"{where}: {w}", image, repository, comment)
    ]
    pinned_helm = [(w, s) for w, s in helm_sources if _pin_helm_source(s, f"{where}: {w}", *args, False)]
    if not pinned_kustomize and not pinned_helm:
        editable = kustomize_sources + helm_sources
        if len(editable) > 1:
            raise GitOpsError(
                f"{where}: none of its sources ({', '.join(w for w, _ in editable)}) overrides {repository}: "
                "cannot tell which one deploys it"
            )
        if not editable:
            outside = [s for _, s in sources if source_in_repository(s, gitops_repo_urls) is False]
            if outside:
                raise GitOpsError(
                    f"{where}: has no Helm parameters or kustomize images to pin {repository}, and its source is not "
                    f"in this repository: change {redact(str(outside[0].get('repoURL')))} instead"
                )
            paths = ", ".join(str(s.get("path")) for _, s in sources)
            raise GitOpsError(
                f"{where}: carries no image override (kustomize images or Helm parameters) for {repository}: "
                f"pin the manifests at its source path ({paths}) instead"
            )
        label, source = editable[0]
        if source.get("kustomize") is not None:
            _append_kustomize_image(source["kustomize"], f"{where}: {label}", image, comment)
            pinned_kustomize.append((label, source))
        else:
            _pin_helm_source(source, f"{where}: {label}", *args, True)
            pinned_helm.append((label, source))
    if pinned_kustomize:
        labelled = [
            _pin_version_in_patches(s["kustomize"], f"{where}: {w}", version, deployment_name)
            for w, s in pinned_kustomize
        ]
        if not any(labelled) and not pinned_helm:
            if version_parameter is not None and helm_sources:
                label, source = helm_sources[0]
                _set_helm_value(source["helm"], version_parameter, version, f"{where}: {label}", None)
            else:
                raise GitOpsError(
                    f"{where}: no kustomize patch of the Deployment (spec.source.kustomize.patches) to carry the "
                    f"model-version label; add one (a strategic-merge patch or a {VERSION_LABEL_POINTER} operation) "
                    "or pin the source overlay instead"
                )
    neutralised = neutralise_image_updater(application, repository, where)
    file.changed.add(index)
    file.write()
    return neutralised
