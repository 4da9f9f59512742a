"""The FinOps declarations in Git: the shipped file is valid, a missing file means the defaults (and
says so), and a typo or a mistyped value is refused naming the file and the field."""

from __future__ import annotations

import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.finops_config import load_finops_config
from rai_pipelines.settings import PROJECT_ROOT


def test_the_shipped_declarations_load():
    config = load_finops_config(PROJECT_ROOT / "costs" / "finops.yaml")
    assert [pool.name for pool in config.allocation.shared_pools] == ["ml-production-cluster"]
    assert config.allocation.shared_pools[0].split == "inferences"
    assert config.anomalies.min_history_days == 3 and config.anomalies.min_impact_absolute == 25.0
    assert {s.name for s in config.rightsizing.instance_types["employment-screening-ai"]} >= {"c5.xlarge", "t3.medium"}


def test_no_file_means_the_defaults_and_says_so(tmp_path):
    config = load_finops_config(tmp_path / "finops.yaml")
    assert config.source == f"defaults (no {tmp_path / 'finops.yaml'})"
    assert config.allocation.shared_pools == [] and config.rightsizing.instance_types == {}


@pytest.mark.parametrize(
    "text,message",
    [
        ("anomalies: {min_impact_absolut: 25}\n", "anomalies.*min_impact_absolut"),
        ("prices: {max_age_days: '7'}\n", r"prices\.max_age_days"),
        ("rightsizing: {overlay: ../../etc}\n", r"rightsizing\.overlay"),
        ("rightsizing: {policy_bundle_path: /abs}\n", r"rightsizing\.policy_bundle_path"),
        ("rightsizing: {instance_types: {BAD_NAME: [{name: m5.large, vcpu: 2, memory_gib: 8}]}}\n", "BAD_NAME"),
        ("telemetry: {format: csv}\n", r"telemetry\.format"),
        ("allocation: {shared_pools: [{name: p, match: {x_Workload: w}, split: memory}]}\n", "split"),
        ("source: me\n", "unknown key source"),
        ("budgets: {}\n", "budgets"),
    ],
)
def test_bad_declarations_are_refused_naming_the_field(tmp_path, text, message):
    path = tmp_path / "finops.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message) as refused:
        load_finops_config(path)
    assert str(path) in str(refused.value)
