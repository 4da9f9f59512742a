"""Evaluating Rego policies: the engines behind one interface, the bounds on their input, and the
decision object the loop and the gate read.

Two engines: OPA's own evaluator (`opa`, the default: opa.py) and rego-cpp (`regopy`, the second).
Both are held to one golden table of decisions; where they differ OPA is right. regopy 1.5.2's
known edges: a query whose value is `false` comes back undefined (so callers query objects), `with`
crashes the process (so it refuses a bundle whose policies use it), and it reads a number near the
smallest or largest double as an error (engine_safe clamps them).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from rai_pipelines.core.errors import PolicyError
from rai_pipelines.governance.bundle import DEFAULT_PACKAGE, PolicyBundle
from rai_pipelines.governance.opa import CompiledCache, OpaEvaluator, combined_data, opa_bindings, opa_error_text


class PolicyEngine(Protocol):
    name: str

    def evaluate(self, bundle: PolicyBundle, query: str, inputs: Iterable[dict], data: dict) -> list[object]: ...


# Inputs are Kubernetes manifests: far below these. A larger or deeper input is refused before it
# reaches the engine, so a pathological document cannot stall a sensor tick.
MAX_INPUT_BYTES = 1_000_000
MAX_INPUT_DEPTH = 32


def check_input(document: object, where: str) -> None:
    """Refuse an input nested too deep (checked first, level by level: serialising it would recurse)
    or too large, before any engine sees it."""
    level, depth = [document], 1
    while level:
        if depth > MAX_INPUT_DEPTH:
            raise PolicyError(f"{where}: input nested deeper than {MAX_INPUT_DEPTH} levels")
        below = []
        for value in level:
            children = value.values() if isinstance(value, dict) else value
            below.extend(child for child in children if isinstance(child, dict | list))
        level, depth = below, depth + 1
    size = len(json.dumps(document, default=str))
    if size > MAX_INPUT_BYTES:
        raise PolicyError(f"{where}: input of {size:,} bytes exceeds the limit of {MAX_INPUT_BYTES:,}")


def _parse_output(output, where: str = "") -> object:
    text = str(output)
    if not output.ok():
        detail = str(output.node() if callable(output.node) else output.node).strip()
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
    """rego-cpp, the second engine. The compiled bundle is cached, keyed by the digests of the policy
    bundle, the query and the data, so a sensor or a gate evaluating many inputs compiles once."""

    name = "regopy"

    def __init__(self, cache_size: int = 4):
        self._cache = CompiledCache(cache_size)
        self._cache_size = cache_size

    def __getstate__(self) -> dict:
        # Compiled interpreters are native objects: they must not travel to a child process.
        return {"_cache_size": self._cache_size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["_cache_size"])

    def _compiled(self, bundle: PolicyBundle, query: str, data: dict):
        if bundle.modules_with - set(bundle.test_modules):
            raise PolicyError(
                f"policy bundle {bundle.root}: {', '.join(sorted(bundle.modules_with))} use `with`, which crashes "
                "regopy 1.5.2; evaluate them with the OPA engine"
            )
        return self._cache.get(bundle, query, data, lambda combined: self._build(bundle, query, combined))

    @staticmethod
    def _build(bundle: PolicyBundle, query: str, combined: dict):
        from regopy import Interpreter

        rego = Interpreter()
        for name, source in bundle.policy_modules.items():
            rego.add_module(name, source)
        rego.add_data_json(engine_json(combined))
        compiled = rego.build(query, [])
        if not compiled.ok():
            raise PolicyError(f"policy bundle {bundle.root} does not compile for query {query}")
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
    """Runs another engine in a spawned child process (never a fork: the Go runtime of OPA must not be
    forked) and kills it after `timeout_s`: both engines are native code that cannot be interrupted
    in-process, and a sensor tick must not stall. A crash of the child (a native panic) fails
    closed, as an error."""

    def __init__(self, inner: PolicyEngine, timeout_s: float):
        self.inner, self.timeout_s = inner, timeout_s
        self.name = inner.name

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
    positive values under 1e-300 become 0.0, negative ones over -1e-300 become -1e-300 (still
    negative), and magnitudes over 1e300 are clamped to 1e300, which keeps every comparison with
    zero and with a realistic threshold. NaN and infinity, which JSON cannot carry, are an error."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise PolicyError(f"a policy input or fact is {value!r}, which JSON cannot carry")
        if 0 < value < _SMALLEST_ACCEPTED:
            return 0.0
        if -_SMALLEST_ACCEPTED < value < 0:
            # the sign survives: a policy's `score >= 0` must not pass a negative value as zero
            return -_SMALLEST_ACCEPTED
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
    # OPA's decision-log metrics (timer_rego_query_eval_ns, this input's share of the evaluation)
    metrics: dict = field(default_factory=dict, compare=False)
    engine: str = field(default="", compare=False)
    # False when the model-version label is not what runs: the facts looked up under it cannot be
    # trusted, so nothing is done on them but an alert (hardening: a label is written by anyone).
    trusted: bool = True
    # Each warning with the rule that raised it, when the package names them (`warnings`).
    warnings: list[dict] = field(default_factory=list, compare=False)

    @property
    def allowed(self) -> bool:
        return not self.deny

    @property
    def failures(self) -> list[dict]:
        """Every reason the input is denied: the violations, and a plain `deny` message a module adds
        without a violation (rule `deny`, severity `alert`), so that no denial goes unreported."""
        explained = {str(v.get("msg")) for v in self.violations}
        plain = [{"rule": "deny", "msg": m, "severity": "alert"} for m in self.deny if m not in explained]
        return [*self.violations, *plain]

    @property
    def warning_findings(self) -> list[dict]:
        """Every warning with its rule: the package's `warnings`, and a plain `warn` message a module
        adds without one (rule `warn`), so that no warning goes unreported."""
        explained = {str(w.get("msg")) for w in self.warnings}
        plain = [{"rule": "warn", "msg": m} for m in self.warn if m not in explained]
        return [*self.warnings, *plain]

    @property
    def remediation(self) -> str:
        if not self.trusted:
            return "alert"
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
    registry_versions = (bundle.data.get("registry") or {}).get("versions") or {}
    for manifest in manifests:
        check_input(manifest, f"{manifest.get('kind')} {(manifest.get('metadata') or {}).get('name')}")
    started = time.perf_counter_ns()
    results = engine.evaluate(bundle, query, manifests, {"ai_models": ai_models})
    metrics = {"timer_rego_query_eval_ns": (time.perf_counter_ns() - started) // max(1, len(manifests))}
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
        warnings = result.get("warnings", [])
        if not isinstance(warnings, list) or not all(
            isinstance(w, dict) and isinstance(w.get("rule"), str) and isinstance(w.get("msg"), str) for w in warnings
        ):
            raise PolicyError(f"{query} for {name}: warnings must be objects with a rule and a msg, got {warnings!r}")
        warnings = sorted(warnings, key=lambda w: (w["rule"], w["msg"]))
        deny = sorted(map(str, result["deny"]))
        mismatch = version_mismatch(manifest, registry_versions)
        if mismatch:
            violations = [*violations, {"rule": "version_mismatch", "msg": mismatch, "severity": "alert"}]
            deny = sorted({*deny, mismatch})
        out.append(
            PolicyDecision(
                deny,
                sorted(map(str, result["warn"])),
                violations,
                metrics,
                engine.name,
                trusted=not mismatch,
                warnings=warnings,
            )
        )
    return out


def _image_tag(image: str) -> str | None:
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[1] if ":" in name else None


def version_mismatch(manifest: dict, registry_versions: dict) -> str | None:
    """Why a Deployment's model-version label is not what runs, or None. With the app's model in the
    registry, the label must be one of its versions and a container must run that version's image;
    without it, a container image must be tagged with the label. The policies then see facts looked
    up under a label someone could have written to borrow another version's (or model's) facts."""
    if manifest.get("kind") != "Deployment":
        return None
    template = (manifest.get("spec") or {}).get("template") or {}
    version = ((template.get("metadata") or {}).get("labels") or {}).get("model-version")
    if not isinstance(version, str):
        return None  # no label at all: the policies' own violation
    app = ((manifest.get("metadata") or {}).get("labels") or {}).get("app", "")
    containers = (template.get("spec") or {}).get("containers") or []
    images = [c["image"] for c in containers if isinstance(c, dict) and isinstance(c.get("image"), str)]
    declared = registry_versions.get(app) if isinstance(app, str) else None
    if declared is not None:
        if version not in declared:
            return (
                f"Model version {version} is not a version of {app} in the model registry: its facts cannot be trusted."
            )
        if declared[version] not in images:
            return (
                f"No container runs {declared[version]}, the image of {app} {version}: the model-version label "
                "is not what runs."
            )
        return None
    if version not in {_image_tag(image) for image in images}:
        return f"No container image is tagged {version}, the model-version label: the label is not what runs."
    return None


def decision_log_labels(engine_name: str) -> dict:
    """OPA's decision-log `labels`: who decided, with which engine."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("rai-pipelines")
    except PackageNotFoundError:
        ours = "unknown"
    return {"id": "rai-pipelines", "version": ours, "engine": engine_name}


def validate_bundle_compiles(bundle: PolicyBundle, package: str = DEFAULT_PACKAGE) -> None:
    """Compile every module (tests included) with OPA, so that an error surfaces with its file, line
    and column, and check that the package's decision is defined."""
    bindings = opa_bindings()
    engine = bindings.OpaEngine()
    try:
        for name, source in bundle.modules.items():
            engine.add_policy(name, source)
        engine.add_data(combined_data(bundle.data, {}))
        engine.eval_query(f"x := {decision_query(package)}", {})
    except bindings.OpaError as exc:
        raise PolicyError(f"policy bundle {bundle.root}: {opa_error_text(exc, bundle.modules)}") from None
    finally:
        engine.close()


ENGINES = {"opa": OpaEvaluator, "regopy": RegopyEngine}


def make_engine(name: str = "opa") -> PolicyEngine:
    """The engine by name; OPA's evaluator unless regopy is chosen. A missing engine is an error
    that says how to install it, never a silent fall-back to the other."""
    if name not in ENGINES:
        raise PolicyError(f"unknown policy engine {name!r}: choose {' or '.join(ENGINES)}")
    if name == "opa":
        opa_bindings()
    return ENGINES[name]()
