"""A Rego policy bundle, laid out as an OPA bundle so that `opa test` and `opa build` read it unchanged:
Rego v1 modules anywhere, a `.manifest` (revision, roots), and the thresholds and severities as data
files named as OPA names them, whose folder is their path in `data`:

    governance/data.yaml                      data.governance (the organisation)
    governance/teams/<team>/data.yaml         data.governance.teams[team]
    governance/models/<model>/data.yaml       data.governance.models[model]

Every module goes through OPA's own parser (Rego v1): a syntax error names its file, line and
column, Rego v0 is refused with how to convert it, and a built-in that reaches outside the engine
(`http.send`, `net.*`, `opa.runtime`) is refused on the parsed module, wherever and however it is
written. The bundle's digest and revision identify it in every decision.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

from rai_pipelines.core.errors import BadInputError, PolicyError
from rai_pipelines.core.yamlfile import check_yaml_bounds
from rai_pipelines.governance.opa import parse_module

DEFAULT_PACKAGE = "apexlogic.ai_governance"
DATA_ROOT = "governance"
ORG_DATA = f"{DATA_ROOT}/data.yaml"
DATA_NAMES = ("data.json", "data.yaml", "data.yml")  # the only data files OPA's bundle loader reads
MANIFEST = ".manifest"
MANIFEST_KEYS = {"revision", "roots", "rego_version", "metadata"}


def strip_comment(line: str) -> str:
    """The line without its `#` comment (a `#` inside a "..." or `...` string is no comment)."""
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
        elif ch == "#":
            return line[:i]
    return line


def _v1_suggestion(head: str) -> str:
    head = head.strip()
    if " contains " in head:
        return f"{head} if {{"
    m = re.match(r"^([\w.]+)\s*\[\s*(\w+)\s*\]$", head)
    if m:
        return f"{m.group(1)} contains {m.group(2)} if {{"
    m = re.match(r"^([\w.]+)\s*=\s*(.+)$", head)
    if m:
        return f"{m.group(1)} := {m.group(2).strip()} if {{"
    return f"{head} if {{"


_V0_MARKERS = ("`if` keyword is required", "`contains` keyword is required")


def parse_policy(path: str, source: str) -> dict:
    """OPA's syntax tree of one module; Rego v0 is refused with the v1 way to write it."""
    try:
        return parse_module(path, source)
    except PolicyError as exc:
        text = str(exc)
        if not any(marker in text for marker in _V0_MARKERS):
            raise
        row = re.search(r":(\d+)(:\d+)?: ", text)
        line = source.splitlines()[int(row.group(1)) - 1] if row else ""
        head = strip_comment(line).split("{", 1)[0]
        raise PolicyError(
            f"{path}:{row.group(1) if row else '?'}: `{line.strip()}` is Rego v0 syntax ({text}). OPA 1.x "
            f"rejects it, so it is refused. In Rego v1 write `{_v1_suggestion(head)}` (partial sets use "
            "`contains`, every rule body needs `if`); `opa fmt --v0-v1` converts a whole file."
        ) from None


# Built-ins whose result depends on the world outside the engine: the network and the process.
def _forbidden(ref: list) -> str | None:
    if not ref or ref[0].get("type") != "var":
        return None
    names = [ref[0]["value"]] + [t.get("value") for t in ref[1:2] if t.get("type") == "string"]
    if names[0] == "net" or names[:2] in (["http", "send"], ["opa", "runtime"]):
        return ".".join(str(n) for n in names)
    return None


def _walk(node):
    stack = [node]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            yield value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def check_builtins(path: str, source: str, tree: dict) -> None:
    """Refuse a module that refers to a built-in reaching outside the engine, found on the parsed
    module (a call, a `with` target, a reference split over lines alike)."""
    for node in _walk(tree):
        if node.get("type") == "ref" and isinstance(node.get("value"), list):
            name = _forbidden(node["value"])
            if name:
                where = next(
                    (f"{path}:{n}" for n, line in enumerate(source.splitlines(), 1) if name in strip_comment(line)),
                    path,
                )
                raise PolicyError(
                    f"{where}: built-in {name} reaches outside the policy engine and is not allowed in governance "
                    "policies (decisions must depend only on the input and the bundle's data)"
                )


def uses_with(tree: dict) -> bool:
    return any("with" in node and isinstance(node.get("with"), list) for node in _walk(tree))


SEVERITIES = ("rollback", "review", "alert")


# Which thresholds and severities the policies use: the organisation must set each of them.
_THRESHOLD_USE = re.compile(r'\bthreshold\(\s*"(\w+)"\s*\)')
_FINDING_USE = re.compile(r'\bfinding\(\s*"(\w+)"')


@dataclass(frozen=True)
class PolicyBundle:
    """The policies and their data, with the identity recorded in every decision.

    The most specific level of data that sets a value wins (model, then team, then organisation);
    two files of one level setting a value differently are a conflict, refused when the bundle is
    loaded.
    """

    root: str
    modules: dict[str, str]  # relative path -> source
    data: dict = field(default_factory=dict)
    digest: str = ""
    revision: str | None = None  # the manifest's revision, else the bundle's Git commit
    roots: tuple[str, ...] = ()
    modules_with: frozenset[str] = frozenset()  # modules that use `with` (regopy crashes on it)

    def with_registry(self, specs: dict) -> PolicyBundle:
        """The bundle with the model registry as `data.registry`: `teams` (model -> owning team; the
        team whose thresholds apply is the registry's, not whatever team label the manifest under
        review carries) and `versions` (model -> version -> its image; a Deployment's model-version
        label must be a version of its own model, and the image it runs must be that version's).
        The registry joins the digest, since it changes decisions."""
        registry = {
            "teams": {name: spec.team for name, spec in sorted(specs.items()) if spec.team},
            "versions": {
                name: {version: declared.image for version, declared in sorted(spec.versions.items())}
                for name, spec in sorted(specs.items())
            },
        }
        if "registry" in self.data:
            raise PolicyError(f"policy bundle {self.root}: data.registry is reserved for the model registry")
        identity = self.digest + json.dumps(registry, sort_keys=True)
        digest = "sha256:" + hashlib.sha256(identity.encode()).hexdigest()
        return replace(self, data={**self.data, "registry": registry}, digest=digest)

    @classmethod
    def load(cls, root: str | Path) -> PolicyBundle:
        root = Path(root)
        if not root.is_dir():
            raise PolicyError(f"policy bundle {root} is not a directory")
        modules: dict[str, str] = {}
        packages: dict[str, str] = {}
        modules_with: set[str] = set()
        levels: dict[tuple[str, ...], list[tuple[str, dict]]] = {}
        hasher = hashlib.sha256()
        manifest = _read_manifest(root)
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
            rel = path.relative_to(root).as_posix()
            if path.suffix == ".rego":
                source = path.read_text()
                tree = parse_policy(str(path), source)
                check_builtins(str(path), source, tree)
                modules[rel] = source
                packages[rel] = ".".join(str(t["value"]) for t in tree["package"]["path"][1:])
                if uses_with(tree):
                    modules_with.add(rel)
            elif path.suffix in (".json", ".yaml", ".yml"):
                if path.name not in DATA_NAMES:
                    raise PolicyError(
                        f"{path}: OPA reads policy data only from files named {' or '.join(DATA_NAMES)}, whose "
                        "folder is their path in data; rename it or move it out of the bundle"
                    )
                levels.setdefault(_data_level(path, rel), []).append((str(path), _read_data(path)))
            else:
                continue
            hasher.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
        if not modules:
            raise PolicyError(f"policy bundle {root} holds no .rego file")
        roots = tuple(manifest.get("roots", [""]))
        _check_roots(root, roots, packages, bool(levels))
        if manifest:
            hasher.update(b".manifest\0" + (root / MANIFEST).read_bytes())
        governance = _merge_levels(levels, modules, root)
        revision = manifest.get("revision") or _git_revision(root)
        return cls(
            str(root),
            modules,
            {DATA_ROOT: governance},
            "sha256:" + hasher.hexdigest(),
            revision,
            roots,
            frozenset(modules_with),
        )

    @property
    def policy_modules(self) -> dict[str, str]:
        return {k: v for k, v in self.modules.items() if not k.endswith("_test.rego")}

    @property
    def test_modules(self) -> dict[str, str]:
        return {k: v for k, v in self.modules.items() if k.endswith("_test.rego")}


def _read_manifest(root: Path) -> dict:
    """The bundle's `.manifest`, checked as OPA reads it: a JSON object with known keys."""
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path}:{exc.lineno}: the bundle manifest is not valid JSON: {exc.msg}") from None
    if not isinstance(manifest, dict):
        raise PolicyError(f"{path}: the bundle manifest must be a JSON object")
    unknown = sorted(set(manifest) - MANIFEST_KEYS)
    if unknown:
        raise PolicyError(
            f"{path}: unknown manifest key(s) {', '.join(unknown)} (known: {', '.join(sorted(MANIFEST_KEYS))})"
        )
    if not isinstance(manifest.get("revision", ""), str):
        raise PolicyError(f"{path}: revision must be a string")
    roots = manifest.get("roots", [""])
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise PolicyError(f"{path}: roots must be a list of strings")
    if manifest.get("rego_version", 1) != 1:
        raise PolicyError(f"{path}: rego_version must be 1 (Rego v1 only)")
    return manifest


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(r == "" or path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _check_roots(root: Path, roots: tuple[str, ...], packages: dict[str, str], has_data: bool) -> None:
    """As OPA activates a bundle: every package and the bundle's data must lie under its roots."""
    for rel, package in sorted(packages.items()):
        if not _under(package.replace(".", "/"), roots):
            raise PolicyError(
                f"{root / rel}: package {package} is outside the bundle's roots ({', '.join(roots)}) in {MANIFEST}"
            )
    if has_data and not _under(DATA_ROOT, roots):
        raise PolicyError(f"{root / MANIFEST}: the roots must include {DATA_ROOT}, where the bundle's data is")


def _data_level(path: Path, rel: str) -> tuple[str, ...]:
    parts = rel.split("/")
    if parts == [DATA_ROOT, path.name]:
        return ("org",)
    if len(parts) == 4 and parts[0] == DATA_ROOT and parts[1] in ("teams", "models"):
        return (parts[1], parts[2])
    raise PolicyError(
        f"{path}: policy data must sit in {DATA_ROOT}/ (organisation), {DATA_ROOT}/teams/<team>/ or "
        f"{DATA_ROOT}/models/<model>/"
    )


def _read_data(path: Path) -> dict:
    try:
        if path.suffix == ".json":
            document = json.loads(path.read_text())
        else:
            from ruamel.yaml import YAML

            text = path.read_text()
            check_yaml_bounds(text, str(path))
            document = YAML(typ="safe").load(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path}:{exc.lineno}: policy data is not valid JSON: {exc.msg}") from exc
    except BadInputError as exc:
        raise PolicyError(str(exc)) from None
    except Exception as exc:
        raise PolicyError(f"{path}: policy data is not valid YAML: {exc}") from exc
    document = document or {}
    if not isinstance(document, dict):
        raise PolicyError(f"{path}: policy data must be a mapping with 'thresholds' and/or 'severity'")
    unknown = set(document) - {"thresholds", "severity", "budgets"}
    if unknown:
        raise PolicyError(
            f"{path}: unknown policy data key(s) {', '.join(sorted(unknown))}; expected 'thresholds', 'severity' "
            "and/or 'budgets'"
        )
    if "budgets" in document:
        from rai_pipelines.costs.budget_declarations import parse_budgets

        try:
            parse_budgets(document["budgets"], f"{path}: budgets")
        except BadInputError as exc:
            raise PolicyError(str(exc)) from None
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
                f"{root}: the organisation level ({ORG_DATA}) must set {section} {', '.join(missing)}: "
                "the policies use them, and an unset value would never deny"
            )
    budgets = {}
    for level, documents in levels.items():
        for path, document in documents:
            if "budgets" not in document:
                continue
            if level != ("org",):
                raise PolicyError(
                    f"{path}: budgets are declared once, at the organisation level ({ORG_DATA}), by model, team "
                    "and workload"
                )
            budgets = document["budgets"]
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
        **org,
        "budgets": budgets or {},
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
