"""The lake's atomic partitions, the hash-chained decision log and the model registry's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from rai_pipelines.core.decision_log import DecisionLog
from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.lake import Lake
from rai_pipelines.core.registry import load_model_spec, load_registry
from rai_pipelines.settings import PROJECT_ROOT


def test_rewriting_a_partition_replaces_it(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_table("cost_ledger", {"date": "2023-11-01"}, pa.table({"x": [1, 2, 3]}))
    lake.write_table("cost_ledger", {"date": "2023-11-01"}, pa.table({"x": [4]}))
    lake.write_table("cost_ledger", {"date": "2023-11-02"}, pa.table({"x": [5]}))
    assert lake.read_dataset("cost_ledger").to_pydict() == {"x": [4, 5], "date": ["2023-11-01", "2023-11-02"]}
    assert [p.name for p in (tmp_path / "cost_ledger" / "date=2023-11-01").iterdir()] == ["data.parquet"]


def test_a_failed_write_leaves_the_previous_partition(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_table("d", {"date": "2023-11-01"}, pa.table({"x": [1]}))

    class Boom(Exception):
        pass

    def failing(out):
        out.write(b"PAR1 half a file")
        raise Boom()

    with pytest.raises(Boom):
        lake._atomic_write(lake.path("d", {"date": "2023-11-01"}), failing)
    assert lake.read_table("d", {"date": "2023-11-01"}).to_pydict() == {"x": [1]}
    assert [p.name for p in (tmp_path / "d" / "date=2023-11-01").iterdir()] == ["data.parquet"]


def _staged_write(lake: Lake, values: list[int], fail: bool = False) -> None:
    import pyarrow.parquet as pq

    class Boom(Exception):
        pass

    try:
        with lake.staged("cost_ledger", {"date": "2023-11-01"}) as staged:
            with pq.ParquetWriter(staged.path, pa.schema([("x", pa.int64())])) as writer:
                for value in values:  # batch by batch, as the ledger is written
                    writer.write_table(pa.table({"x": [value]}))
            # Written in full, not yet published: readers still see the old partition.
            assert lake.read_table("cost_ledger", {"date": "2023-11-01"}).to_pydict() == {"x": [1]}
            assert lake.list_partitions("cost_ledger") == [{"date": "2023-11-01"}]
            if fail:
                raise Boom()
            staged.publish()
    except Boom:
        pass


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_staged_partition_is_seen_only_once_published(tmp_path, where, request):
    if where == "s3":
        server = request.getfixturevalue("s3_server")
        lake = Lake(server.lake_uri(server.bucket("staged-lake"), "lake"))
    else:
        lake = Lake(str(tmp_path))
    lake.write_table("cost_ledger", {"date": "2023-11-01"}, pa.table({"x": [1]}))
    _staged_write(lake, [7, 8, 9], fail=True)  # a failure after writing: nothing published
    assert lake.read_table("cost_ledger", {"date": "2023-11-01"}).to_pydict() == {"x": [1]}
    _staged_write(lake, [7, 8, 9])
    assert lake.read_table("cost_ledger", {"date": "2023-11-01"}).to_pydict() == {"x": [7, 8, 9]}
    assert sum(b.num_rows for b in lake.iter_batches("cost_ledger", {"date": "2023-11-01"})) == 3
    import pyarrow.fs as pafs

    folder = lake.path("cost_ledger", {"date": "2023-11-01"}).rsplit("/", 1)[0]
    left = [i.base_name for i in lake.fs.get_file_info(pafs.FileSelector(folder))]
    assert left == ["data.parquet"]  # no staged or temporary file left behind


@pytest.mark.parametrize("value", ["..", "a/b", ""])
def test_partition_values_cannot_escape_the_dataset(tmp_path, value):
    with pytest.raises(ValueError, match="invalid partition value"):
        Lake(str(tmp_path)).write_table("d", {"model": value}, pa.table({"x": [1]}))


def test_decision_log_chain_detects_the_first_tampered_record(tmp_path):
    log = DecisionLog(tmp_path)
    for i in range(5):
        log.append({"decision_id": f"d-{i}", "result": {"deny": ["x"] if i % 2 else []}})
    assert log.verify() is None
    lines = log.path.read_text().splitlines()
    record = json.loads(lines[1])
    assert record["result"]["deny"] == ["x"]
    record["result"]["deny"] = []  # someone hides a violation
    lines[1] = json.dumps(record, sort_keys=True)
    log.path.write_text("\n".join(lines) + "\n")
    assert log.verify() == 2
    original = DecisionLog(tmp_path / "copy")
    for i in range(5):
        original.append({"decision_id": f"d-{i}", "result": {"deny": []}})
    kept = original.path.read_text().splitlines()
    original.path.write_text("\n".join(kept[:2] + kept[3:]) + "\n")  # or deletes one
    assert original.verify() == 3


def test_registry_loads_the_shipped_models():
    specs = load_registry(PROJECT_ROOT / "models")
    assert set(specs) == {"credit-scoring-ai", "employment-screening-ai"}
    assert specs["employment-screening-ai"].enforced_protected_attributes == ("SEX",)
    gpu = specs["credit-scoring-ai"].version("2.0.0").serving
    assert (gpu.provider, gpu.region, gpu.instance_type, gpu.replicas) == ("aws", "eu-west-1", "g5.2xlarge", 1)


@pytest.mark.parametrize(
    "mutation,message",
    [
        (lambda t: t.replace('"2.0.0":', '"2.0/0":'), "not a valid model version"),
        (lambda t: t.replace("name: credit-scoring-ai", "name: Credit Scoring"), "not a valid model name"),
        (lambda t: t.replace("score_column: y_pred_proba\n", ""), "score_column: Field required"),
        (lambda t: t + "\n  : [\n", "not valid YAML"),
        # hardening issue, case 6: the privacy settings cannot be bypassed by a type, a typo or a name
        (
            lambda t: t.replace("pii_columns: [applicant_name, applicant_email]", "pii_columns: ssn"),
            "pii_columns: Input should be a valid list",
        ),
        (lambda t: t.replace("pii_columns:", "pii_colums:"), "pii_colums: Extra inputs are not permitted"),
        (
            lambda t: t.replace("numeric: [car_value,", "numeric: [request_id, car_value,"),
            "features request_id: reserved for the snapshot's own columns",
        ),
        (lambda t: t.replace("protected_attributes: {}", "protected_attributes: {label: report}"), "reserved"),
        # case 9: costs, replicas and thresholds that cannot be
        # the price comes from the catalogue: a hand-typed one is an unknown key, not a silent override
        (lambda t: t.replace("replicas: 2,", "replicas: 2, usd_per_hour: 0.096,"), r"usd_per_hour: Extra inputs"),
        (
            lambda t: t.replace("provider: aws", "provider: azure", 1),
            r"serving\.provider: Input should be 'aws' or 'gcp'",
        ),
        (lambda t: t.replace("region: eu-west-1", "region: ../etc", 1), r"serving\.region: String should match"),
        (lambda t: t.replace("instance_type: m5.large", "instance_type: m5.large, gpus: 1", 1), "carries its GPUs"),
        (lambda t: t.replace("expected_inferences_per_day: 4000", "expected_inferences_per_day: 0", 1), "greater"),
        (lambda t: t.replace("replicas: 2,", "replicas: 0,"), r"serving\.replicas: Input should be greater"),
        (
            lambda t: t.replace("decision_threshold: 0.5", "decision_threshold: -0.5", 1),
            r"decision_threshold: Input should be greater",
        ),
        (lambda t: t.replace("replicas: 2,", "replicas: '2',"), r"replicas: Input should be a valid integer"),
        # case 11: a list where a mapping belongs is named, not an AttributeError
        (
            lambda t: t.replace("  numeric: [car_value", "  - [car_value").replace("  categorical: [", "  - ["),
            "features: Input should be a valid dictionary",
        ),
        (lambda t: t.split("versions:")[0] + "versions:\n  - 1.4.2\n", "versions: Input should be a valid dictionary"),
    ],
)
def test_registry_refuses_bad_declarations_naming_the_file(tmp_path, mutation, message):
    source = (PROJECT_ROOT / "models" / "credit-scoring-ai.yaml").read_text()
    path = tmp_path / "model.yaml"
    path.write_text(mutation(source))
    with pytest.raises(BadInputError, match=message) as err:
        load_model_spec(path)
    assert str(path) in str(err.value)


def test_the_pseudonymisation_key_is_created_only_on_the_embedded_default(tmp_path):
    from rai_pipelines.defs.resources import LakeResource

    production = LakeResource(
        root=str(tmp_path),
        decision_log_dir=str(tmp_path / "log"),
        pseudonymisation_key_file=str(tmp_path / "mounted" / "key"),
    )
    with pytest.raises(FileNotFoundError, match="mount the secret"):
        production.pseudonymisation_key()
    embedded = LakeResource(
        root=str(tmp_path),
        decision_log_dir=str(tmp_path / "log"),
        pseudonymisation_key_file=str(tmp_path / "secrets" / "key"),
        create_missing_key=True,
    )
    key = embedded.pseudonymisation_key()
    assert len(key) == 64 and embedded.pseudonymisation_key() == key
    assert (tmp_path / "secrets" / "key").stat().st_mode & 0o777 == 0o600


def test_a_mounted_key_must_be_between_32_and_4096_bytes_and_is_never_read_whole(tmp_path):
    from rai_pipelines.defs.resources import LakeResource

    path = tmp_path / "mounted" / "key"
    path.parent.mkdir()
    resource = LakeResource(
        root=str(tmp_path), decision_log_dir=str(tmp_path / "log"), pseudonymisation_key_file=str(path)
    )
    path.write_bytes(b"k" * 31 + b"\n")
    with pytest.raises(ValueError, match="shorter than 32 bytes"):
        resource.pseudonymisation_key()
    path.write_bytes(b"k" * 4096 + b"\n")
    assert resource.pseudonymisation_key() == b"k" * 4096
    # a wrong mount (a disk image, a log) is refused after reading 4 KiB of it, not loaded
    with open(path, "wb") as f:
        f.truncate(8 * 2**30)
    with pytest.raises(ValueError, match="longer than 4,096 bytes"):
        resource.pseudonymisation_key()


def test_a_torn_last_line_is_set_aside_and_the_log_goes_on(tmp_path):
    log = DecisionLog(tmp_path)
    log.append({"decision_id": "d-1"})
    with open(log.path, "a") as f:
        f.write('{"decision_id": "d-2", "dig')  # a crash mid-write
    assert [r["decision_id"] for r in log.records()] == ["d-1"]
    log.append({"decision_id": "d-3"})
    assert [r["decision_id"] for r in log.records()] == ["d-1", "d-3"]
    assert log.verify() is None
    assert '"decision_id": "d-2"' in (tmp_path / "decisions.torn").read_text()


def test_an_unreadable_line_is_named_by_verify(tmp_path):
    log = DecisionLog(tmp_path)
    log.append_many([{"decision_id": "a"}, {"decision_id": "b"}])
    lines = log.path.read_text().splitlines()
    log.path.write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    assert log.verify() == 2


def test_a_log_written_before_the_opa_engine_still_verifies_and_grows(tmp_path):
    """The decision log of the demo as regopy wrote it (before the OPA engine and its decision-log
    fields): `audit verify` proves it intact, records of the new shape chain onto it, and an edit
    of an old record is still found."""
    from rai_pipelines.cli import main

    old = Path(__file__).parent / "data" / "decision_log_written_by_regopy.jsonl"
    (tmp_path / "decisions.jsonl").write_bytes(old.read_bytes())
    log = DecisionLog(tmp_path)
    assert log.verify() is None and len(log.records()) == 4
    assert "metrics" not in log.records()[0]
    log.append(
        {"decision_id": "x", "path": "apexlogic/ai_governance/decision", "metrics": {"timer_rego_query_eval_ns": 1}}
    )
    assert log.verify() is None and main(["audit", "verify", "--log", str(tmp_path)]) == 0
    lines = (tmp_path / "decisions.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"rollback_requested"', '"none"', 1)
    (tmp_path / "decisions.jsonl").write_text("\n".join(lines) + "\n")
    assert log.verify() == 2 and main(["audit", "verify", "--log", str(tmp_path)]) == 1


def test_registry_yaml_is_bounded_before_it_is_expanded(tmp_path):
    from rai_pipelines.core.yamlfile import MAX_YAML_DEPTH, read_yaml_mapping
    from tests.conftest import alias_bomb

    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    with pytest.raises(BadInputError, match=r"bomb\.yaml: YAML that expands to more than"):
        load_model_spec(tmp_path / "bomb.yaml")
    (tmp_path / "deep.yaml").write_text("a: " + "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1) + "\n")
    with pytest.raises(BadInputError, match=r"deep\.yaml: YAML nested deeper than"):
        read_yaml_mapping(tmp_path / "deep.yaml")


def test_deleting_the_last_records_is_detected_against_the_anchor(tmp_path):
    """Hardening issue, case 5: the chain alone cannot show that its last records were deleted; the
    head (sequence and digest), kept outside the file, does."""
    from rai_pipelines.cli import main

    log = DecisionLog(tmp_path)
    for i in range(5):
        log.append({"decision_id": f"d-{i}"})
    anchor = log.head()
    assert anchor[0] == 5 and [r["sequence"] for r in log.records()] == [1, 2, 3, 4, 5]
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join(lines[:3]) + "\n")  # the last two records deleted
    assert log.verify() is None  # what is left still chains
    (problem,) = log.problems(anchor)
    assert "truncated: the log ends at record 3, but record 5" in problem
    assert main(["audit", "verify", "--log", str(tmp_path), "--anchor", f"{anchor[0]}:{anchor[1]}"]) == 1
    assert main(["audit", "verify", "--log", str(tmp_path)]) == 0  # without the anchor it cannot know
    log.path.write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify", "--log", str(tmp_path), "--anchor", f"{anchor[0]}:{anchor[1]}"]) == 0


def test_the_anchor_is_read_from_the_dagster_event_log():
    import dagster as dg

    from rai_pipelines.defs.governance.audit import decision_log_anchor
    from rai_pipelines.defs.keys import GOVERNANCE_DECISIONS

    with dg.instance_for_test() as instance:
        assert decision_log_anchor(instance) is None
        for sequence in (1, 2):
            instance.report_runless_asset_event(
                dg.AssetObservation(
                    GOVERNANCE_DECISIONS, metadata={"sequence": sequence, "record_digest": f"sha256:{sequence}"}
                )
            )
        assert decision_log_anchor(instance) == (2, "sha256:2")


def test_a_torn_record_is_reported_by_audit_verify(tmp_path, capsys):
    from rai_pipelines.cli import main

    log = DecisionLog(tmp_path)
    log.append({"decision_id": "d-1"})
    with open(log.path, "a") as f:
        f.write('{"decision_id": "d-2", "cut')
    log.append({"decision_id": "d-3"})  # sets the torn line aside
    assert main(["audit", "verify", "--log", str(tmp_path)]) == 1
    assert "a torn record was set aside" in capsys.readouterr().out


@pytest.mark.parametrize("line", [b"not json at all", b"[1, 2]", b'{"decision_id": "\xff\xfe"}'])
def test_audit_verify_names_an_unreadable_line(tmp_path, capsys, line):
    """Hardening issue, case 10: a line that is not JSON, not an object or not UTF-8 crashed
    `audit verify` with a traceback."""
    from rai_pipelines.cli import main

    log = DecisionLog(tmp_path)
    log.append({"decision_id": "d-1"})
    with open(log.path, "ab") as f:
        f.write(line + b"\n")
    log_text_before = log.path.read_bytes()
    assert log.verify() == 2
    assert main(["audit", "verify", "--log", str(tmp_path)]) == 1
    assert "line 2 breaks the hash chain" in capsys.readouterr().out
    assert log.path.read_bytes() == log_text_before
