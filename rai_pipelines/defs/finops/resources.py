"""The FinOps layer's outside systems: the clouds' price catalogues, the FinOps declarations in Git,
utilisation telemetry, and the policy repository that budget and threshold recommendations are
proposed to. Each has a local implementation: a catalogue on loopback (the demo's), a YAML file, a
folder of saved Prometheus responses, a local Git remote."""

from __future__ import annotations

import dagster as dg

from rai_pipelines.costs.finops_config import FinOpsConfig, load_finops_config
from rai_pipelines.costs.serving_prices import CatalogueEndpoints, Catalogues


class CatalogueResource(dg.ConfigurableResource):
    """AWS's Price List API and GCP's Cloud Billing Catalog API ("" is the cloud's public endpoint,
    a loopback URL a local catalogue)."""

    aws_endpoint: str = ""
    gcp_endpoint: str = ""

    def catalogues(self) -> Catalogues:
        return Catalogues(CatalogueEndpoints(self.aws_endpoint or None, self.gcp_endpoint or None))


class FinOpsResource(dg.ConfigurableResource):
    """The FinOps declarations (costs/finops.yaml in Git), where utilisation telemetry lands, and
    the policy repository's remote for budget recommendations ("" proposes none there)."""

    config_file: str
    telemetry_root: str
    policy_remote: str = ""
    policy_branch: str = "main"

    def config(self) -> FinOpsConfig:
        return load_finops_config(self.config_file)
