"""Azure Cost Management's FOCUS exports where Azure delivers them.

Azure Cost Management exports (FocusCost, CSV, gzip CSV or Parquet) in an Azure Blob Storage
container, or a local folder laid out the same way:

    {directory}/{export-name}/{YYYYMMDD-YYYYMMDD}/{run}/part_*.csv[.gz] | part_*.parquet
    {directory}/{export-name}/{YYYYMMDD-YYYYMMDD}/{run}/manifest.json

`{run}` is the run id (some API versions write `{export-time}/{run-id}`); every run writes its own
manifest.json (Cost Management's "exports v2" manifest: `blobs[].blobName|byteCount|dataRowCount`,
`runInfo.runId|submittedTime|startDate|endDate`, `exportConfig.type|dataVersion`, as documented in
Microsoft Learn's "Tutorial: Improved exports experience" and FinOps hubs' data-processing notes). A
restatement writes a new run, so the current version of a billing period is the run whose manifest has
the latest runInfo.submittedTime, and only the files that manifest lists are read. Azure names the
period folder `{first day}-{last day}` of the month; `{first day}-{first day of next month}` is read too.

The reader returns `SourceFile`s whose `context` is the billing account id it was configured with;
the FOCUS export normalisation (focus_export.py) refuses any row of another account.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import SourceConfig, SourceFile, SourceKind
from rai_pipelines.costs.sources.export_files import load_manifest
from rai_pipelines.costs.sources.focus_export import (
    AZURE,
    Fingerprint,
    _month_bounds,
    _source_file,
    focus_export_days,
)
from rai_pipelines.costs.sources.focus_witness import focus_export_cost_totals, focus_export_daily_totals

# --- file contents ------------------------------------------------------------------------------------


# --- Azure --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobEntry:
    name: str  # blob name in the container (local: path relative to the root), '/'-separated
    size: int
    etag: str
    modified: float  # POSIX seconds


class _LocalBlobs:
    """A local folder laid out like the container."""

    def __init__(self, root: str):
        self.root = Path(root).resolve()

    def list(self, prefix: str) -> list[BlobEntry]:
        folder = self.root / prefix.rstrip("/") if prefix else self.root
        base = folder if prefix.endswith("/") or not prefix else folder.parent
        if not base.is_dir():
            return []
        out = []
        for path in base.rglob("*"):
            if not path.is_file():
                continue
            name = path.relative_to(self.root).as_posix()
            if name.startswith(prefix):
                stat = path.stat()
                out.append(BlobEntry(name, stat.st_size, f"{stat.st_size}-{stat.st_mtime_ns}", stat.st_mtime))
        return sorted(out, key=lambda b: b.name)

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def uri(self, name: str) -> str:
        return str(self.root / name)


class _AzureBlobs:
    """A container in Azure Blob Storage, through the azure-storage-blob SDK."""

    def __init__(self, container: str, connection_string: str | None, account_url: str | None, credential: Any):
        from azure.storage.blob import BlobServiceClient

        if connection_string:
            service = BlobServiceClient.from_connection_string(connection_string, credential=credential)
        elif account_url:
            service = BlobServiceClient(account_url, credential=credential)
        else:
            raise ValueError("an Azure export needs a connection string or an account URL")
        self.client = service.get_container_client(container)
        self.base_url = self.client.url.split("?", 1)[0].rstrip("/")  # never a SAS token in a lineage URI

    def list(self, prefix: str) -> list[BlobEntry]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            blobs = list(self.client.list_blobs(name_starts_with=prefix))
        except ResourceNotFoundError:
            return []
        return sorted(
            (
                BlobEntry(
                    b.name,
                    int(b.size or 0),
                    str(b.etag or ""),
                    b.last_modified.timestamp() if b.last_modified else 0.0,
                )
                for b in blobs
            ),
            key=lambda b: b.name,
        )

    def read(self, name: str) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.client.download_blob(name).readall()
        except ResourceNotFoundError:
            raise BadInputError(f"{self.uri(name)}: listed in the manifest but missing from the export") from None

    def uri(self, name: str) -> str:
        return f"{self.base_url}/{name}"


@dataclass(frozen=True)
class AzureRun:
    """One export run of a billing period: its manifest and the data blobs it lists."""

    manifest: BlobEntry
    run_id: str
    submitted: datetime
    blobs: list[BlobEntry]
    row_counts: dict[str, int]  # blob name -> dataRowCount, where the manifest gives one


def _submitted(manifest: dict, entry: BlobEntry, uri: str) -> datetime:
    text = (manifest.get("runInfo") or {}).get("submittedTime")
    if not text:
        return datetime.fromtimestamp(entry.modified, timezone.utc)
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise BadInputError(f"{uri}: runInfo.submittedTime {text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class AzureFocusExportReader:
    """One Azure Cost Management FOCUS export ("Cost and usage details (FOCUS)").

    Storage, one of:
      root              a local folder laid out like the container;
      container         a Blob Storage container, with connection_string (e.g. from the portal, or
                        Azurite's), or account_url ("https://<account>.blob.core.windows.net") and a
                        credential (an account key, a SAS token, or an azure.identity credential).
    """

    # Its files cover a whole billing period: what it reads for one day serves every day of the month.
    files_cover_billing_period = True

    billing_account_id: str  # the export's BillingAccountId; rows of any other account are refused
    export_name: str
    directory: str = ""  # the export's rootFolderPath in the container
    root: str | None = None
    container: str | None = None
    connection_string: str | None = field(default=None, repr=False)
    account_url: str | None = None
    credential: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.billing_account_id:
            raise ValueError("AzureFocusExportReader needs the billing account id the export belongs to")
        if (self.root is None) == (self.container is None):
            raise ValueError("give either root (a local folder) or container (Azure Blob Storage)")
        if self.root is not None:
            self.store: _LocalBlobs | _AzureBlobs = _LocalBlobs(self.root)
        else:
            self.store = _AzureBlobs(self.container, self.connection_string, self.account_url, self.credential)

    def _export_prefix(self) -> str:
        parts = [p for p in (self.directory.strip("/"), self.export_name.strip("/")) if p]
        return "/".join(parts) + "/"

    def _period_folders(self, day: date) -> list[str]:
        first, following = _month_bounds(day)
        last = following - timedelta(days=1)
        return [
            f"{self._export_prefix()}{first:%Y%m%d}-{last:%Y%m%d}/",
            f"{self._export_prefix()}{first:%Y%m%d}-{following:%Y%m%d}/",
        ]

    def runs(self, day: date) -> tuple[list[AzureRun], dict[str, BlobEntry]]:
        """Every run of the billing period of `day`, oldest first, and every blob under the period."""
        listed: dict[str, BlobEntry] = {}
        for folder in self._period_folders(day):
            for entry in self.store.list(folder):
                listed[entry.name] = entry
        runs = []
        for entry in listed.values():
            if posixpath.basename(entry.name).lower() != "manifest.json":
                continue
            uri = self.store.uri(entry.name)
            manifest = load_manifest(self.store.read(entry.name), uri)
            kind = str((manifest.get("exportConfig") or {}).get("type") or "FocusCost")
            if kind.lower() != "focuscost":
                raise BadInputError(
                    f"{uri}: exportConfig.type is {kind!r}, not FocusCost; this folder must hold a FOCUS export"
                )
            blobs = manifest.get("blobs")
            if not isinstance(blobs, list) or not blobs or not all(isinstance(b, dict) for b in blobs):
                raise BadInputError(f"{uri}: manifest has no blobs list")
            names, counts = [], {}
            for i, blob in enumerate(blobs):
                name = str(blob.get("blobName") or "").strip().lstrip("/")
                if not name or ".." in name.split("/"):
                    raise BadInputError(f"{uri}: blobs[{i}] has no usable blobName ({name!r})")
                if name in names:
                    # The same part twice would count every charge in it twice.
                    raise BadInputError(f"{uri}: blobs[{i}] lists {name} a second time")
                names.append(name)
                if isinstance(blob.get("dataRowCount"), int):
                    counts[name] = blob["dataRowCount"]
            entries = []
            for name in names:
                found = listed.get(name) or next((b for b in self.store.list(name) if b.name == name), None)
                if found is None:
                    raise BadInputError(f"{self.store.uri(name)}: listed in {uri} but missing from the export")
                entries.append(found)
            run_id = str((manifest.get("runInfo") or {}).get("runId") or posixpath.dirname(entry.name))
            runs.append(AzureRun(entry, run_id, _submitted(manifest, entry, uri), entries, counts))
        runs.sort(key=lambda r: (r.submitted, r.manifest.modified, r.manifest.name))
        return runs, listed

    def current_run(self, day: date) -> AzureRun | None:
        runs, _ = self.runs(day)
        return runs[-1] if runs else None

    def file_paths(self, day: date) -> list[str]:
        """The data files of the billing period of `day`, current run only (URIs / local paths)."""
        run = self.current_run(day)
        return [self.store.uri(b.name) for b in run.blobs] if run else []

    def fingerprint(self, day: date) -> list[Fingerprint]:
        """(path, ETag, modification time) of the current run's manifest and data files: a restatement
        (a new run) or a file rewritten in place changes it."""
        run = self.current_run(day)
        if run is None:
            return []
        return [(self.store.uri(b.name), b.etag, b.modified) for b in (run.manifest, *run.blobs)]

    def read(self, day: date) -> list[SourceFile]:
        run = self.current_run(day)
        if run is None:
            return []
        files = []
        for blob in run.blobs:
            uri = self.store.uri(blob.name)
            source = _source_file(self.store.read(blob.name), uri, "azure_focus", self.billing_account_id)
            expected = run.row_counts.get(blob.name)
            if expected is not None and expected != source.table.num_rows:
                raise BadInputError(
                    f"{uri}: {source.table.num_rows} data rows, but the manifest "
                    f"{self.store.uri(run.manifest.name)} says {expected} (a partly written or truncated file)"
                )
            files.append(source)
        return files


# --- AWS ----------------------------------------------------------------------------------------------


class AzureFocusExport(SourceConfig):
    """An Azure Cost Management export in FOCUS format, in Blob Storage or a local folder laid out like the
    container. Secrets come from the environment (`{env: AZURE_STORAGE_CONNECTION_STRING}` in YAML)."""

    billing_account_id: str  # rows of any other billing account are refused (compared ignoring case)
    export_name: str
    directory: str = ""  # the export's root folder path in the container
    root: str | None = None  # a local folder laid out like the container, or:
    container: str | None = None
    connection_string: str | None = None
    account_url: str | None = None  # https://<account>.blob.core.windows.net
    account_key: str | None = None
    sas_token: str | None = None


SOURCE = SourceKind(
    config=AzureFocusExport,
    reader=lambda c: AzureFocusExportReader(
        c.billing_account_id,
        c.export_name,
        c.directory,
        root=c.root,
        container=c.container,
        connection_string=c.connection_string,
        account_url=c.account_url,
        credential=c.account_key or c.sas_token,
    ),
    days=lambda source, days: focus_export_days(source, days, AZURE),
    daily_totals=lambda source: focus_export_daily_totals(source, AZURE),
    cost_totals=lambda source: focus_export_cost_totals(source, AZURE),
)
