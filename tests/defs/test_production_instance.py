"""The production instance's storage section against the PostgreSQL server on loopback."""

from __future__ import annotations

import os
import uuid

import dagster as dg
import psycopg2
import pytest
from ruamel.yaml import YAML

from rai_pipelines.settings import PROJECT_ROOT
from tests.conftest import LOOP_DAYS, make_world, settings_for

PG = os.environ.get("RAI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def database():
    name = f"rai_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    yield PG.rsplit("/", 1)[0] + "/" + name
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE {name} WITH (FORCE)")
    admin.close()


def test_materialisations_are_stored_in_postgres(database, tmp_path, specs, monkeypatch):
    config = YAML(typ="safe").load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", database)
    world = make_world(tmp_path / "world", specs, days=LOOP_DAYS[:1])
    from rai_pipelines.definitions import build_definitions

    defs = build_definitions(settings_for(world))
    with dg.instance_for_test(overrides={"storage": config["storage"]}) as instance:
        result = dg.materialize(
            [defs.resolve_assets_def("cost_ledger")], instance=instance, partition_key=LOOP_DAYS[0].isoformat()
        )
        assert result.success
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
            "AND asset_key LIKE '%cost_ledger%'"
        )
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
        assert cur.fetchone()[0] == 1
