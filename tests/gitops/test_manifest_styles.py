"""Pins of a model's version in the manifest styles besides a kustomize overlay (a plain YAML file,
a Helm values file, an Argo CD Application), which style a path is, and what each renders to."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from rai_pipelines.core.errors import GitOpsError
from rai_pipelines.gitops.manifest_nodes import normalise_repo_url, parse_dotted_key
from rai_pipelines.gitops.manifest_styles import (
    detect_style,
    pin_argo_application,
    pin_helm_values,
    pin_plain_deployment,
    render_source,
)
from rai_pipelines.gitops.schema_check import validate_against_kubernetes_schema

MODEL = "registry.example.com/credit-risk/credit-scoring-ai"
GITOPS = "https://git.example.com/platform/gitops.git"
NOTE = "decision d-7; 2.0.0 violated policy cost-per-inference"

SERVICE = """\
# Traffic to the scorer; owned by the platform team.
apiVersion: v1
kind: Service
metadata:
  name: credit-scoring-ai   # same name as the Deployment
spec:
  selector: {app: credit-scoring-ai}
  ports:
    - port: 80
      targetPort: 8080
"""
DEPLOYMENT = """\
# The scorer and its mesh sidecar.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: credit-scoring-ai
  labels:
    app: credit-scoring-ai
spec:
  replicas: 2
  selector:
    matchLabels:
      app: credit-scoring-ai
  template:
    metadata:
      labels:
        app: credit-scoring-ai
        model-version: "2.0.0"  # what the policies read
    spec:
      initContainers:
        - name: warm-cache
          image: registry.example.com/credit-risk/credit-scoring-ai:2.0.0
          args: [warm]
      containers:
        - name: scorer
          image: "registry.example.com/credit-risk/credit-scoring-ai:2.0.0" # {"$imagepolicy": "flux-system:scorer"}
          ports:
            - containerPort: 8080
        - name: envoy
          image: docker.io/envoyproxy/envoy:v1.29.1  # sidecar, pinned by the mesh team
"""
PLAIN_FILE = "# Rendered by hand; Argo CD syncs this folder.\n---\n" + SERVICE + "---\n" + DEPLOYMENT


def _load(path: Path) -> list:
    return [d for d in YAML(typ="safe", pure=True).load_all(path.read_text()) if d is not None]


def _deployment(documents: list) -> dict:
    return next(d for d in documents if d["kind"] == "Deployment")


# -- plain YAML ---------------------------------------------------------------------------------


def test_plain_file_pins_the_model_containers_and_label_and_keeps_the_rest(tmp_path):
    path = tmp_path / "credit-scoring-ai.yaml"
    path.write_text(PLAIN_FILE)
    pin_plain_deployment(path, "credit-scoring-ai", f"{MODEL}:1.4.2", "1.4.2", NOTE)
    text = path.read_text()
    template = _deployment(_load(path))["spec"]["template"]
    assert [c["image"] for c in template["spec"]["containers"]] == [
        f"{MODEL}:1.4.2",
        "docker.io/envoyproxy/envoy:v1.29.1",
    ]
    assert template["spec"]["initContainers"][0]["image"] == f"{MODEL}:1.4.2"
    assert template["metadata"]["labels"]["model-version"] == "1.4.2"
    # the Service and the comments between documents are byte for byte what they were
    assert text.startswith("# Rendered by hand; Argo CD syncs this folder.\n---\n" + SERVICE + "---\n")
    assert "# The scorer and its mesh sidecar." in text and "# sidecar, pinned by the mesh team" in text
    assert "# what the policies read" in text
    assert '{"$imagepolicy"' not in text
    assert re.search(f'image: "{MODEL}:1.4.2" +# pinned by rai-pipelines: decision d-7', text)


@pytest.mark.parametrize(
    ("name", "image", "message"),
    [
        ("fraud-detector", f"{MODEL}:1.4.2", "holds no Deployment named 'fraud-detector'"),
        ("credit-scoring-ai", "registry.example.com/other/model:1.4.2", "no container runs an image of"),
        ("credit-scoring-ai", f"{MODEL}@sha256:abc", "not a `repository:tag` reference"),
    ],
)
def test_plain_file_errors_write_nothing(tmp_path, name, image, message):
    path = tmp_path / "app.yaml"
    path.write_text(PLAIN_FILE)
    with pytest.raises(GitOpsError, match=message):
        pin_plain_deployment(path, name, image, "1.4.2", NOTE)
    assert path.read_text() == PLAIN_FILE


def test_a_deployment_selecting_on_model_version_is_refused(tmp_path):
    path = tmp_path / "app.yaml"
    original = DEPLOYMENT.replace(
        "      app: credit-scoring-ai\n  template",
        "      app: credit-scoring-ai\n      model-version: 2.0.0\n  template",
    )
    path.write_text(original)
    with pytest.raises(GitOpsError, match="selector is immutable"):
        pin_plain_deployment(path, "credit-scoring-ai", f"{MODEL}:1.4.2", "1.4.2", NOTE)
    assert path.read_text() == original


def test_a_note_cannot_write_yaml_of_its_own(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text(DEPLOYMENT)
    pin_plain_deployment(path, "credit-scoring-ai", f"{MODEL}:1.4.2", "1.4.2", "d-7\nreplicas: 0\r\nevil: true")
    deployment = _deployment(_load(path))
    assert deployment["spec"]["replicas"] == 2 and "evil" not in deployment
    assert "# pinned by rai-pipelines: d-7 replicas: 0 evil: true" in path.read_text()


# -- Helm values --------------------------------------------------------------------------------

VALUES = """\
# Default values for credit-scoring-ai.
replicaCount: 2

image:
  repository: registry.example.com/credit-risk/credit-scoring-ai
  # Overridden per environment by the release pipeline.
  tag: "2.0.0" # {"$imagepolicy": "flux-system:credit-scoring-ai:tag"}
  pullPolicy: IfNotPresent

podLabels:
  model-version: 2.0.0   # read by the governance policies
  app.kubernetes.io/version: 2.0.0

resources:
  limits: {cpu: "2", memory: 4Gi}
"""


def _chart(tmp_path: Path) -> Path:
    chart = tmp_path / "charts" / "credit-scoring-ai"
    chart.mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: credit-scoring-ai\nversion: 0.3.1\n")
    (chart / "values.yaml").write_text(VALUES)
    return chart


def test_helm_values_pin_sets_both_keys_and_keeps_comments(tmp_path):
    values = _chart(tmp_path) / "values.yaml"
    pin_helm_values(values, "image.tag", "podLabels.app\\.kubernetes\\.io/version", "1.4.2", "1.4.2", NOTE)
    loaded = _load(values)[0]
    assert loaded["image"]["tag"] == "1.4.2" and loaded["podLabels"]["app.kubernetes.io/version"] == "1.4.2"
    assert loaded["podLabels"]["model-version"] == "2.0.0"
    text = values.read_text()
    assert text.startswith("# Default values for credit-scoring-ai.\nreplicaCount: 2\n")
    assert "# Overridden per environment by the release pipeline." in text
    assert re.search(r'\n  tag: "1\.4\.2" +# pinned by rai-pipelines: decision d-7', text)
    assert "$imagepolicy" not in text
    assert "# read by the governance policies" in text and 'limits: {cpu: "2", memory: 4Gi}' in text

    pin_helm_values(values, "image.tag", "podLabels.model-version", "1.4.1", "1.4.1", NOTE)
    assert _load(values)[0]["podLabels"]["model-version"] == "1.4.1"


@pytest.mark.parametrize(
    ("tag_key", "label_key", "message"),
    [
        ("image.tag", "podLabels.modelVersion", "has no key 'podLabels.modelVersion'"),
        ("image.version", "podLabels.model-version", "has no key 'image.version'"),
        ("deployment.image.tag", "podLabels.model-version", "has no key 'deployment'"),
        ("image", "podLabels.model-version", "key 'image' holds a CommentedMap, not a value"),
        ("image.tag", "image.tag", "are the same key"),
    ],
)
def test_helm_values_without_the_key_write_nothing(tmp_path, tag_key, label_key, message):
    values = _chart(tmp_path) / "values.yaml"
    with pytest.raises(GitOpsError, match=message) as caught:
        pin_helm_values(values, tag_key, label_key, "1.4.2", "1.4.2", NOTE)
    assert str(values) in str(caught.value)
    assert values.read_text() == VALUES


def test_dotted_keys_escape_dots_with_a_backslash():
    assert parse_dotted_key("podLabels.app\\.kubernetes\\.io/version", "k") == [
        "podLabels",
        "app.kubernetes.io/version",
    ]
    assert parse_dotted_key("a\\\\.b", "k") == ["a\\", "b"]
    for bad in ("a..b", "a.", "a\\", ""):
        with pytest.raises(GitOpsError):
            parse_dotted_key(bad, "k")


# -- Argo CD Applications ---------------------------------------------------------------------

HELM_APPLICATION = f"""\
# Production release of the scorer chart.
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: credit-scoring-ai
  namespace: argocd
spec:
  project: credit-risk
  source:
    repoURL: {GITOPS}
    targetRevision: main
    path: charts/credit-scoring-ai
    helm:
      releaseName: credit-scoring-ai
      parameters:
        - name: replicaCount
          value: "3"
        - name: image.tag
          value: 2.0.0  # bumped by the release pipeline
        - name: podLabels.model-version
          value: 2.0.0
  destination:
    server: https://kubernetes.default.svc
    namespace: credit-risk
"""

KUSTOMIZE_APPLICATION = f"""\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: credit-scoring-ai
  namespace: argocd
  annotations:
    # Image Updater bumps both images on every push to the registry.
    argocd-image-updater.argoproj.io/image-list: scorer={MODEL}:~2, envoy=docker.io/envoyproxy/envoy:~1.29
    argocd-image-updater.argoproj.io/scorer.update-strategy: semver
    argocd-image-updater.argoproj.io/scorer.allow-tags: regexp:^[0-9.]+$
    argocd-image-updater.argoproj.io/envoy.update-strategy: semver
    argocd-image-updater.argoproj.io/write-back-method: argocd
spec:
  project: credit-risk
  source:
    repoURL: {GITOPS}
    targetRevision: main
    path: apps/credit-scoring-ai/base
    kustomize:
      images:
        - {MODEL}:2.0.0  # set by Image Updater
        - docker.io/envoyproxy/envoy:v1.29.1
      patches:
        - target:
            kind: Deployment
            name: credit-scoring-ai
          patch: |-
            - op: replace
              path: /spec/template/metadata/labels/model-version
              value: "2.0.0"
  destination:
    server: https://kubernetes.default.svc
    namespace: credit-risk
"""

MULTI_SOURCE_APPLICATION = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: credit-scoring-ai
  namespace: argocd
spec:
  project: credit-risk
  sources:
    - repoURL: https://charts.example.com/credit-risk
      chart: credit-scoring-ai
      targetRevision: 0.3.1
      helm:
        valueFiles:
          - $values/environments/production/credit-scoring-ai.yaml
        valuesObject:
          image:
            tag: 2.0.0  # the version in production
          podLabels:
            model-version: 2.0.0
    - repoURL: git@git.example.com:platform/gitops.git
      targetRevision: main
      ref: values
  destination:
    server: https://kubernetes.default.svc
    namespace: credit-risk
"""


def test_argo_helm_parameters_are_pinned_as_strings(tmp_path):
    path = tmp_path / "application.yaml"
    path.write_text(HELM_APPLICATION)
    neutralised = pin_argo_application(
        path, f"{MODEL}:1.4.2", "1.4.2", NOTE, "podLabels.model-version", gitops_repo_urls=(GITOPS,)
    )
    assert neutralised == []
    parameters = {p["name"]: p for p in _load(path)[0]["spec"]["source"]["helm"]["parameters"]}
    assert parameters["image.tag"] == {"name": "image.tag", "value": "1.4.2", "forceString": True}
    assert parameters["podLabels.model-version"]["value"] == "1.4.2"
    assert parameters["replicaCount"] == {"name": "replicaCount", "value": "3"}
    text = path.read_text()
    assert text.startswith("# Production release of the scorer chart.\n")
    assert "value: 1.4.2  # pinned by rai-pipelines: decision d-7" in text


def test_argo_helm_source_needs_the_version_parameter(tmp_path):
    path = tmp_path / "application.yaml"
    path.write_text(HELM_APPLICATION)
    with pytest.raises(GitOpsError, match="version_parameter"):
        pin_argo_application(path, f"{MODEL}:1.4.2", "1.4.2", NOTE, gitops_repo_urls=(GITOPS,))
    assert path.read_text() == HELM_APPLICATION


def test_argo_kustomize_images_are_pinned_and_image_updater_neutralised_for_that_image_only(tmp_path):
    path = tmp_path / "application.yaml"
    path.write_text(KUSTOMIZE_APPLICATION)
    neutralised = pin_argo_application(path, f"{MODEL}:1.4.2", "1.4.2", NOTE, gitops_repo_urls=(GITOPS,))
    application = _load(path)[0]
    kustomize = application["spec"]["source"]["kustomize"]
    assert kustomize["images"] == [f"{MODEL}:1.4.2", "docker.io/envoyproxy/envoy:v1.29.1"]
    assert '"1.4.2"' in kustomize["patches"][0]["patch"] and "2.0.0" not in kustomize["patches"][0]["patch"]
    annotations = application["metadata"]["annotations"]
    assert annotations == {
        "argocd-image-updater.argoproj.io/image-list": "envoy=docker.io/envoyproxy/envoy:~1.29",
        "argocd-image-updater.argoproj.io/envoy.update-strategy": "semver",
        "argocd-image-updater.argoproj.io/write-back-method": "argocd",
    }
    assert neutralised == [
        f"argocd-image-updater.argoproj.io/image-list (entry scorer={MODEL}:~2 removed)",
        "argocd-image-updater.argoproj.io/scorer.update-strategy",
        "argocd-image-updater.argoproj.io/scorer.allow-tags",
    ]
    text = path.read_text()
    assert "# Image Updater bumps both images on every push to the registry." in text
    assert f"- {MODEL}:1.4.2  # pinned by rai-pipelines: decision d-7" in text
    assert "patch: |-\n" in text


def test_an_image_list_of_that_image_alone_is_dropped(tmp_path):
    path = tmp_path / "application.yaml"
    path.write_text(
        KUSTOMIZE_APPLICATION.replace(", envoy=docker.io/envoyproxy/envoy:~1.29", "").replace(
            "    argocd-image-updater.argoproj.io/envoy.update-strategy: semver\n", ""
        )
    )
    neutralised = pin_argo_application(path, f"{MODEL}:1.4.2", "1.4.2", NOTE, gitops_repo_urls=(GITOPS,))
    annotations = _load(path)[0]["metadata"]["annotations"]
    assert annotations == {"argocd-image-updater.argoproj.io/write-back-method": "argocd"}
    assert neutralised[0].startswith("argocd-image-updater.argoproj.io/image-list (removed: it listed only scorer=")


def test_argo_multi_source_values_object_is_pinned(tmp_path):
    path = tmp_path / "application.yaml"
    path.write_text(MULTI_SOURCE_APPLICATION)
    pin_argo_application(path, f"{MODEL}:1.4.2", "1.4.2", NOTE, "podLabels.model-version", gitops_repo_urls=(GITOPS,))
    sources = _load(path)[0]["spec"]["sources"]
    assert sources[0]["helm"]["valuesObject"] == {"image": {"tag": "1.4.2"}, "podLabels": {"model-version": "1.4.2"}}
    assert "parameters" not in sources[0]["helm"] and sources[1] == {
        "repoURL": "git@git.example.com:platform/gitops.git",
        "targetRevision": "main",
        "ref": "values",
    }
    assert "tag: 1.4.2  # pinned by rai-pipelines: decision d-7" in path.read_text()


def test_an_application_of_another_repository_without_overrides_names_that_repository(tmp_path):
    original = (
        HELM_APPLICATION.replace(
            f"repoURL: {GITOPS}", "repoURL: https://deploy:s3cret@git.example.com/credit-risk/scorer-deploy.git"
        ).split("    helm:")[0]
        + "  destination:\n    namespace: credit-risk\n"
    )
    path = tmp_path / "application.yaml"
    path.write_text(original)
    with pytest.raises(GitOpsError, match="its source is not in this repository: change https://") as caught:
        pin_argo_application(path, f"{MODEL}:1.4.2", "1.4.2", NOTE, gitops_repo_urls=(GITOPS,))
    assert "s3cret" not in str(caught.value) and "scorer-deploy.git instead" in str(caught.value)
    assert path.read_text() == original


def test_a_kustomize_application_without_a_label_patch_writes_nothing(tmp_path):
    original = KUSTOMIZE_APPLICATION.split("      patches:")[0] + "  destination:\n    namespace: credit-risk\n"
    path = tmp_path / "application.yaml"
    path.write_text(original)
    with pytest.raises(GitOpsError, match="no kustomize patch of the Deployment"):
        pin_argo_application(path, f"{MODEL}:1.4.2", "1.4.2", NOTE, gitops_repo_urls=(GITOPS,))
    assert path.read_text() == original


def test_an_image_updater_write_back_file_is_refused(tmp_path):
    repository = _gitops_checkout(tmp_path)
    (repository / "apps/credit-scoring-ai/base/.argocd-source-credit-scoring-ai.yaml").write_text(
        f"kustomize:\n  images:\n    - {MODEL}:2.0.0\n"
    )
    path = repository / "clusters/production/credit-scoring-ai.yaml"
    original = path.read_text()
    with pytest.raises(GitOpsError, match="overrides the Application's parameters"):
        pin_argo_application(path, f"{MODEL}:1.4.2", "1.4.2", NOTE, gitops_repo_urls=(GITOPS,))
    assert path.read_text() == original


def test_repository_urls_of_one_repository_compare_equal():
    forms = [
        "https://git.example.com/platform/gitops.git",
        "https://git.example.com/platform/gitops/",
        "https://token:x@git.example.com/Platform/gitops",
        "ssh://git@git.example.com:2222/platform/gitops.git",
        "git@git.example.com:platform/gitops.git",
    ]
    assert {normalise_repo_url(u) for u in forms} == {"git.example.com/platform/gitops"}
    assert normalise_repo_url("https://git.example.com/platform/gitops-staging") != normalise_repo_url(forms[0])


# -- styles and renders -------------------------------------------------------------------------

BASE_KUSTOMIZATION = "resources:\n  - deployment.yaml\n"


def _gitops_checkout(tmp_path: Path) -> Path:
    """A checkout (a folder with .git) holding a kustomize base and the Application that deploys it."""
    repository = tmp_path / "gitops"
    base = repository / "apps/credit-scoring-ai/base"
    base.mkdir(parents=True)
    (repository / ".git").mkdir()
    (base / "kustomization.yaml").write_text(BASE_KUSTOMIZATION)
    (base / "deployment.yaml").write_text(DEPLOYMENT)
    (repository / "clusters/production").mkdir(parents=True)
    (repository / "clusters/production/credit-scoring-ai.yaml").write_text(KUSTOMIZE_APPLICATION)
    return repository


def test_each_style_is_detected(tmp_path):
    repository = _gitops_checkout(tmp_path)
    chart = _chart(repository)
    (chart / "values-production.yaml").write_text(VALUES)
    plain = repository / "plain.yaml"
    plain.write_text(PLAIN_FILE)
    assert detect_style(repository / "apps/credit-scoring-ai/base") == "kustomize"
    assert detect_style(repository / "clusters/production/credit-scoring-ai.yaml") == "argo-application"
    assert detect_style(chart / "values-production.yaml") == "helm-values"
    assert detect_style(plain) == "deployment"
    (repository / "service.yaml").write_text(SERVICE)
    with pytest.raises(GitOpsError, match="holds no Deployment or Argo CD Application"):
        detect_style(repository / "service.yaml")
    with pytest.raises(GitOpsError, match="is a Helm chart: name its values file"):
        detect_style(chart)
    with pytest.raises(GitOpsError, match="a directory without a kustomization"):
        detect_style(repository / "clusters")


def test_a_pinned_kustomize_application_renders_what_the_pin_says(tmp_path):
    repository = _gitops_checkout(tmp_path)
    application = repository / "clusters/production/credit-scoring-ai.yaml"
    pin_argo_application(application, f"{MODEL}:1.4.2", "1.4.2", NOTE, gitops_repo_urls=(GITOPS,))
    documents = render_source(
        application, "argo-application", gitops_repo_urls=("git@git.example.com:platform/gitops",)
    )
    [deployment] = documents
    template = deployment["spec"]["template"]
    assert [c["image"] for c in template["spec"]["containers"]] == [
        f"{MODEL}:1.4.2",
        "docker.io/envoyproxy/envoy:v1.29.1",
    ]
    assert template["spec"]["initContainers"][0]["image"] == f"{MODEL}:1.4.2"
    assert template["metadata"]["labels"]["model-version"] == "1.4.2"
    assert validate_against_kubernetes_schema(documents) == []
    assert not list(repository.glob(".rai-render-*"))  # the wrapper is gone


def test_an_application_tracking_another_revision_is_not_rendered(tmp_path):
    application = _gitops_checkout(tmp_path) / "clusters/production/credit-scoring-ai.yaml"
    with pytest.raises(GitOpsError, match="tracks revision 'main', not the checkout's"):
        render_source(application, "argo-application", gitops_repo_urls=(GITOPS,), checkout_revisions=("release-1",))


def test_a_plain_file_renders_to_its_documents(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text(PLAIN_FILE)
    assert [d["kind"] for d in render_source(path, "deployment")] == ["Service", "Deployment"]


def test_helm_is_required_to_render_a_chart(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-helm-here"))
    repository = _gitops_checkout(tmp_path)
    chart = _chart(repository)
    with pytest.raises(
        GitOpsError, match=f"helm is not installed: cannot render {chart} to prove the pin; install helm 3"
    ):
        render_source(chart / "values.yaml", "helm-values")
    application = repository / "clusters/production/credit-scoring-ai.yaml"
    application.write_text(HELM_APPLICATION)
    with pytest.raises(GitOpsError, match="helm is not installed: cannot render .*charts/credit-scoring-ai"):
        render_source(application, "argo-application", gitops_repo_urls=(GITOPS,))
    application.write_text(MULTI_SOURCE_APPLICATION)
    with pytest.raises(GitOpsError, match="helm is not installed: cannot render chart credit-scoring-ai"):
        render_source(application, "argo-application", gitops_repo_urls=(GITOPS,))


def test_an_unrendered_kustomize_option_is_refused(tmp_path):
    repository = _gitops_checkout(tmp_path)
    application = repository / "clusters/production/credit-scoring-ai.yaml"
    application.write_text(
        KUSTOMIZE_APPLICATION.replace("      images:\n", "      components: [../x]\n      images:\n")
    )
    with pytest.raises(GitOpsError, match="components cannot be rendered here"):
        render_source(application, "argo-application", gitops_repo_urls=(GITOPS,))


def test_a_separator_inside_a_literal_block_is_not_a_document(tmp_path):
    path = tmp_path / "app.yaml"
    config_map = textwrap.dedent("""\
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: scorer-config
        data:
          config.yaml: |
            threshold: 0.7
            ---
            not: a document
        """)
    path.write_text(DEPLOYMENT + config_map)
    pin_plain_deployment(path, "credit-scoring-ai", f"{MODEL}:1.4.2", "1.4.2", NOTE)
    assert path.read_text().endswith(config_map)
    assert _load(path)[1]["data"]["config.yaml"] == "threshold: 0.7\n---\nnot: a document\n"
