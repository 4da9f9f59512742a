"""The GitOps tests' shared fixtures: a fresh demo GitOps repository per test, served by the git
daemon, and the shipped policy bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from rai_pipelines.demo.world import write_gitops_repo
from rai_pipelines.governance.bundle import PolicyBundle
from rai_pipelines.settings import PROJECT_ROOT


@pytest.fixture
def remote(git_daemon, specs, request) -> Path:
    path = git_daemon.base / f"{request.node.name}.git"
    write_gitops_repo(path, list(specs.values()))
    return path


@pytest.fixture(scope="module")
def bundle():
    return PolicyBundle.load(PROJECT_ROOT / "policies")
