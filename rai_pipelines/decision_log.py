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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.seek(0)
                previous = GENESIS
                for line in f:
                    if line.strip():
                        previous = json.loads(line)["digest"]
                entry = dict(record)
                entry.setdefault("timestamp", datetime.now(timezone.utc).isoformat())
                entry["previous_digest"] = previous
                entry.pop("digest", None)
                entry["digest"] = digest(entry)
                f.seek(0, os.SEEK_END)
                f.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
                f.flush()
                os.fsync(f.fileno())
                return entry
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
