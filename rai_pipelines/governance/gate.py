"""The pre-deployment gate: the same policies as the loop, run on candidate manifests in CI/CD.

Like conftest: exit 0 when every manifest passes, 1 when a policy denies, and 2 when the gate
could not decide (unreadable manifest, failed render, missing bundle, engine error): it fails
closed. Results are also written as JUnit XML and SARIF 2.1.0 for GitHub and GitLab.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

from ruamel.yaml import YAML

from rai_pipelines.core.decision_log import DecisionLog, decision_id, digest
from rai_pipelines.core.errors import BadInputError, GitOpsError, PolicyError, RaiError
from rai_pipelines.core.registry import validate_model_version
from rai_pipelines.core.yamlfile import check_yaml_bounds
from rai_pipelines.gitops.render import kustomize_render
from rai_pipelines.governance.bundle import DEFAULT_PACKAGE, PolicyBundle
from rai_pipelines.governance.rego import (
    PolicyDecision,
    PolicyEngine,
    decision_log_labels,
    decision_query,
    evaluate_decisions,
)

EXIT_PASS, EXIT_DENY, EXIT_ERROR = 0, 1, 2


@dataclass
class GateItem:
    source: str  # file, or kustomize directory
    manifest: dict
    decision: PolicyDecision | None = None
    decision_id: str | None = None
    skipped: str | None = None  # why the manifest was not evaluated (not a Deployment)
    error: str | None = None  # why it could not be decided

    @property
    def name(self) -> str:
        meta = self.manifest.get("metadata") or {}
        return f"{self.manifest.get('kind', '?')}/{meta.get('name', '?')}"


@dataclass
class GateResult:
    items: list[GateItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # the paths the gate was given

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_ERROR
        if any(i.decision and not i.decision.allowed for i in self.items):
            return EXIT_DENY
        return EXIT_PASS


def load_manifests(paths: list[str]) -> list[tuple[str, dict]]:
    """Every document of the given YAML files, and of the given kustomize directories rendered."""
    out: list[tuple[str, dict]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_symlink():
            # A link can point anywhere (a secret outside the repository): its lines would be quoted
            # into the report, JUnit and SARIF. Manifests are read as regular files only.
            raise BadInputError(f"{path}: a symbolic link; the gate reads manifests only as regular files")
        if path.is_dir():
            if not any((path / n).exists() for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
                raise BadInputError(f"{path}: a directory given to the gate must be a kustomization")
            out.extend((str(path), doc) for doc in kustomize_render(path))
        elif path.is_file():
            text = path.read_text()
            check_yaml_bounds(text, str(path))  # before anything is expanded
            try:
                docs = [d for d in YAML(typ="safe").load_all(text) if d is not None]
            except Exception as exc:
                raise BadInputError(f"{path}: not valid YAML: {exc}") from exc
            for number, doc in enumerate(docs, start=1):
                doc = json.loads(json.dumps(doc, default=str))
                out.extend((str(path), item) for item in flatten_objects(doc, f"{path}: document {number}"))
        else:
            raise BadInputError(f"{path}: no such file or directory")
    if not out:
        raise BadInputError("the gate was given no manifest")
    return out


MAX_LIST_DEPTH = 8


def flatten_objects(document, where: str, depth: int = 0) -> list[dict]:
    """The Kubernetes objects of a document, lists flattened as kubectl flattens them: any kind
    ending in `List` (`List`, `DeploymentList`, ...) whose `items` are objects, nested lists
    included. A document the gate cannot classify (not a mapping, no string apiVersion and kind)
    is an error: the gate fails closed rather than skip what it does not understand."""
    if not isinstance(document, dict):
        raise BadInputError(f"{where}: not a Kubernetes object (a mapping)")
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if not isinstance(kind, str) or not kind or not isinstance(api_version, str) or not api_version:
        raise BadInputError(f"{where}: a Kubernetes object needs a string apiVersion and kind, got {kind!r}")
    if kind.endswith("List") and "items" in document:
        if depth >= MAX_LIST_DEPTH:
            raise BadInputError(f"{where}: lists nested deeper than {MAX_LIST_DEPTH} levels")
        items = document["items"]
        if not isinstance(items, list):
            raise BadInputError(f"{where}: the items of a {kind} must be a list of Kubernetes objects")
        return [
            obj for i, item in enumerate(items) for obj in flatten_objects(item, f"{where} {kind} item {i}", depth + 1)
        ]
    return [document]


def load_facts(path: str) -> dict:
    """data.ai_models from a JSON file: an object keyed by model version, or a list of governance
    facts rows (the latest row of each version is used)."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise BadInputError(f"{path}: facts file not found") from exc
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path}:{exc.lineno}: facts are not valid JSON: {exc.msg}") from exc
    if isinstance(document, list):
        from rai_pipelines.governance.facts import ai_models_document

        for i, row in enumerate(document):
            if not isinstance(row, dict) or not {"date", "model_name", "model_version"} <= set(row):
                raise BadInputError(f"{path}: facts row {i} needs date, model_name and model_version")
        return ai_models_document(document)
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise BadInputError(f"{path}: facts must be an object keyed by model version, or a list of facts rows")
    return document


def run_gate(
    engine: PolicyEngine,
    bundle: PolicyBundle,
    manifest_paths: list[str],
    facts_path: str | None,
    log: DecisionLog | None = None,
    package: str = DEFAULT_PACKAGE,
    candidate: dict | None = None,
) -> GateResult:
    """Evaluate the manifests with the facts of `facts_path` and, when given, the `candidate`'s
    facts computed from a validation set (these take precedence for the candidate's version)."""
    result = GateResult(inputs=list(manifest_paths))
    try:
        manifests = load_manifests(manifest_paths)
        ai_models = load_facts(facts_path) if facts_path else {}
    except (RaiError, OSError) as exc:
        result.errors.append(str(exc))
        return result
    if candidate is not None:
        ai_models = {**ai_models, candidate["model_version"]: candidate}
    for source, manifest in manifests:
        item = GateItem(source, manifest)
        result.items.append(item)
        if manifest.get("kind") != "Deployment":
            item.skipped = f"not a Deployment ({manifest.get('kind')}): the governance policies apply to Deployments"
            continue
        template = (manifest.get("spec") or {}).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        version = labels.get("model-version")
        if version is not None:
            try:
                validate_model_version(version, f"{source}: {item.name} label model-version")
            except BadInputError as exc:
                item.error = str(exc)
                result.errors.append(str(exc))
    to_evaluate = [i for i in result.items if i.skipped is None and i.error is None]
    if not any(i.manifest.get("kind") == "Deployment" for i in result.items):
        result.errors.append("no Deployment among the manifests: nothing for the governance policies to decide")
        return result
    try:
        decisions = evaluate_decisions(engine, bundle, [i.manifest for i in to_evaluate], ai_models, package)
    except (PolicyError, GitOpsError) as exc:
        result.errors.append(str(exc))
        for item in to_evaluate:
            item.error = "not decided: the policy evaluation failed"
        return result
    facts_digest = digest(ai_models)
    query = decision_query(package)
    for item, decision in zip(to_evaluate, decisions, strict=True):
        item.decision = decision
        input_digest = digest(item.manifest)
        item.decision_id = decision_id(bundle.digest, query, input_digest, facts_digest)
        if log is not None:
            log.append(
                {
                    "decision_id": item.decision_id,
                    "kind": "gate",
                    "path": query.removeprefix("data.").replace(".", "/"),
                    "bundles": {"policies": {"revision": bundle.revision, "digest": bundle.digest}},
                    "input": item.manifest,
                    "input_digest": input_digest,
                    "facts_digest": facts_digest,
                    "source": item.source,
                    "result": decision.as_dict(),
                    "metrics": decision.metrics,
                    "labels": decision_log_labels(decision.engine),
                    "action": {"type": "gate_pass" if decision.allowed else "gate_fail"},
                }
            )
    return result


def report_text(result: GateResult, bundle: PolicyBundle) -> str:
    lines = []
    for error in result.errors:
        lines.append(f"ERROR - {error}")
    lines.append("")
    passed = failed = warned = skipped = 0
    for item in result.items:
        where = f"{item.source} - {item.name}"
        if item.skipped:
            skipped += 1
            lines.append(f"SKIP - {where} - {item.skipped}")
            continue
        if item.decision is None:
            lines.append(f"ERROR - {where} - {item.error or 'not decided'}")
            continue
        for message in item.decision.warn:
            warned += 1
            lines.append(f"WARN - {where} - {message}")
        for violation in item.decision.failures:
            lines.append(f"FAIL - {where} - {violation['msg']} [{violation['rule']}, {violation['severity']}]")
        if item.decision.allowed:
            passed += 1
        else:
            failed += 1
    lines.append("")
    lines.append(
        f"{passed + failed + skipped} manifests: {passed} passed, {failed} failed, {warned} warnings, "
        f"{skipped} skipped, {len(result.errors)} errors (policies {bundle.revision or bundle.digest})"
    )
    return "\n".join(lines)


def write_junit(result: GateResult, path: str) -> None:
    suite = ET.Element("testsuite", name="rai-pipelines gate")
    failures = errors = skipped = 0
    for item in result.items:
        case = ET.SubElement(suite, "testcase", classname=item.source, name=item.name)
        if item.skipped:
            skipped += 1
            ET.SubElement(case, "skipped", message=item.skipped)
        elif item.decision is None:
            errors += 1
            ET.SubElement(case, "error", message=item.error or "not decided")
        elif not item.decision.allowed:
            failures += 1
            for violation in item.decision.failures:
                failure = ET.SubElement(case, "failure", message=violation["msg"], type=violation["rule"])
                failure.text = f"severity: {violation['severity']}; decision {item.decision_id}"
        if item.decision is not None and item.decision.warn:
            ET.SubElement(case, "system-out").text = "\n".join(f"WARN: {w}" for w in item.decision.warn)
    for message in result.errors:
        errors += 1
        case = ET.SubElement(suite, "testcase", classname="rai-pipelines", name="gate")
        ET.SubElement(case, "error", message=message)
    suite.set("tests", str(len(suite.findall("testcase"))))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def _artifact(source: str) -> str:
    """The file a finding points at: a manifest file as given, or a kustomize directory's
    kustomization file (code scanning shows results on files, not folders)."""
    from rai_pipelines.gitops.render import KUSTOMIZATION_FILES

    folder = Path(source)
    if folder.is_dir():
        found = next((name for name in KUSTOMIZATION_FILES if (folder / name).is_file()), None)
        if found is not None:
            return f"{source.rstrip('/')}/{found}"
    return source


def write_sarif(result: GateResult, path: str) -> None:
    rules: dict[str, dict] = {}
    results = []
    for item in result.items:
        if item.decision is None:
            continue
        findings = [(v["rule"], "error", v["msg"]) for v in item.decision.failures]
        findings += [(w["rule"], "warning", w["msg"]) for w in item.decision.warning_findings]
        for rule, level, message in findings:
            rules.setdefault(rule, {"id": rule, "shortDescription": {"text": f"rai-pipelines policy rule {rule}"}})
            results.append(
                {
                    "ruleId": rule,
                    "level": level,
                    "message": {"text": f"{item.name}: {message}"},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": _artifact(item.source)},
                                "region": {"startLine": 1},
                            }
                        }
                    ],
                    "partialFingerprints": {"decisionId": item.decision_id or ""},
                }
            )
    where = _artifact(result.items[0].source if result.items else (result.inputs[0] if result.inputs else "."))
    for message in result.errors:
        rules.setdefault("gate-error", {"id": "gate-error", "shortDescription": {"text": "the gate could not decide"}})
        results.append(
            {
                "ruleId": "gate-error",
                "level": "error",
                "message": {"text": message},
                # GitHub refuses a SARIF file whose results lack a location.
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": where}, "region": {"startLine": 1}}}],
            }
        )
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "rai-pipelines",
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }
    Path(path).write_text(json.dumps(sarif, indent=2))
