"""An append-only, hash-chained log of policy decisions.

Each record carries the digest of the one before it, so editing or deleting a past record breaks
the chain at that point. The record follows OPA's decision-log fields where they apply
(decision_id, path, input, result, bundles, timestamp) plus the governance context.
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
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def verify(self) -> int | None:
        """The 1-based line number of the first record that breaks the chain, or None if intact."""
        previous = GENESIS
        for number, record in enumerate(self.records(), start=1):
            body = {k: v for k, v in record.items() if k != "digest"}
            if record.get("previous_digest") != previous or digest(body) != record.get("digest"):
                return number
            previous = record["digest"]
        return None
