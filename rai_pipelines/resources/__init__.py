"""Dagster resources: one per outside system, each with a local implementation (DESIGN.md)."""

from rai_pipelines.resources.billing import AwsCurExport, BillingExportsResource, OnPremUsage
from rai_pipelines.resources.gitops import GitOpsResource
from rai_pipelines.resources.lake import LakeResource
from rai_pipelines.resources.policy import PolicyResource
from rai_pipelines.resources.registry import ModelRegistryResource

__all__ = [
    "AwsCurExport",
    "BillingExportsResource",
    "GitOpsResource",
    "LakeResource",
    "ModelRegistryResource",
    "OnPremUsage",
    "PolicyResource",
]
