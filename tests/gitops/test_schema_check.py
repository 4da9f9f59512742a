"""The Kubernetes schema check of what a pin will commit, against the schemas kubernetes-validate ships."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from rai_pipelines.core.errors import GitOpsError
from rai_pipelines.gitops.schema_check import shipped_versions, validate_against_kubernetes_schema

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "credit-scoring-ai", "namespace": "credit-risk", "labels": {"app": "credit-scoring-ai"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "credit-scoring-ai"}},
        "template": {
            "metadata": {"labels": {"app": "credit-scoring-ai", "model-version": "1.4.2"}},
            "spec": {
                "nodeSelector": {"node.kubernetes.io/instance-type": "m5.large"},
                "containers": [
                    {
                        "name": "scorer",
                        "image": "registry.example.com/credit-risk/credit-scoring-ai:1.4.2",
                        "ports": [{"containerPort": 8080}],
                        "resources": {"limits": {"cpu": "2", "memory": "4Gi"}, "requests": {"cpu": 1}},
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                    },
                    {"name": "envoy", "image": "docker.io/envoyproxy/envoy:v1.29.1"},
                ],
            },
        },
    },
}
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "credit-scoring-ai"},
    "spec": {"selector": {"app": "credit-scoring-ai"}, "ports": [{"port": 80, "targetPort": 8080}]},
}
APPLICATION = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "credit-scoring-ai"},
    "spec": {"anything": "goes"},
}
IMAGE_POLICY = {
    "apiVersion": "image.toolkit.fluxcd.io/v1beta2",
    "kind": "ImagePolicy",
    "metadata": {"name": "credit-scoring-ai"},
}


def _deployment(**changes) -> dict:
    deployment = copy.deepcopy(DEPLOYMENT)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = deployment
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is None:
            del node[int(last) if last.isdigit() else last]
        else:
            node[last] = value
    return deployment


def test_a_valid_render_passes():
    assert validate_against_kubernetes_schema([SERVICE, DEPLOYMENT]) == []


def test_replicas_that_are_not_a_number_are_refused():
    with pytest.raises(GitOpsError) as caught:
        validate_against_kubernetes_schema([SERVICE, _deployment(spec__replicas="three")])
    assert "Deployment/credit-scoring-ai: spec.replicas: 'three' is not of type 'integer'" in str(caught.value)
    assert "1 problem(s)" in str(caught.value)


def test_an_unknown_field_is_refused_in_strict_mode_only():
    deployment = _deployment(spec__template__spec__containers__0__imagePullPolice="Always")
    with pytest.raises(GitOpsError) as caught:
        validate_against_kubernetes_schema([deployment])
    assert "spec.template.spec.containers[0].imagePullPolice: unknown field" in str(caught.value)
    assert validate_against_kubernetes_schema([deployment], strict=False) == []


def test_a_container_without_an_image_is_refused():
    with pytest.raises(GitOpsError, match=r"spec\.template\.spec\.containers\[1\]\.image: a container needs an image"):
        validate_against_kubernetes_schema([_deployment(spec__template__spec__containers__1__image=None)])


def test_every_problem_is_listed():
    deployment = _deployment(
        spec__replicas="three",
        spec__strategy={"type": "Rolling", "rollingUpdate": {"maxSurge": {"percent": 25}}},
        spec__template__spec__containers__0__ports=[{"containerPort": "8080"}],
        spec__template__metadata__labels={"app": "credit-scoring-ai", "model-version": "1.4.2 hotfix"},
    )
    service = copy.deepcopy(SERVICE)
    service["spec"]["selector"] = ["app"]
    with pytest.raises(GitOpsError) as caught:
        validate_against_kubernetes_schema([deployment, service])
    message = str(caught.value)
    assert "Deployment/credit-scoring-ai: spec.replicas:" in message
    assert "Deployment/credit-scoring-ai: spec.strategy.rollingUpdate.maxSurge:" in message
    assert "Deployment/credit-scoring-ai: spec.template.spec.containers[0].ports[0].containerPort:" in message
    assert "spec.template.metadata.labels[\"model-version\"]: '1.4.2 hotfix' is not a label value" in message
    assert 'spec.selector.matchLabels["app"]' not in message
    assert "Service/credit-scoring-ai: spec.selector: ['app'] is not of type 'object'" in message


def test_a_selector_that_misses_its_template_is_refused():
    deployment = _deployment(spec__selector={"matchLabels": {"app": "credit-scoring-ai", "model-version": "2.0.0"}})
    with pytest.raises(GitOpsError, match="selects '2.0.0' but the pod template is labelled '1.4.2'"):
        validate_against_kubernetes_schema([deployment])


def test_custom_resources_are_listed_as_not_checked_unless_required():
    documents = [APPLICATION, IMAGE_POLICY, DEPLOYMENT]
    assert validate_against_kubernetes_schema(documents) == [
        "Application (argoproj.io/v1alpha1)",
        "ImagePolicy (image.toolkit.fluxcd.io/v1beta2)",
    ]
    with pytest.raises(GitOpsError, match=r"Application \(argoproj.io/v1alpha1\): no schema for this kind"):
        validate_against_kubernetes_schema(documents, require_known=True)


def test_a_custom_group_named_like_a_builtin_one_is_not_judged_by_its_schema():
    lookalike = dict(_deployment(spec__replicas="three"), apiVersion="apps.example.com/v1")
    assert validate_against_kubernetes_schema([lookalike]) == ["Deployment (apps.example.com/v1)"]


def test_the_findings_agree_with_kubernetes_validate():
    deployment = _deployment(spec__replicas="three")
    with pytest.raises(kubernetes_validate.ValidationError) as theirs:
        kubernetes_validate.validate(deployment, "1.31.0", strict=True)
    with pytest.raises(GitOpsError) as ours:
        validate_against_kubernetes_schema([deployment], "1.31.0")
    assert ".".join(map(str, theirs.value.path)) + ": 'three' is not of type 'integer'" in str(ours.value)


def test_a_version_without_schemas_is_refused():
    newest = shipped_versions()[-1]
    with pytest.raises(GitOpsError, match="ships no schemas for Kubernetes 1.99"):
        validate_against_kubernetes_schema([DEPLOYMENT], "1.99.0")
    assert validate_against_kubernetes_schema([DEPLOYMENT], f"v{newest[0]}.{newest[1]}") == []


def test_a_yaml_date_is_checked_as_the_string_kubectl_sends():
    import datetime

    deployment = _deployment(metadata__annotations={"deployed-on": datetime.date(2023, 11, 6)})
    assert validate_against_kubernetes_schema([deployment]) == []
