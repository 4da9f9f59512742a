"""OPA's own evaluator (github.com/open-policy-agent/opa/v1/rego, v1.20.2) in this process, through
the ctypes bindings of the `opa-golib-python-bindings` package: the default policy engine, the
parser every policy module goes through, and the runner of the bundle's `test_*` rules.

The bindings load a Go runtime, which must never be forked: the engine is imported only where it is
used, and a child that evaluates with a time limit is spawned (fork and exec), never forked.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Iterable

from rai_pipelines.core.errors import PolicyError

INSTALL = "pip install --no-deps --ignore-requires-python opa-golib-python-bindings==0.4.4"


def opa_bindings():
    """The bindings module, or a clear error that says how to install it (never a fall-back)."""
    try:
        import opa_bindings
    except ImportError as exc:
        raise PolicyError(
            f"the OPA engine is not installed ({exc}); install it with `{INSTALL}` (`make install` does), "
            "or choose the regopy engine explicitly"
        ) from None
    return opa_bindings


_LOCATED = re.compile(r"(?P<file>[^\s:][^:\n]*):(?P<row>\d+): (?P<message>[^\n]*)")


def opa_error_text(error: Exception, sources: dict[str, str] | None = None) -> str:
    """OPA's error text with each error as `file:line:column: message`. OPA names the line and shows
    the column by a caret under a copy of the source line; with the sources at hand, the column is
    counted in the file itself (OPA's copy drops the line's leading tabs)."""
    message = getattr(error, "message", None) or str(error)
    lines = message.splitlines()
    out = []
    for i, line in enumerate(lines):
        match = _LOCATED.search(line)
        if not match:
            continue
        where = f"{match['file']}:{match['row']}"
        shown, caret = (lines[i + 1], lines[i + 2]) if i + 2 < len(lines) and lines[i + 2].strip() == "^" else ("", "")
        source = (sources or {}).get(match["file"])
        if caret and source is not None:
            rows = source.splitlines()
            row = rows[int(match["row"]) - 1] if 0 < int(match["row"]) <= len(rows) else ""
            shown, caret = shown.removeprefix("\t"), caret.removeprefix("\t")
            start = row.find(shown) if shown else -1
            if start >= 0:
                where += f":{start + caret.index('^') + 1}"
        out.append(f"{where}: {match['message']}")
    return "; ".join(out) if out else message


def parse_module(name: str, source: str) -> dict:
    """The module's abstract syntax tree as OPA's parser gives it (Rego v1), or PolicyError naming
    the file, line and column of each syntax error."""
    bindings = opa_bindings()
    parser = _parser(bindings)
    try:
        (bound,) = parser.eval_query(
            "x := rego.parse_module(input.name, input.source)", {"name": name, "source": source}
        )
    except bindings.OpaError as exc:
        raise PolicyError(opa_error_text(exc, {name: source})) from None
    return bound["x"]


@functools.lru_cache(maxsize=1)
def _parser(bindings):
    """One engine with no policy serves every parse of the process; made on first use."""
    return bindings.OpaEngine()


class CompiledCache:
    """Compiled engines, a few at a time, keyed by the bundle's digest, the query and the data's
    content. Data is found first by identity: the same `data.ai_models` object evaluated again (a
    sensor's or a gate's many inputs) costs nothing, whatever the number of versions in it; other
    data is digested. The objects kept by identity must not be changed after evaluation."""

    def __init__(self, size: int = 4, release=None):
        self._entries: OrderedDict[tuple, object] = OrderedDict()
        self._by_identity: OrderedDict[tuple, tuple[tuple, list]] = OrderedDict()
        self._size, self._release = size, release

    def get(self, bundle, query: str, data: dict, build):
        identity = (bundle.digest, query, tuple((k, id(v)) for k, v in sorted(data.items())))
        alias = self._by_identity.get(identity)
        if alias is not None and all(alias[1][i] is v for i, (_, v) in enumerate(sorted(data.items()))):
            key = alias[0]
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        combined = combined_data(bundle.data, data)
        key = (bundle.digest, query, hashlib.sha256(json.dumps(combined, sort_keys=True).encode()).hexdigest())
        if key not in self._entries:
            self._entries[key] = build(combined)
            while len(self._entries) > self._size:
                _, dropped = self._entries.popitem(last=False)
                if self._release:
                    self._release(dropped)
        self._entries.move_to_end(key)
        # the objects themselves are kept with their ids, so an id is never taken for another object's
        self._by_identity[identity] = (key, [v for _, v in sorted(data.items())])
        while len(self._by_identity) > 4 * self._size:
            self._by_identity.popitem(last=False)
        return self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class OpaEvaluator:
    """The default engine. Each (bundle, data) pair is compiled once into an OPA engine and kept
    (a few at a time): a sensor or a gate evaluating many inputs compiles once. A tick's inputs are
    evaluated in one call (`with input as` each of them), so the crossing from Python is paid once."""

    name = "opa"

    def __init__(self, cache_size: int = 4):
        self._cache = CompiledCache(cache_size, release=lambda engine: engine.close())
        self._cache_size = cache_size

    def __getstate__(self) -> dict:
        # Compiled engines live in the Go runtime: they must not travel to a child process.
        return {"_cache_size": self._cache_size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["_cache_size"])

    def _engine(self, bundle, data: dict):
        return self._cache.get(bundle, "", data, lambda combined: self._build(bundle, combined))

    @staticmethod
    def _build(bundle, combined: dict):
        bindings = opa_bindings()
        engine = bindings.OpaEngine()
        try:
            for name, source in bundle.policy_modules.items():
                engine.add_policy(name, source)
            engine.add_data(combined)
        except bindings.OpaError as exc:
            engine.close()
            raise PolicyError(f"policy bundle {bundle.root}: {opa_error_text(exc, bundle.modules)}") from None
        return engine

    def evaluate(self, bundle, query: str, inputs: Iterable[dict], data: dict) -> list[object]:
        bindings = opa_bindings()
        documents = list(inputs)
        engine = self._engine(bundle, data)
        ref = query_ref(query)
        try:
            if len(documents) == 1:
                try:
                    return [engine.eval_document(ref.removeprefix("data."), documents[0])]
                except bindings.OpaUndefinedError:
                    return [None]
            # Every input in one call: {index: result}; an undefined result leaves its index out.
            found = engine.eval_query(
                f"x := {{i: r | some i, d in input.documents; r := {ref} with input as d}}", {"documents": documents}
            )
        except bindings.OpaError as exc:
            raise PolicyError(
                f"policy bundle {bundle.root}, query {query}: {opa_error_text(exc, bundle.modules)}"
            ) from None
        results = found[0]["x"] if found else {}
        return [results.get(str(i), results.get(i)) for i in range(len(documents))]


def query_ref(query: str) -> str:
    """The data reference a query names: only `data.a.b.c` references are evaluated, so no query
    text reaches the engine but a reference the caller chose."""
    if not re.fullmatch(r"data(\.[A-Za-z_][A-Za-z0-9_]*)+", query):
        raise PolicyError(f"{query!r} is not a data reference (data.<package>.<rule>)")
    return query


def combined_data(static: dict, dynamic: dict) -> dict:
    """The bundle's data and the pipeline's (data.ai_models), which may not overlap."""
    from rai_pipelines.governance.rego import engine_safe

    combined = engine_safe(static)
    for key, value in dynamic.items():
        if key in combined:
            raise PolicyError(f"data.{key} is set both by the policy bundle and by the pipeline")
        combined[key] = engine_safe(value)
    return combined
