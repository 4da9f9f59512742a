"""CUR resource tags, from the CUR 2.0 `resource_tags` map or the legacy resourceTags/* columns, to the
ledger's Tags JSON and attribution columns, with Arrow doing the per-row work and Python seeing each
distinct tag set once per file."""

from __future__ import annotations

import json
import threading

import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines.costs.ledger_schema import ATTRIBUTION_TAGS, tag_key


def _attribution(tags: dict[str, str]) -> tuple[str | None, ...]:
    return tuple(next((tags[k] for k in keys if tags.get(k)), None) for keys in ATTRIBUTION_TAGS.values())


class TagSets:
    """Each distinct tag set as its JSON text and attribution values, computed once per file: a day
    has tens of thousands of distinct sets against millions of rows. The sets seen so far are kept
    as Arrow arrays, so a batch's rows are matched to them by Arrow's hash lookup, and only a set
    never seen before reaches Python. Shared by the worker threads of one file: a set is parsed once."""

    def __init__(self) -> None:
        # (the known signatures, their resolved columns): replaced as one, never changed in place, so a
        # thread reading it while another learns new sets sees one consistent pair.
        self._state = (pa.array([], pa.string()), [pa.array([], pa.string()) for _ in range(1 + len(ATTRIBUTION_TAGS))])
        self._lock = threading.Lock()

    def resolve(self, signatures: pa.Array, parse) -> list[pa.Array]:
        """Given one signature string per row (null: no tags) and `parse` (signature -> raw (key,
        value) pairs), the Tags JSON column followed by one column per attribution tag."""
        encoded = pc.dictionary_encode(signatures)
        distinct = encoded.dictionary
        known, resolved = self._state
        positions = pc.index_in(distinct, value_set=known)
        if pc.any(pc.is_null(positions)).as_py():
            with self._lock:
                known, resolved = self._learn(distinct, parse)
            positions = pc.index_in(distinct, value_set=known)
        rows = positions.take(encoded.indices)  # null where the row has no tags at all
        texts = pc.fill_null(resolved[0].take(rows), "{}")
        return [texts] + [column.take(rows) for column in resolved[1:]]

    def _learn(self, distinct: pa.Array, parse) -> tuple[pa.Array, list[pa.Array]]:
        """Adds the sets of `distinct` not known yet (another thread may have added some meanwhile)."""
        known, resolved = self._state
        positions = pc.index_in(distinct, value_set=known)
        new = pc.filter(distinct, pc.is_null(positions)).to_pylist()
        if new:
            # All parsed before any is kept: a parse that raises leaves the sets as they were.
            parsed = []
            for raw in new:
                tags = dict(sorted((tag_key(k), v) for k, v in parse(raw) if v not in (None, "")))
                parsed.append((json.dumps(tags, sort_keys=True), *_attribution(tags)))
            resolved = [
                pa.concat_arrays([before, pa.array(column, pa.string())])
                for before, column in zip(resolved, zip(*parsed, strict=True), strict=True)
            ]
            self._state = (pa.concat_arrays([known, pa.array(new, pa.string())]), resolved)
        return self._state


# A row's tags become one signature string, made in Arrow: its number of pairs, its keys and its
# values, joined by control characters. A key or value that holds one of them gives a signature
# whose parts do not add up to that number: such a batch is signed the plain way, row by row.
_KEY_SEP, _PAIR_SEP = "\x1f", "\x1e"


class _Ambiguous(Exception):
    pass


def _split_signature(raw: str) -> list[tuple[str, str]]:
    parts = raw.split(_PAIR_SEP)
    if len(parts) != 3:
        raise _Ambiguous
    count = int(parts[0])
    if count == 0:
        return []
    keys, items = parts[1].split(_KEY_SEP), parts[2].split(_KEY_SEP)
    if len(keys) != count or len(items) != count:
        raise _Ambiguous
    return list(zip(keys, items, strict=True))


def _pairs_of_json(raw: str) -> list[tuple[str, str | None]]:
    return [tuple(pair) for pair in json.loads(raw[1:])]


def map_tag_columns(column: pa.MapArray, sets: TagSets) -> list[pa.Array]:
    """The CUR 2.0 map column without a Python object per row: each row's raw keys and values are
    joined into one signature string in Arrow, and only the distinct signatures reach Python."""
    if len(column) == 0:
        return [pa.array([], pa.string()) for _ in range(1 + len(ATTRIBUTION_TAGS))]
    keys = pa.ListArray.from_arrays(column.offsets, column.keys)
    # A missing value and an empty one are the same to the ledger: neither is kept as a tag.
    items = pa.ListArray.from_arrays(column.offsets, pc.fill_null(column.items, ""))
    signatures = pc.binary_join_element_wise(
        pc.cast(pc.list_value_length(keys), pa.string()),
        pc.binary_join(keys, _KEY_SEP),
        pc.binary_join(items, _KEY_SEP),
        _PAIR_SEP,
    )
    signatures = pc.if_else(column.is_valid(), signatures, pa.scalar(None, pa.string()))
    try:
        return sets.resolve(signatures, _split_signature)
    except _Ambiguous:
        rows = [None if e is None else "J" + json.dumps(e) for e in column.to_pylist()]
        return sets.resolve(pa.array(rows, pa.string()), _pairs_of_json)


def legacy_tag_columns_of(batch: pa.RecordBatch, names: list[str], sets: TagSets) -> list[pa.Array]:
    """Legacy resourceTags/* columns: the row's values joined into one signature in Arrow."""
    n = batch.num_rows
    if not names:
        return [pa.array(["{}"] * n, pa.string())] + [pa.nulls(n, pa.string()) for _ in ATTRIBUTION_TAGS]
    values = [pc.fill_null(pc.cast(batch.column(c), pa.string()), "") for c in names]

    def split(raw: str) -> list[tuple[str, str]]:
        parts = raw.split(_KEY_SEP)[1:]  # after the leading "L"
        if len(parts) != len(names):
            raise _Ambiguous
        return list(zip(names, parts, strict=True))

    try:
        return sets.resolve(pc.binary_join_element_wise("L", *values, _KEY_SEP), split)
    except _Ambiguous:
        rows = zip(*(v.to_pylist() for v in values), strict=True)
        signatures = ["J" + json.dumps(list(zip(names, r, strict=True))) for r in rows]
        return sets.resolve(pa.array(signatures, pa.string()), _pairs_of_json)
