"""A Rego policy bundle: its modules and data files (an OPA bundle laid out as a folder), the
checks that refuse what the embedded engine would misread (Rego v0 syntax, built-ins that reach
outside), and its revision and digest for the decision log."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

from rai_pipelines.core.errors import PolicyError

DEFAULT_PACKAGE = "apexlogic.ai_governance"


# A top-level rule head that opens its body without `if`: Rego v0.
_FORBIDDEN_BUILTINS = re.compile(r"\b(http\.send|net\.[a-z_]+|opa\.runtime)\s*\(")


TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)\s+if\b", re.M)


WITH_KEYWORD = re.compile(r"\bwith\s+(input|data)\b[^\n]*\bas\b")


PACKAGE_LINE = re.compile(r"^package\s+([\w.]+)", re.M)


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


def strip_comment(line: str) -> str:
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
        line = strip_comment(raw).rstrip()
        if WITH_KEYWORD.search(line):
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
        m = _FORBIDDEN_BUILTINS.search(strip_comment(line))
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
