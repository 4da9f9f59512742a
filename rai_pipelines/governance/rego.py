"""Rego policies: loading a bundle, refusing what the embedded engine would misread, evaluating.

The embedded engine is regopy (rego-cpp, Rego v1). Its known edges (DESIGN.md) shape this module:
- a query whose value is `false` comes back undefined, so callers query sets/objects, not booleans;
- `with ... as` crashes the process, so policy unit tests must not use it (the runner refuses it);
- v0 syntax (`deny[msg] { ... }`) is silently read as a partial object, so it is refused up front.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from rai_pipelines.core.errors import PolicyError

DEFAULT_PACKAGE = "apexlogic.ai_governance"

# A top-level rule head that opens its body without `if`: Rego v0.
_FORBIDDEN_BUILTINS = re.compile(r"\b(http\.send|net\.[a-z_]+|opa\.runtime)\s*\(")
_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)\s+if\b", re.M)
_WITH_KEYWORD = re.compile(r"\bwith\s+(input|data)\b[^\n]*\bas\b")
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.M)


def _outside_strings(line: str):
    """(index, character) of each character of `line` outside "..." (with escapes) and `...` literals."""
    quote, escaped = None, False
    for i, ch in enumerate(line):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in '"`':
            quote = ch
        else:
            yield i, ch


def _strip_comment(line: str) -> str:
    for i, ch in _outside_strings(line):
        if ch == "#":
            return line[:i]
    return line


def _first_brace(line: str) -> int:
    """Index of the first `{` outside a string literal, or -1."""
    return next((i for i, ch in _outside_strings(line) if ch == "{"), -1)


_RULE_HEAD = re.compile(r"^[A-Za-z_][\w.]*(\[[^\]]*\]|\([^)]*\))?(\s+contains\s+\S+)?(\s*:?=\s*.+)?$")


def check_rego_v1(path: str, source: str) -> None:
    """Refuse Rego v0 rule heads (a body opened without `if`) with a message that says how to
    write them in v1, and refuse `with ... as`, which crashes the embedded engine."""
    for number, raw in enumerate(source.splitlines(), start=1):
        line = _strip_comment(raw).rstrip()
        if _WITH_KEYWORD.search(line):
            raise PolicyError(
                f"{path}:{number}: `with ... as` crashes the embedded Rego engine (regopy 1.5.2); pass the "
                "values to a function instead"
            )
        if not line or line[0].isspace() or line.startswith(("package", "import", "default", "}")):
            continue
        brace = _first_brace(line)
        if brace < 0:
            continue
        head = line[:brace].strip()
        if not head or re.search(r"(^|\s)if$", head):
            continue  # `p if {`
        assignment = re.search(r":?=", head)
        if assignment:
            value = head[assignment.end() :].rstrip()
            if not value or not (value[-1].isalnum() or value[-1] in '_)]"'):
                continue  # the brace opens the value itself: `p := {`, `p := ({x | ...} | ...)`
        if _RULE_HEAD.match(head):
            raise PolicyError(
                f"{path}:{number}: `{line.strip()}` is Rego v0 syntax. OPA 1.x rejects it and the embedded "
                "engine would misread it, so it is refused. In Rego v1 write "
                f"`{_v1_suggestion(head)}` (partial sets use `contains`, every rule body needs `if`); "
                "`opa fmt --v0-v1` converts a whole file."
            )


def _v1_suggestion(head: str) -> str:
    if " contains " in head:
        return f"{head} if {{"
    m = re.match(r"^([\w.]+)\s*\[\s*(\w+)\s*\]$", head)
    if m:
        return f"{m.group(1)} contains {m.group(2)} if {{"
    m = re.match(r"^([\w.]+)\s*=\s*(.+)$", head)
    if m:
        return f"{m.group(1)} := {m.group(2).strip()} if {{"
    return f"{head} if {{"


def check_builtins(path: str, source: str) -> None:
    for number, line in enumerate(source.splitlines(), start=1):
        m = _FORBIDDEN_BUILTINS.search(_strip_comment(line))
        if m:
            raise PolicyError(
                f"{path}:{number}: built-in {m.group(1)} reaches outside the policy engine and is not allowed "
                "in governance policies (decisions must depend only on the input and the bundle's data)"
            )


SEVERITIES = ("rollback", "review", "alert")
_DATA_SUFFIXES = (".yaml", ".yml", ".json")
_THRESHOLD_USE = re.compile(r'\bthreshold\([^,()]+,\s*"(\w+)"\)')
_FINDING_USE = re.compile(r'\bfinding\([^,()]+,\s*"(\w+)"')


@dataclass(frozen=True)
class PolicyBundle:
    """The policies and their data, with the identity recorded in every decision.

    Layout: Rego modules anywhere; data (thresholds and severities) in YAML or JSON files at three
    levels: the bundle root (organisation), `teams/<team>/` and `models/<model>/`. The most specific
    level that sets a value wins; two files of the same level setting a value differently are a
    conflict, refused when the bundle is loaded.
    """

    root: str
    modules: dict[str, str]  # relative path -> source
    data: dict = field(default_factory=dict)
    digest: str = ""
    revision: str | None = None  # Git commit of the bundle, when it lives in a Git work tree

    def with_registry(self, specs: dict) -> PolicyBundle:
        """The bundle with `data.registry.teams` (model name -> owning team) from the model registry:
        the team whose thresholds apply to a Deployment is the registry's, not whatever team label
        the manifest under review carries. The teams join the digest, since they change decisions."""
        teams = {name: spec.team for name, spec in sorted(specs.items()) if spec.team}
        if "registry" in self.data:
            raise PolicyError(f"policy bundle {self.root}: data.registry is reserved for the model registry")
        digest = "sha256:" + hashlib.sha256((self.digest + json.dumps(teams, sort_keys=True)).encode()).hexdigest()
        return replace(self, data={**self.data, "registry": {"teams": teams}}, digest=digest)

    @classmethod
    def load(cls, root: str | Path) -> PolicyBundle:
        root = Path(root)
        if not root.is_dir():
            raise PolicyError(f"policy bundle {root} is not a directory")
        modules: dict[str, str] = {}
        levels: dict[tuple[str, ...], list[tuple[str, dict]]] = {}
        hasher = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
            rel = path.relative_to(root).as_posix()
            if path.suffix == ".rego":
                source = path.read_text()
                check_rego_v1(str(path), source)
                check_builtins(str(path), source)
                modules[rel] = source
            elif path.suffix in _DATA_SUFFIXES:
                levels.setdefault(_data_level(path, rel), []).append((str(path), _read_data(path)))
            else:
                continue
            hasher.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
        if not modules:
            raise PolicyError(f"policy bundle {root} holds no .rego file")
        governance = _merge_levels(levels, modules, root)
        return cls(str(root), modules, {"governance": governance}, "sha256:" + hasher.hexdigest(), _git_revision(root))

    @property
    def policy_modules(self) -> dict[str, str]:
        return {k: v for k, v in self.modules.items() if not k.endswith("_test.rego")}

    @property
    def test_modules(self) -> dict[str, str]:
        return {k: v for k, v in self.modules.items() if k.endswith("_test.rego")}


def _data_level(path: Path, rel: str) -> tuple[str, ...]:
    parts = rel.split("/")
    if len(parts) == 1:
        return ("org",)
    if len(parts) == 3 and parts[0] in ("teams", "models"):
        return (parts[0], parts[1])
    raise PolicyError(
        f"{path}: policy data must sit at the bundle root (organisation), in teams/<team>/ or in models/<model>/"
    )


def _read_data(path: Path) -> dict:
    try:
        if path.suffix == ".json":
            document = json.loads(path.read_text())
        else:
            from ruamel.yaml import YAML

            document = YAML(typ="safe").load(path.read_text())
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path}:{exc.lineno}: policy data is not valid JSON: {exc.msg}") from exc
    except Exception as exc:
        raise PolicyError(f"{path}: policy data is not valid YAML: {exc}") from exc
    document = document or {}
    if not isinstance(document, dict):
        raise PolicyError(f"{path}: policy data must be a mapping with 'thresholds' and/or 'severity'")
    unknown = set(document) - {"thresholds", "severity"}
    if unknown:
        raise PolicyError(
            f"{path}: unknown policy data key(s) {', '.join(sorted(unknown))}; expected 'thresholds' and/or 'severity'"
        )
    for name, value in (document.get("thresholds") or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PolicyError(f"{path}: thresholds.{name} must be a number, not {value!r}")
    for rule, value in (document.get("severity") or {}).items():
        if value not in SEVERITIES:
            raise PolicyError(f"{path}: severity.{rule} must be one of {', '.join(SEVERITIES)}, not {value!r}")
    return document


def _merge_levels(levels: dict, modules: dict[str, str], root: Path) -> dict:
    """Merge each level's files, refusing conflicts within a level; check that the organisation
    level sets every threshold and severity the policies use, and that overrides name known keys."""
    merged: dict[tuple[str, ...], dict] = {}
    for level, documents in levels.items():
        combined: dict[str, dict] = {"thresholds": {}, "severity": {}}
        origin: dict[tuple[str, str], str] = {}
        for path, document in documents:
            for section in ("thresholds", "severity"):
                for key, value in (document.get(section) or {}).items():
                    if key in combined[section] and combined[section][key] != value:
                        raise PolicyError(
                            f"conflict: {origin[(section, key)]} and {path} both set {section}.{key} at the same "
                            f"level, to {combined[section][key]!r} and {value!r}"
                        )
                    combined[section][key] = value
                    origin[(section, key)] = path
        merged[level] = combined
    sources = "\n".join(modules.values())
    used = {"thresholds": set(_THRESHOLD_USE.findall(sources)), "severity": set(_FINDING_USE.findall(sources))}
    org = merged.get(("org",), {"thresholds": {}, "severity": {}})
    for section, names in used.items():
        missing = sorted(names - set(org[section]))
        if missing:
            raise PolicyError(
                f"{root}: the organisation level (data at the bundle root) must set {section} {', '.join(missing)}: "
                "the policies use them, and an unset value would never deny"
            )
    for level, combined in merged.items():
        if level == ("org",):
            continue
        for section in ("thresholds", "severity"):
            unknown = sorted(set(combined[section]) - set(org[section]))
            if unknown:
                raise PolicyError(
                    f"{root}/{'/'.join(level)}: {section} {', '.join(unknown)} not set at the organisation level: "
                    "an override must name a known key"
                )
    return {
        "org": org,
        "teams": {lvl[1]: v for lvl, v in merged.items() if lvl[0] == "teams"},
        "models": {lvl[1]: v for lvl, v in merged.items() if lvl[0] == "models"},
    }


def _git_revision(root: Path) -> str | None:
    """The last commit of the bundle's folder, with "+dirty" when the folder has uncommitted changes:
    a decision must never claim a revision whose policies it did not use."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        revision = git("log", "-1", "--format=%H", "--", ".")
        dirty = git("status", "--porcelain", "--", ".")
    except (subprocess.SubprocessError, OSError):
        return None
    if not revision:
        return None
    return f"{revision}+dirty" if dirty else revision


class PolicyEngine(Protocol):
    def evaluate(self, bundle: PolicyBundle, query: str, inputs: Iterable[dict], data: dict) -> list[object]: ...


# Inputs are Kubernetes manifests: far below these. A larger or deeper input is refused before it
# reaches the engine, so a pathological document cannot stall a sensor tick.
MAX_INPUT_BYTES = 1_000_000
MAX_INPUT_DEPTH = 32


def check_input(document: object, where: str) -> None:
    size = len(json.dumps(document, default=str))
    if size > MAX_INPUT_BYTES:
        raise PolicyError(f"{where}: input of {size:,} bytes exceeds the limit of {MAX_INPUT_BYTES:,}")
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_INPUT_DEPTH:
            raise PolicyError(f"{where}: input nested deeper than {MAX_INPUT_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _parse_output(output, where: str = "") -> object:
    text = str(output)
    if not output.ok():
        detail = str(output.node).strip()
        raise PolicyError(f"{where}: the embedded Rego engine reported an error: {detail or text}")
    if text.strip() == "undefined":
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"unexpected output from the embedded Rego engine: {text[:500]}") from exc
    expressions = doc.get("expressions") or []
    return expressions[0] if expressions else None


class RegopyEngine:
    """The embedded engine. The compiled bundle is cached, keyed by the digests of the policy bundle,
    the query and the data, so a sensor or a gate evaluating many inputs compiles once."""

    def __init__(self, cache_size: int = 4):
        self._cache: OrderedDict[tuple[str, str, str], tuple[object, object]] = OrderedDict()
        self._cache_size = cache_size

    def __getstate__(self) -> dict:
        # Compiled interpreters are native objects: they must not travel to a child process.
        return {"_cache": OrderedDict(), "_cache_size": self._cache_size}

    def _compiled(self, bundle: PolicyBundle, query: str, data: dict):
        from regopy import Interpreter

        combined = _combined_data(bundle.data, data)
        key = (bundle.digest, query, hashlib.sha256(json.dumps(combined, sort_keys=True).encode()).hexdigest())
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        rego = Interpreter()
        for name, source in bundle.policy_modules.items():
            rego.add_module(name, source)
        rego.add_data_json(engine_json(combined))
        compiled = rego.build(query, [])
        if not compiled.ok():
            raise PolicyError(f"policy bundle {bundle.root} does not compile for query {query}")
        self._cache[key] = (rego, compiled)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return rego, compiled

    def evaluate(self, bundle: PolicyBundle, query: str, inputs: Iterable[dict], data: dict) -> list[object]:
        from regopy import RegoError

        try:
            rego, compiled = self._compiled(bundle, query, data)
            results = []
            for document in inputs:
                # Input objects are built node by node (2x faster than parsing a term) and read 1e-05
                # and subnormals correctly; engine_safe still clamps what the output writer chokes on.
                rego.set_input(engine_safe(document))
                try:
                    output = rego.query_bundle(compiled)
                except json.JSONDecodeError as exc:  # regopy could not even parse its own output
                    raise PolicyError(
                        f"policy bundle {bundle.root}: the embedded engine produced invalid JSON "
                        f"for query {query} ({exc}); is a string formatted with sprintf?"
                    ) from exc
                results.append(_parse_output(output, f"policy bundle {bundle.root}, query {query}"))
            return results
        except RegoError as exc:
            raise PolicyError(f"policy bundle {bundle.root}: {_rego_error_text(exc, bundle.modules)}") from exc


def _evaluate_in_child(connection, engine, bundle, query, inputs, data) -> None:
    try:
        connection.send(("ok", engine.evaluate(bundle, query, inputs, data)))
    except Exception as exc:  # sent back to the parent, which raises it
        connection.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        connection.close()


class TimeBoundedEngine:
    """Runs another engine in a child process and kills it after `timeout_s`: the embedded engine
    is native code that cannot be interrupted in-process, and a sensor tick must not stall."""

    def __init__(self, inner: PolicyEngine, timeout_s: float):
        self.inner, self.timeout_s = inner, timeout_s

    def evaluate(self, bundle: PolicyBundle, query: str, inputs: Iterable[dict], data: dict) -> list[object]:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=False)
        process = context.Process(
            target=_evaluate_in_child, args=(child, self.inner, bundle, query, list(inputs), data), daemon=True
        )
        process.start()
        child.close()
        try:
            if not parent.poll(self.timeout_s):
                raise PolicyError(f"policy evaluation of {query} exceeded {self.timeout_s:g} s and was stopped")
            status, payload = parent.recv()
        except EOFError as exc:
            raise PolicyError(
                f"the policy engine process died evaluating {query} (exit code {process.exitcode})"
            ) from exc
        finally:
            if process.is_alive():
                process.kill()
            process.join(5)
            parent.close()
        if status == "error":
            raise PolicyError(payload)
        return payload


_SMALLEST_ACCEPTED = 1e-300
_LARGEST_ACCEPTED = 1e300


def engine_safe(value):
    """A copy of a JSON document whose numbers the embedded engine accepts. rego-cpp rejects the
    whole document for a float near the smallest or the largest double (a p-value of 1e-320, say):
    magnitudes under 1e-300 become 0.0 and those over 1e300 are clamped to 1e300, which keeps every
    comparison with a realistic threshold. NaN and infinity, which JSON cannot carry, are an error."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise PolicyError(f"a policy input or fact is {value!r}, which JSON cannot carry")
        if 0 < abs(value) < _SMALLEST_ACCEPTED:
            return 0.0
        return max(-_LARGEST_ACCEPTED, min(_LARGEST_ACCEPTED, value))
    if isinstance(value, dict):
        return {str(k): engine_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [engine_safe(v) for v in value]
    return value


def engine_json(value) -> str:
    """JSON for the embedded engine: rego-cpp also refuses an exponent without a fraction
    (Python writes 1e-05), so every float is written with one (1.0e-05)."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return json.dumps(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{engine_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(engine_json(v) for v in value) + "]"
    raise PolicyError(f"a policy input or fact holds a {type(value).__name__}, which is not JSON")


def _combined_data(static: dict, dynamic: dict) -> dict:
    combined = engine_safe(static)
    for key, value in dynamic.items():
        if key in combined:
            raise PolicyError(f"data.{key} is set both by the policy bundle and by the pipeline")
        combined[key] = engine_safe(value)
    return combined


def _rego_error_text(exc: Exception, modules: dict[str, str] | None = None) -> str:
    """rego-cpp reports `(error <n>:<file>|<offset>|<len> (errormsg <n>:<message>) ...)`; turn
    that into `file:line:column: message`."""
    text = str(exc)
    errors = re.findall(r"\(error \d+:([^|\s]+)\|(\d+)\|\d+\s+\(errormsg \d+:([^)]*)\)", text)
    if not errors:
        return text
    out = []
    for name, offset, message in errors:
        source = (modules or {}).get(name)
        if source is not None:
            before = source[: int(offset)]
            line, column = before.count("\n") + 1, int(offset) - (before.rfind("\n") + 1) + 1
            out.append(f"{name}:{line}:{column}: {message}")
        else:
            out.append(f"{name}: {message}")
    return "; ".join(out)


def decision_query(package: str = DEFAULT_PACKAGE) -> str:
    return f"data.{package}.decision"


REMEDIATION_ORDER = ("rollback", "review", "alert")
DECISION_KEYS = ("deny", "warn", "violations")


@dataclass(frozen=True)
class PolicyDecision:
    """What the policies say of one input: deny messages, warnings, and each violation's rule and
    severity. The remediation is the strongest severity among the violations."""

    deny: list[str]
    warn: list[str]
    violations: list[dict]

    @property
    def allowed(self) -> bool:
        return not self.deny

    @property
    def remediation(self) -> str:
        severities = {v.get("severity") for v in self.violations}
        return next((s for s in REMEDIATION_ORDER if s in severities), "alert" if self.deny else "none")

    def as_dict(self) -> dict:
        return {
            "deny": self.deny,
            "warn": self.warn,
            "violations": self.violations,
            "allowed": self.allowed,
            "remediation": self.remediation,
        }


def evaluate_decisions(
    engine: PolicyEngine, bundle: PolicyBundle, manifests: list[dict], ai_models: dict, package: str = DEFAULT_PACKAGE
) -> list[PolicyDecision]:
    """The decision of `package` for each manifest. An undefined or malformed decision (the package
    missing, a rule erroring) is an error, never an empty, compliant answer."""
    query = decision_query(package)
    for manifest in manifests:
        check_input(manifest, f"{manifest.get('kind')} {(manifest.get('metadata') or {}).get('name')}")
    results = engine.evaluate(bundle, query, manifests, {"ai_models": ai_models})
    out = []
    for manifest, result in zip(manifests, results, strict=True):
        name = f"{manifest.get('kind')} {(manifest.get('metadata') or {}).get('name')}"
        if result is None:
            raise PolicyError(f"{query} is undefined for {name}: is the package loaded and its data complete?")
        if not isinstance(result, dict) or not all(
            isinstance(result.get(k), list) for k in ("deny", "warn", "violations")
        ):
            raise PolicyError(
                f"{query} for {name} must be an object with deny, warn and violations sets, got {result!r}"
            )
        violations = sorted(result["violations"], key=lambda v: (str(v.get("rule")), str(v.get("msg"))))
        for violation in violations:
            if violation.get("severity") not in REMEDIATION_ORDER:
                raise PolicyError(f"{query} for {name}: violation {violation!r} has no valid severity")
        out.append(PolicyDecision(sorted(map(str, result["deny"])), sorted(map(str, result["warn"])), violations))
    return out


def validate_bundle_compiles(bundle: PolicyBundle, package: str = DEFAULT_PACKAGE) -> None:
    """Compile every module (tests included) so that a syntax error surfaces with its file and line."""
    from regopy import Interpreter, RegoError

    rego = Interpreter()
    try:
        for name, source in bundle.modules.items():
            rego.add_module(name, source)
        rego.add_data(bundle.data)
        _parse_output(rego.query(f"x := {decision_query(package)}"), f"policy bundle {bundle.root}")
    except RegoError as exc:
        raise PolicyError(f"policy bundle {bundle.root}: {_rego_error_text(exc, bundle.modules)}") from exc


@dataclass(frozen=True)
class PolicyTestResult:
    file: str
    package: str
    name: str
    passed: bool


def run_policy_tests(bundle: PolicyBundle) -> list[PolicyTestResult]:
    """Run every `test_*` rule of the bundle's *_test.rego files, as `opa test` does.

    A test passes when its rule evaluates to true. Tests must not use `with ... as` (the embedded
    engine crashes on it): policies expose functions of (manifest, facts) that tests call instead.
    """
    from regopy import Interpreter, RegoError

    for name, source in bundle.test_modules.items():
        for number, line in enumerate(source.splitlines(), start=1):
            if _WITH_KEYWORD.search(_strip_comment(line)):
                raise PolicyError(
                    f"{Path(bundle.root) / name}:{number}: `with ... as` crashes the embedded Rego engine "
                    "(regopy 1.5.2); call the policy's functions with literal arguments instead"
                )
    rego = Interpreter()
    results = []
    try:
        for name, source in bundle.modules.items():
            rego.add_module(name, source)
        rego.add_data(bundle.data)
        for name, source in sorted(bundle.test_modules.items()):
            package = _PACKAGE.search(source)
            if not package:
                raise PolicyError(f"{Path(bundle.root) / name}: no package declaration")
            for rule in _TEST_RULE.findall(source):
                value = _parse_output(rego.query(f"data.{package.group(1)}.{rule}"), f"{Path(bundle.root) / name}")
                results.append(PolicyTestResult(name, package.group(1), rule, value is True))
    except RegoError as exc:
        raise PolicyError(f"policy bundle {bundle.root}: {_rego_error_text(exc, bundle.modules)}") from exc
    return results
