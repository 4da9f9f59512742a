"""Where things live. Every path comes from the environment, with a local default.

As other command-line tools do, the defaults are resolved against the working directory, not the
package's own folder: `./policies`, `./models`, `./costs/onprem.yaml` and `./.rai` of the repository
a command runs in (a CI job in the GitOps repository, say). RAI_HOME is the root of the embedded
world (exports, lake, GitOps remote); production points the individual variables at S3 prefixes and
a real Git remote instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class Settings:
    home: str
    lake_root: str
    aws_cur_export_root: str
    aws_cur2_export_root: str
    onprem_usage_root: str
    onprem_declaration: str
    billing_sources: str  # a YAML file declaring more billing sources (costs/sources/__init__.py), or ""
    gitops_remote: str
    gitops_branch: str
    policy_dir: str
    policy_engine: str  # opa (OPA's own evaluator, the default) or regopy
    model_registry_dir: str
    partitions_start: str
    workdir: str
    pseudonymisation_key_file: str
    create_missing_key: bool
    # FinOps: the catalogues' endpoints ("" is the cloud's public one), the declarations (allocation
    # rules, anomaly thresholds, rightsizing), where utilisation telemetry lands, and the policy
    # repository that budget and threshold recommendations are proposed to ("" proposes none there)
    aws_pricing_endpoint: str = ""
    gcp_catalog_endpoint: str = ""
    finops_config: str = ""
    telemetry_root: str = ""
    policy_remote: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        cwd = Path.cwd()
        home = _env("RAI_HOME", str(cwd / ".rai"))
        return cls(
            home=home,
            lake_root=_env("RAI_LAKE_ROOT", str(Path(home) / "lake")),
            aws_cur_export_root=_env("RAI_AWS_CUR_EXPORT_ROOT", str(Path(home) / "exports" / "aws-cur-legacy")),
            aws_cur2_export_root=_env("RAI_AWS_CUR2_EXPORT_ROOT", str(Path(home) / "exports" / "aws-cur2")),
            onprem_usage_root=_env("RAI_ONPREM_USAGE_ROOT", str(Path(home) / "onprem-usage")),
            onprem_declaration=_env("RAI_ONPREM_COSTS", str(cwd / "costs" / "onprem.yaml")),
            billing_sources=_env("RAI_BILLING_SOURCES", ""),
            gitops_remote=_env("RAI_GITOPS_REMOTE", str(Path(home) / "gitops.git")),
            gitops_branch=_env("RAI_GITOPS_BRANCH", "main"),
            policy_dir=_env("RAI_POLICY_DIR", str(cwd / "policies")),
            policy_engine=_env("RAI_POLICY_ENGINE", "opa"),
            model_registry_dir=_env("RAI_MODEL_REGISTRY", str(cwd / "models")),
            partitions_start=_env("RAI_PARTITIONS_START", "2023-11-01"),
            workdir=_env("RAI_WORKDIR", str(Path(home) / "work")),
            pseudonymisation_key_file=_env(
                "RAI_PSEUDONYMISATION_KEY_FILE", str(Path(home) / "secrets" / "pseudonymisation.key")
            ),
            # The embedded default makes its own key; a configured key file must exist.
            create_missing_key=not os.environ.get("RAI_PSEUDONYMISATION_KEY_FILE", "").strip(),
            aws_pricing_endpoint=_env("RAI_AWS_PRICING_ENDPOINT", ""),
            gcp_catalog_endpoint=_env("RAI_GCP_CATALOG_ENDPOINT", ""),
            finops_config=_env("RAI_FINOPS_CONFIG", str(cwd / "costs" / "finops.yaml")),
            telemetry_root=_env("RAI_TELEMETRY_ROOT", str(Path(home) / "telemetry")),
            policy_remote=_env("RAI_POLICY_REMOTE", ""),
        )
