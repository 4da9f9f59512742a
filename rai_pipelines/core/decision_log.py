"""An append-only, hash-chained log of policy decisions.

Each record carries the digest of the one before it, so editing or deleting a past record breaks
the chain at that point. The record follows OPA's decision-log fields where they apply
(decision_id, path, input, result, bundles with their revision, timestamp, metrics, labels) plus
the governance context, so tools that read OPA decision logs can read these.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

GENESIS = "sha256:" + "0" * 64


def canonical_json(document) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def digest(document) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(document)).hexdigest()


def decision_id(bundle_digest: str, query: str, input_digest: str, facts_digest: str, subject: str = "") -> str:
    """Deterministic: the same policy, query, input and facts always give the same id. `subject`
    names what was decided about (a deployment's overlay): two environments rendering the same
    Deployment are two decisions."""
    key = f"{bundle_digest}|{query}|{input_digest}|{facts_digest}" + (f"|{subject}" if subject else "")
    h = hashlib.sha256(key.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _drop_torn_tail(f, path: Path) -> None:
    """A crash or a full disk mid-write can leave an unterminated last line. It is moved aside to
    `<log>.torn` (kept, never silently lost) so that appending and verifying can go on."""
    f.seek(0, os.SEEK_END)
    end = f.tell()
    if end == 0:
        return
    f.seek(end - 1)
    if f.read(1) == b"\n":
        return
    position = end
    while position > 0:
        step = min(4096, position)
        position -= step
        f.seek(position)
        chunk = f.read(step)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            cut = position + newline + 1
            break
    else:
        cut = 0
    f.seek(cut)
    torn = f.read()
    with open(path.with_suffix(".torn"), "ab") as aside:
        aside.write(torn + b"\n")
    f.truncate(cut)


def _last_record(f) -> dict | None:
    """The last complete record, reading the file backwards from its end."""
    f.seek(0, os.SEEK_END)
    end = f.tell()
    if end == 0:
        return None
    block, data = 4096, b""
    position = end
    while position > 0:
        step = min(block, position)
        position -= step
        f.seek(position)
        data = f.read(step) + data
        lines = [line for line in data.split(b"\n") if line.strip()]
        if len(lines) >= 2 or position == 0:
            return json.loads(lines[-1])
    return None


def _count_records(f) -> int:
    f.seek(0)
    return sum(1 for line in f if line.strip())


class DecisionLog:
    """JSON lines under `directory`, appended under an exclusive lock and fsynced."""

    def __init__(self, directory: str | Path):
        if "://" in str(directory):
            raise NotImplementedError(
                "the decision log is kept on the local file system for now; an object-store log needs "
                "conditional writes and is part of the policy-as-code work"
            )
        self.path = Path(directory) / "decisions.jsonl"

    def append(self, record: dict) -> dict:
        return self.append_many([record])[0]

    def append_many(self, records: list[dict]) -> list[dict]:
        """Append records in order under one lock and one fsync; each carries the previous digest."""
        if not records:
            return []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                _drop_torn_tail(f, self.path)
                last = _last_record(f)
                previous = last["digest"] if last else GENESIS
                # Each record's place in the log, inside the chain: with the head (sequence and digest)
                # anchored outside the file, deleting the last records is detected too. A log written
                # before records were numbered is counted once.
                sequence = 0 if last is None else last.get("sequence") or _count_records(f)
                now = datetime.now(timezone.utc).isoformat()
                entries, lines = [], []
                for record in records:
                    entry = {k: v for k, v in record.items() if k not in ("digest", "sequence")}
                    entry.setdefault("timestamp", now)
                    sequence += 1
                    entry["sequence"] = sequence
                    entry["previous_digest"] = previous
                    entry["digest"] = previous = digest(entry)
                    entries.append(entry)
                    lines.append(json.dumps(entry, sort_keys=True, default=str) + "\n")
                f.seek(0, os.SEEK_END)
                f.write("".join(lines).encode())
                f.flush()
                os.fsync(f.fileno())
                return entries
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def records(self) -> list[dict]:
        """Every complete record (an unterminated last line, from a crash mid-write, is left out)."""
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as f:
            text = f.read()
        lines = text.split("\n")
        if not text.endswith("\n"):
            lines = lines[:-1]
        return [json.loads(line) for line in lines if line.strip()]

    def head(self) -> tuple[int, str] | None:
        """(sequence, digest) of the last record: the anchor to keep outside the file."""
        if not self.path.exists():
            return None
        with open(self.path, "rb") as f:
            last = _last_record(f)
            if last is None:
                return None
            return int(last.get("sequence") or _count_records(f)), last["digest"]

    def verify(self) -> int | None:
        """The 1-based line number of the first line that breaks the chain (edited, removed, inserted
        or unreadable: not UTF-8, not JSON, not an object), or None if intact."""
        previous = GENESIS
        if not self.path.exists():
            return None
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    return number
                if not isinstance(record, dict):
                    return number
                body = {k: v for k, v in record.items() if k != "digest"}
                if record.get("previous_digest") != previous or digest(body) != record.get("digest"):
                    return number
                previous = record["digest"]
        return None

    def problems(self, anchor: tuple[int, str] | None = None) -> list[str]:
        """Everything that says the log is not as it was written: a broken chain, a torn last line
        set aside, and, against an anchor kept outside the file (sequence and digest of the last
        record, as the Dagster event log holds it), records deleted from the end or rewritten."""
        found = []
        broken = self.verify()
        if broken is not None:
            found.append(
                f"line {broken} breaks the hash chain (record edited, removed, inserted or unreadable there); "
                f"the {broken - 1} line(s) before it verify"
            )
        torn = self.path.with_suffix(".torn")
        if torn.exists() and torn.stat().st_size:
            found.append(f"a torn record was set aside in {torn}: a write was cut off (or the file was cut)")
        if anchor is not None:
            sequence, anchored = anchor
            records = {int(r.get("sequence") or i): r for i, r in enumerate(self._readable(), start=1)}
            last = max(records, default=0)
            if last < sequence:
                found.append(
                    f"truncated: the log ends at record {last}, but record {sequence} ({anchored}) was written "
                    "(the anchor outside the file)"
                )
            elif records[sequence].get("digest") != anchored:
                found.append(f"record {sequence} is not the one anchored outside the file ({anchored})")
        return found

    def _readable(self) -> list[dict]:
        out = []
        with open(self.path, "rb") as f:
            for raw in f:
                try:
                    record = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    continue
                if isinstance(record, dict):
                    out.append(record)
        return out
