"""The bundle's own unit tests, run as `opa test` runs them: every `test_*` rule of every module, on
OPA's evaluator with the bundle's data, a report in the style of `opa test -v`, and OPA's coverage
report (`opa test --coverage`) merged over all the tests."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from rai_pipelines.core.errors import PolicyError
from rai_pipelines.governance.bundle import PolicyBundle, parse_policy
from rai_pipelines.governance.opa import combined_data, opa_bindings, opa_error_text


@dataclass(frozen=True)
class PolicyTestResult:
    file: str
    package: str
    name: str
    passed: bool
    line: int = 0  # where the test rule starts in its file
    error: str = ""  # an evaluation error (the test neither passed nor failed)
    duration_ms: float = 0.0

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class PolicyTestReport:
    results: list[PolicyTestResult]
    # file -> {"covered": set of lines, "not_covered": set of lines}, over every test
    coverage: dict[str, dict[str, set[int]]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def coverage_percent(self, file: str | None = None) -> float:
        files = [file] if file else list(self.coverage)
        covered = sum(len(self.coverage[f]["covered"]) for f in files)
        total = covered + sum(len(self.coverage[f]["not_covered"]) for f in files)
        return 100.0 * covered / total if total else 100.0

    def coverage_document(self) -> dict:
        """OPA's coverage report (`opa test --coverage` prints it as JSON)."""

        def ranges(lines: set[int]) -> list[dict]:
            out: list[dict] = []
            for line in sorted(lines):
                if out and out[-1]["end"]["row"] == line - 1:
                    out[-1]["end"]["row"] = line
                else:
                    out.append({"start": {"row": line}, "end": {"row": line}})
            return out

        files = {}
        for name, lines in sorted(self.coverage.items()):
            entry: dict = {"covered": ranges(lines["covered"])}
            if lines["not_covered"]:
                entry["not_covered"] = ranges(lines["not_covered"])
            entry["covered_lines"] = len(lines["covered"])
            entry["not_covered_lines"] = len(lines["not_covered"])
            entry["coverage"] = round(self.coverage_percent(name), 2)
            files[name] = entry
        return {
            "files": files,
            "covered_lines": sum(len(v["covered"]) for v in self.coverage.values()),
            "not_covered_lines": sum(len(v["not_covered"]) for v in self.coverage.values()),
            "coverage": round(self.coverage_percent(), 2),
        }

    def verbose_text(self) -> str:
        """The report as `opa test -v` prints it: each test by file, PASS/FAIL/ERROR, then totals."""
        lines: list[str] = []
        for file in sorted({r.file for r in self.results}):
            lines.append(f"{file}:")
            for r in (r for r in self.results if r.file == file):
                status = "PASS" if r.passed else ("ERROR" if r.error else "FAIL")
                lines.append(f"data.{r.package}.{r.name}: {status} ({r.duration_ms:.1f}ms)")
                if not r.passed:
                    lines.append(f"  {r.location}: {r.error or 'the test rule is not true'}")
            lines.append("")
        lines.append("-" * 80)
        passed = sum(r.passed for r in self.results)
        failed = sum(1 for r in self.results if not r.passed and not r.error)
        errors = sum(1 for r in self.results if r.error)
        lines.append(f"PASS: {passed}/{len(self.results)}")
        if failed:
            lines.append(f"FAIL: {failed}/{len(self.results)}")
        if errors:
            lines.append(f"ERROR: {errors}/{len(self.results)}")
        return "\n".join(lines)


def _test_rules(path: str, source: str) -> tuple[str, list[tuple[str, int]]]:
    """The module's package and its `test_*` rules, from OPA's syntax tree (with their lines)."""
    tree = parse_policy(path, source)
    package = ".".join(str(t["value"]) for t in tree["package"]["path"][1:])
    names = []
    for rule in tree.get("rules") or []:
        name = (rule.get("head") or {}).get("name", "")
        if name.startswith("test_") and name not in names:
            names.append(name)
    lines = source.splitlines()
    found = []
    for name in names:
        line = next((i for i, text in enumerate(lines, 1) if re.match(rf"\s*{re.escape(name)}\b", text)), 0)
        found.append((name, line))
    return package, found


def run_policy_tests(bundle: PolicyBundle, coverage: bool = False) -> PolicyTestReport:
    """Run every `test_*` rule of the bundle (in any module, as `opa test` does) on OPA's evaluator.
    A test passes when its rule is true; undefined or false fails; an evaluation error is an error."""
    bindings = opa_bindings()
    engine = bindings.OpaEngine()
    root = Path(bundle.root)
    results: list[PolicyTestResult] = []
    merged: dict[str, dict[str, set[int]]] = {}
    try:
        try:
            for name, source in bundle.modules.items():
                engine.add_policy(name, source)
            engine.add_data(combined_data(bundle.data, {}))
        except bindings.OpaError as exc:
            raise PolicyError(f"policy bundle {bundle.root}: {opa_error_text(exc, bundle.modules)}") from None
        for name, source in sorted(bundle.modules.items()):
            package, tests = _test_rules(str(root / name), source)
            for rule, line in tests:
                started = time.perf_counter()
                error, value = "", None
                try:
                    value = engine.eval_document(f"{package}.{rule}", coverage=coverage)
                except bindings.OpaUndefinedError:
                    value = None
                except bindings.OpaError as exc:
                    error = opa_error_text(exc, bundle.modules)
                elapsed = (time.perf_counter() - started) * 1000
                results.append(PolicyTestResult(name, package, rule, value is True, line, error, elapsed))
                if coverage and engine.last_coverage:
                    _merge_coverage(merged, engine.last_coverage)
    finally:
        engine.close()
    for lines in merged.values():
        lines["not_covered"] -= lines["covered"]
    return PolicyTestReport(results, merged)


def _merge_coverage(merged: dict, report: dict) -> None:
    for file, entry in (report.get("files") or {}).items():
        lines = merged.setdefault(file, {"covered": set(), "not_covered": set()})
        for key in ("covered", "not_covered"):
            for span in entry.get(key) or []:
                lines[key].update(range(span["start"]["row"], span["end"]["row"] + 1))
