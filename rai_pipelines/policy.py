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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rai_pipelines.errors import PolicyError

DEFAULT_PACKAGE = "apexlogic.ai_governance"

# A top-level rule head that opens its body without `if`: Rego v0.
_V0_HEAD = re.compile(r"^(?P<head>[A-Za-z_][\w.]*\s*(\[[^\]]*\])?\s*(=\s*[^{:]+?)?)\s*\{\s*$")
_FORBIDDEN_BUILTINS = re.compile(r"\b(http\.send|net\.[a-z_]+|opa\.runtime)\s*\(")
_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)\s+if\b", re.M)
_WITH_KEYWORD = re.compile(r"\bwith\s+(input|data)\b[^\n]*\bas\b")
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.M)


def _strip_comment(line: str) -> str:
    # '#' inside a string is rare in policies; good enough for the head check.
    in_string = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_string = not in_string
        elif ch == "#" and not in_string:
            return line[:i]
    return line


def check_rego_v1(path: str, source: str) -> None:
    """Refuse Rego v0 rule heads with a message that says how to write them in v1."""
    for number, raw in enumerate(source.splitlines(), start=1):
        line = _strip_comment(raw).rstrip()
        if not line or line[0].isspace() or line.startswith(("package", "import", "default", "}")):
            continue
        if " if " in f" {line} " or " contains " in line or ":=" in line:
            continue
        match = _V0_HEAD.match(line)
        if match:
            head = match.group("head").strip()
            raise PolicyError(
                f"{path}:{number}: `{line.strip()}` is Rego v0 syntax. OPA 1.x rejects it and the embedded "
                "engine would misread it, so it is refused. In Rego v1 write "
                f"`{_v1_suggestion(head)}` (partial sets use `contains`, every rule body needs `if`); "
                "`opa fmt --v0-v1` converts a whole file."
            )


def _v1_suggestion(head: str) -> str:
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


@dataclass(frozen=True)
class PolicyBundle:
    """The policies and their data, with the identity recorded in every decision."""

    root: str
    modules: dict[str, str]  # relative path -> source
    data: dict = field(default_factory=dict)
    digest: str = ""
    revision: str | None = None  # Git commit of the bundle, when it lives in a Git work tree

    @classmethod
    def load(cls, root: str | Path) -> PolicyBundle:
        root = Path(root)
        if not root.is_dir():
            raise PolicyError(f"policy bundle {root} is not a directory")
        modules, data = {}, {}
        hasher = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            if path.suffix == ".rego":
                source = path.read_text()
                check_rego_v1(str(path), source)
                check_builtins(str(path), source)
                modules[rel] = source
            elif path.name == "data.json":
                try:
                    document = json.loads(path.read_text())
                except json.JSONDecodeError as exc:
                    raise PolicyError(f"{path}:{exc.lineno}: policy data is not valid JSON: {exc.msg}") from exc
                _merge(data, document, str(path))
            else:
                continue
            hasher.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
        if not modules:
            raise PolicyError(f"policy bundle {root} holds no .rego file")
        return cls(str(root), modules, data, "sha256:" + hasher.hexdigest(), _git_revision(root))

    @property
    def policy_modules(self) -> dict[str, str]:
        return {k: v for k, v in self.modules.items() if not k.endswith("_test.rego")}

    @property
    def test_modules(self) -> dict[str, str]:
        return {k: v for k, v in self.modules.items() if k.endswith("_test.rego")}


def _merge(into: dict, document: dict, where: str) -> None:
    for key, value in document.items():
        if key in into and isinstance(into[key], dict) and isinstance(value, dict):
            _merge(into[key], value, where)
        elif key in into:
            raise PolicyError(f"{where}: data key {key!r} is already defined by another data file")
        else:
            into[key] = value


def _git_revision(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%H", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return out.stdout.strip() or None


class PolicyEngine(Protocol):
    def evaluate(self, bundle: PolicyBundle, query: str, inputs: Iterable[dict], data: dict) -> list[object]: ...


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
    """The embedded engine. One compiled bundle per (policy bundle, data) and many inputs."""

    def evaluate(self, bundle: PolicyBundle, query: str, inputs: Iterable[dict], data: dict) -> list[object]:
        from regopy import Interpreter, RegoError

        rego = Interpreter()
        try:
            for name, source in bundle.policy_modules.items():
                rego.add_module(name, source)
            rego.add_data(_combined_data(bundle.data, data))
            compiled = rego.build(query, [])
            if not compiled.ok():
                raise PolicyError(f"policy bundle {bundle.root} does not compile for query {query}")
            results = []
            for document in inputs:
                rego.set_input(document)
                results.append(
                    _parse_output(rego.query_bundle(compiled), f"policy bundle {bundle.root}, query {query}")
                )
            return results
        except RegoError as exc:
            raise PolicyError(f"policy bundle {bundle.root}: {_rego_error_text(exc, bundle.modules)}") from exc


def _combined_data(static: dict, dynamic: dict) -> dict:
    combined = json.loads(json.dumps(static))
    for key, value in dynamic.items():
        if key in combined:
            raise PolicyError(f"data.{key} is set both by the policy bundle and by the pipeline")
        combined[key] = value
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


def deny_query(package: str = DEFAULT_PACKAGE) -> str:
    return f"data.{package}.deny"


def evaluate_deny(
    engine: PolicyEngine, bundle: PolicyBundle, manifests: list[dict], ai_models: dict, package: str = DEFAULT_PACKAGE
) -> list[list[str]]:
    """The deny messages of `package` for each manifest, sorted. An undefined result (the package
    or rule missing) is an error, never an empty, compliant answer."""
    results = engine.evaluate(bundle, deny_query(package), manifests, {"ai_models": ai_models})
    out = []
    for manifest, result in zip(manifests, results, strict=False):
        if result is None:
            raise PolicyError(
                f"{deny_query(package)} is undefined for {manifest.get('kind')} "
                f"{manifest.get('metadata', {}).get('name')}: is the package loaded?"
            )
        if not isinstance(result, list):
            raise PolicyError(f"{deny_query(package)} must be a set of messages, got {type(result).__name__}")
        out.append(sorted(str(m) for m in result))
    return out


def validate_bundle_compiles(bundle: PolicyBundle, package: str = DEFAULT_PACKAGE) -> None:
    """Compile every module (tests included) so that a syntax error surfaces with its file and line."""
    from regopy import Interpreter, RegoError

    rego = Interpreter()
    try:
        for name, source in bundle.modules.items():
            rego.add_module(name, source)
        rego.add_data(bundle.data)
        _parse_output(rego.query(f"x := {deny_query(package)}"), f"policy bundle {bundle.root}")
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
