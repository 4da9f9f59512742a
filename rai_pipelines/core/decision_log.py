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


def decision_id(bundle_digest: str, query: str, input_digest: str, facts_digest: str) -> str:
    """Deterministic: the same policy, query, input and facts always give the same id."""
    h = hashlib.sha256(f"{bundle_digest}|{query}|{input_digest}|{facts_digest}".encode()).hexdigest()
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


def _last_digest(f) -> str:
    """The digest of the last record, reading the file backwards from its end."""
    f.seek(0, os.SEEK_END)
    end = f.tell()
    if end == 0:
        return GENESIS
    block, data = 4096, b""
    position = end
    while position > 0:
        step = min(block, position)
        position -= step
        f.seek(position)
        data = f.read(step) + data
        lines = [line for line in data.split(b"\n") if line.strip()]
        if len(lines) >= 2 or position == 0:
            return json.loads(lines[-1])["digest"]
    return GENESIS


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
                previous = _last_digest(f)
                now = datetime.now(timezone.utc).isoformat()
                entries, lines = [], []
                for record in records:
                    entry = {k: v for k, v in record.items() if k != "digest"}
                    entry.setdefault("timestamp", now)
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

    def verify(self) -> int | None:
        """The 1-based line number of the first line that breaks the chain (edited, removed, inserted
        or unreadable), or None if intact."""
        previous = GENESIS
        if not self.path.exists():
            return None
        with open(self.path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return number
                body = {k: v for k, v in record.items() if k != "digest"}
                if record.get("previous_digest") != previous or digest(body) != record.get("digest"):
                    return number
                previous = record["digest"]
        return None
