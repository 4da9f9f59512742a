"""Servers the cost-source tests share: Azurite for Blob Storage, and an S3 export on moto."""

from __future__ import annotations

import random

import pytest

from tests.azurite import Azurite
from tests.costs.focus_export_data import (
    BlobContainer,
    S3Export,
)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


_containers = iter(range(10_000))


@pytest.fixture
def blob_container(azurite):
    return BlobContainer(azurite, f"billing-{next(_containers)}")


@pytest.fixture
def s3_export(s3_server):
    return S3Export(s3_server, s3_server.bucket(f"focus-billing-{random.randrange(10**9)}"))
