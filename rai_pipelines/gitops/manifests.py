"""Editing GitOps manifests: ruamel.yaml round trips that keep comments, the pin of a model's
image tag and model-version label in an overlay, and the check of the pinned render."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from rai_pipelines.core.errors import BadInputError, GitOpsError
from rai_pipelines.core.registry import validate_model_version
from rai_pipelines.core.yamlfile import check_yaml_bounds
from rai_pipelines.gitops.render import kustomize_render
from rai_pipelines.gitops.schema_check import DEFAULT_KUBERNETES_VERSION, validate_against_kubernetes_schema


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def load_yaml(path: Path):
    text = path.read_text()
    try:
        check_yaml_bounds(text, str(path))
    except BadInputError as exc:
        raise GitOpsError(str(exc)) from None
    try:
        return _yaml().load(text)
    except Exception as exc:
        raise GitOpsError(f"{path}: not valid YAML: {exc}") from exc


def dump_yaml(document, path: Path) -> None:
    buffer = io.StringIO()
    _yaml().dump(document, buffer)
    path.write_text(buffer.getvalue())


def _image_repository(image: str) -> tuple[str, str]:
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        raise GitOpsError(f"image {image!r} has no tag")
    return repository, tag


INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


def one_line_note(note: str, limit: int = 200) -> str:
    """The pin's comment on one line: a note with a line break would write YAML of its own."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", str(note)).strip()[:limit]


def pin_model_version(
    overlay: Path,
    deployment_name: str,
    image: str,
    version: str,
    note: str,
    replicas: int | None = None,
    instance_type: str | None = None,
) -> list[str]:
    """Edit the overlay in place so it deploys `image` with the pod label model-version=`version`,
    and the version's declared serving resources (replica count, node instance type).

    kustomization.yaml `images:` carries the tag; a strategic-merge patch in the overlay carries
    the label and the serving resources. Comments and formatting of both files are kept. Returns
    the image automation the pin neutralised (Flux's marker on the tag), for the commit to say.
    """
    validate_model_version(version, f"{overlay}: target version")
    repository, tag = _image_repository(image)
    kustomization_path = overlay / "kustomization.yaml"
    kustomization = load_yaml(kustomization_path)
    images = kustomization.get("images")
    if images is None:
        images = kustomization["images"] = []
    entry = next((i for i in images if i.get("name") == repository), None)
    if entry is None:
        entry = CommentedMap(name=repository)
        images.append(entry)
    entry["newTag"] = tag
    # The end-of-line comment of newTag is where Flux keeps its {"$imagepolicy": ...} marker; the
    # pin replaces it so image automation leaves the field alone until a person removes the pin.
    previous = " ".join(
        str(getattr(token, "value", "")) for token in (entry.ca.items.get("newTag") or []) if token is not None
    )
    neutralised = []
    if "$imagepolicy" in previous:
        neutralised.append(
            f"Flux image automation marker {previous.strip().lstrip('#').strip()} on {kustomization_path.name} "
            "replaced by the pin: image updates stop until a person removes it"
        )
    entry.yaml_add_eol_comment(f"pinned by rai-pipelines: {one_line_note(note)}", "newTag")
    dump_yaml(kustomization, kustomization_path)

    patch_path = None
    for patch in kustomization.get("patches") or []:
        candidate = overlay / str(patch.get("path", ""))
        if patch.get("path") and candidate.is_file():
            doc = load_yaml(candidate)
            if doc and doc.get("kind") == "Deployment" and doc.get("metadata", {}).get("name") == deployment_name:
                patch_path = candidate
                break
    if patch_path is None:
        raise GitOpsError(
            f"{kustomization_path}: no strategic-merge patch for Deployment {deployment_name} "
            "to carry the model-version label; add one under `patches:`"
        )
    patch_doc = load_yaml(patch_path)
    spec = patch_doc.setdefault("spec", CommentedMap())
    template = spec.setdefault("template", CommentedMap())
    template.setdefault("metadata", CommentedMap()).setdefault("labels", CommentedMap())["model-version"] = version
    if replicas is not None:
        spec["replicas"] = int(replicas)
    if instance_type is not None:
        template.setdefault("spec", CommentedMap()).setdefault("nodeSelector", CommentedMap())[INSTANCE_TYPE_LABEL] = (
            instance_type
        )
    dump_yaml(patch_doc, patch_path)
    return neutralised


@dataclass(frozen=True)
class PinnedRender:
    deployment: dict
    documents: list[dict]
    kubernetes_version: str
    schema_skipped: list[str]  # custom resources without a schema to check them against

    def checks(self) -> list[str]:
        """What was proved of the render, in words, for the commit's reviewers."""
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        images = [c.get("image") for c in self.deployment["spec"]["template"]["spec"].get("containers", [])]
        skipped = f" ({', '.join(self.schema_skipped)} not schema-checked)" if self.schema_skipped else ""
        return [
            f"the rendered Deployment {self.deployment['metadata']['name']} runs {', '.join(images)} "
            f"with model-version={labels.get('model-version')}",
            f"{len(self.documents)} rendered document(s) valid against the Kubernetes {self.kubernetes_version} "
            f"schemas (strict){skipped}",
        ]


def check_rendered(overlay: Path, deployment_name: str, image: str, version: str) -> dict:
    """Render the edited overlay and prove it deploys what the pin says, before anything is committed."""
    return check_pinned_render(overlay, deployment_name, image, version).deployment


def check_pinned_render(
    overlay: Path, deployment_name: str, image: str, version: str, kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
) -> PinnedRender:
    """The edited overlay rendered, proved to deploy what the pin says and checked against the
    Kubernetes schemas: an invalid render is never committed."""
    return check_pinned_documents(
        kustomize_render(overlay), str(overlay), deployment_name, image, version, kubernetes_version
    )


def check_pinned_documents(
    documents: list[dict],
    where: str,
    deployment_name: str,
    image: str,
    version: str,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
) -> PinnedRender:
    """A pinned source's render (any style), proved to deploy what the pin says and checked against
    the Kubernetes schemas."""
    for doc in documents:
        if doc.get("kind") == "Deployment" and doc.get("metadata", {}).get("name") == deployment_name:
            template = doc["spec"]["template"]
            label = template.get("metadata", {}).get("labels", {}).get("model-version")
            images = [c.get("image") for c in template["spec"].get("containers", [])]
            if label != version or image not in images:
                raise GitOpsError(
                    f"{where}: the rendered Deployment has model-version={label!r} and images {images}, "
                    f"expected {version!r} and {image!r}"
                )
            try:
                skipped = validate_against_kubernetes_schema(documents, kubernetes_version)
            except GitOpsError as exc:
                raise GitOpsError(f"{where}: the pinned render is not valid Kubernetes: {exc}") from exc
            return PinnedRender(doc, documents, kubernetes_version, skipped)
    raise GitOpsError(f"{where}: the rendered source holds no Deployment named {deployment_name}")
