"""The table of billing source kinds: every source module is in it, and the billing resource
declares a source as a kind and fields that must fit that kind's config."""

import importlib
import pkgutil

import pydantic
import pytest

from rai_pipelines.costs import sources
from rai_pipelines.costs.sources import SOURCE_KINDS, kind_of
from rai_pipelines.costs.sources.aws_cur import AwsCurExport, CurExportReader
from rai_pipelines.costs.sources.azure_focus import AzureFocusExport
from rai_pipelines.defs.costs.resources import BillingExportsResource, BillingSource


def test_every_source_module_is_one_entry_of_the_table():
    defined = {}
    for module in pkgutil.iter_modules(sources.__path__):
        loaded = importlib.import_module(f"{sources.__name__}.{module.name}")
        if hasattr(loaded, "SOURCE"):
            defined[module.name] = loaded.SOURCE
    assert defined == SOURCE_KINDS
    assert {kind: kind_of(entry.config.model_construct()) for kind, entry in SOURCE_KINDS.items()} == {
        kind: kind for kind in SOURCE_KINDS
    }


def test_the_resource_builds_each_source_reader_from_its_declaration(tmp_path):
    resource = BillingExportsResource.of(
        [
            AwsCurExport(root=str(tmp_path), layout="cur2", billing_account_id="123456789012"),
            AzureFocusExport(billing_account_id="acct", export_name="focus", root=str(tmp_path)),
        ]
    )
    assert [s.kind for s in resource.sources] == ["aws_cur", "azure_focus"]
    # a field left empty (None) is not carried in Dagster's config and comes back as its default
    assert "container" not in resource.sources[1].fields
    cur, azure = resource.readers()
    assert isinstance(cur, CurExportReader)
    assert (cur.layout, cur.billing_account_id, cur.prefix) == ("cur2", "123456789012", "cur")
    assert (azure.export_name, azure.container, azure.root) == ("focus", None, str(tmp_path))


@pytest.mark.parametrize(
    "kind, fields, message",
    [
        ("oracle_cloud", {}, r"unknown source kind 'oracle_cloud'"),
        ("aws_cur", {"root": "/x"}, r"billing source aws_cur: missing field\(s\) layout"),
        ("aws_cur", {"root": "/x", "layout": "cur2", "bucket": "y"}, r"unknown field\(s\) bucket"),
        ("gcp_bigquery", {"project": "p", "dataset": "d", "billing_account_id": "a", "detailed": "maybe"}, "detailed"),
    ],
)
def test_a_source_whose_fields_do_not_fit_its_kind_is_refused_naming_them(kind, fields, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        BillingSource(kind=kind, fields=fields)


def _gzip_stream(chunk: bytes, times: int) -> bytes:
    """A gzip file of `chunk` repeated, made without holding the inflated content."""
    import zlib

    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflater.compress(chunk) for _ in range(times)]
    return b"".join(parts) + deflater.flush()


@pytest.mark.parametrize("reader", ["legacy CUR", "FOCUS"])
def test_a_gzip_bomb_is_refused_while_it_is_inflated(reader):
    """Hardening issue, case 8: a 4 MB .csv.gz inflated to 2.6 GB. An export inflates only within
    bounds (its own size times 200 past the first 64 MB, and RAI_MAX_EXPORT_FILE_MB)."""
    from rai_pipelines.core.errors import BadInputError
    from rai_pipelines.costs.sources.aws_cur import read_cur_csv
    from rai_pipelines.costs.sources.focus_export import read_focus_csv

    bomb = _gzip_stream(b"0" * (1 << 20), 400)  # 400 MB of one byte, in well under 1 MB
    assert len(bomb) < 1_000_000
    read = read_cur_csv if reader == "legacy CUR" else read_focus_csv
    with pytest.raises(BadInputError, match=r"export\.csv\.gz: inflates to more than .* refused as a gzip bomb"):
        read(bomb, "s3://bucket/export.csv.gz")


def test_bounded_inflation_reads_what_gzip_reads():
    import gzip

    from rai_pipelines.core.errors import BadInputError
    from rai_pipelines.costs.sources.export_files import gunzip_bounded

    text = b"InvoiceId,BilledCost\n" + b"".join(b"INV-%d,%d.25\n" % (i, i) for i in range(50_000))
    two_members = gzip.compress(text[:1000]) + gzip.compress(text[1000:])
    assert gunzip_bounded(two_members, "x.gz") == gzip.decompress(two_members) == text
    with pytest.raises(BadInputError, match="not a readable gzip file"):
        gunzip_bounded(two_members[:-30], "x.gz")
