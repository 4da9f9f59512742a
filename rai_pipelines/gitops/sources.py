"""A model's deployment source in the GitOps repository, whatever its style: a kustomize overlay
(a folder), a plain Deployment manifest, an Argo CD Application (Helm parameters or kustomize
images) or a Helm values file beside its chart. One entry point to render a source as the cluster
would get it, one to pin a version in it, one to find the sources that are not kustomize overlays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rai_pipelines.core.errors import BadInputError, GitOpsError
from rai_pipelines.gitops.manifest_styles import (
    detect_style,
    pin_argo_application,
    pin_helm_values,
    pin_plain_deployment,
    render_source,
)
from rai_pipelines.gitops.manifests import pin_model_version
from rai_pipelines.gitops.render import KUSTOMIZATION_FILES, RenderedDeployment, RenderFailure


@dataclass(frozen=True)
class SourceOptions:
    """How sources other than kustomize overlays are read and pinned."""

    # the URLs Argo CD Applications name this repository by (the remote, and any alias they use)
    gitops_repo_urls: tuple[str, ...] = ()
    # the revisions of this checkout an Application may track besides HEAD (the environment branch)
    checkout_revisions: tuple[str, ...] = ()
    helm_image_tag_key: str = "image.tag"
    helm_version_label_key: str = "podLabels.model-version"
    argo_version_parameter: str | None = "podLabels.model-version"


def source_path(checkout: Path, source: str) -> Path:
    path = checkout / source
    if not path.resolve().is_relative_to(checkout.resolve()):
        raise BadInputError(f"{source} resolves outside the GitOps repository (a symbolic link?)")
    return path


def render_deployment_source(checkout: Path, source: str, options: SourceOptions) -> list[dict]:
    path = source_path(checkout, source)
    return render_source(
        path,
        detect_style(path),
        repository_root=checkout,
        gitops_repo_urls=options.gitops_repo_urls,
        checkout_revisions=options.checkout_revisions,
    )


def pin_deployment_source(
    checkout: Path,
    source: str,
    deployment: str,
    image: str,
    version: str,
    note: str,
    options: SourceOptions,
    replicas: int | None = None,
    instance_type: str | None = None,
) -> list[str]:
    """Pin `image` and the model-version label `version` in the source; returns what the commit
    must say it changed beyond that (image automation neutralised)."""
    path = source_path(checkout, source)
    style = detect_style(path)
    if style == "kustomize":
        return pin_model_version(path, deployment, image, version, note, replicas, instance_type)
    if style == "deployment":
        pin_plain_deployment(path, deployment, image, version, note)
        return []
    if style == "helm-values":
        tag = image.rpartition(":")[2]
        pin_helm_values(path, options.helm_image_tag_key, options.helm_version_label_key, tag, version, note)
        return []
    neutralised = pin_argo_application(
        path,
        image,
        version,
        note,
        options.argo_version_parameter,
        gitops_repo_urls=options.gitops_repo_urls,
        deployment_name=deployment,
        repository_root=checkout,
    )
    return [f"Argo CD Image Updater annotation removed so it does not re-bump the pin: {a}" for a in neutralised]


def other_sources(checkout: Path, source_glob: str | None) -> list[str]:
    """The files `source_glob` matches that are deployment sources but not kustomize overlays."""
    if not source_glob:
        return []
    found = []
    for path in sorted(checkout.glob(source_glob)):
        if path.is_dir() and any((path / name).is_file() for name in KUSTOMIZATION_FILES):
            continue  # the kustomize overlays are rendered together, by overlay_glob
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            found.append(path.relative_to(checkout).as_posix())
    return found


def rendered_other_sources(
    checkout: Path, source_glob: str | None, options: SourceOptions
) -> tuple[list[RenderedDeployment], list[RenderFailure]]:
    """Every Deployment the sources that are not kustomize overlays render, and the sources that
    fail (a Helm chart without helm, an Application whose source is elsewhere): each an alert of
    its own, the others still governed."""
    deployments, failures = [], []
    for source in other_sources(checkout, source_glob):
        try:
            documents = render_deployment_source(checkout, source, options)
        except (GitOpsError, BadInputError) as exc:
            failures.append(RenderFailure(source, str(exc)))
            continue
        deployments += [RenderedDeployment(source, d) for d in documents if d.get("kind") == "Deployment"]
    return deployments, failures
