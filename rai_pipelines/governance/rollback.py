"""Rollback as a Git change: pin the last compliant model version in the overlay, prove the
render, commit with trailers, push. Argo CD or Flux then reconcile the cluster to it."""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rai_pipelines.core.errors import BadInputError, GitOpsError, PolicyError
from rai_pipelines.core.registry import ModelSpec, validate_model_version
from rai_pipelines.gitops.git import GitOpsCheckout, run_git
from rai_pipelines.gitops.manifests import check_pinned_documents
from rai_pipelines.gitops.sources import SourceOptions, pin_deployment_source, render_deployment_source
from rai_pipelines.governance.bundle import DEFAULT_PACKAGE, PolicyBundle
from rai_pipelines.governance.facts import ai_models_document
from rai_pipelines.governance.rego import PolicyEngine, evaluate_decisions


@dataclass(frozen=True)
class RollbackResult:
    # "committed", "review_branch_pushed", "dry_run" (committed in the checkout, pushed nowhere),
    # "already_remediated" or "no_longer_violating"
    status: str
    target_version: str | None
    commit_sha: str | None
    considered: list
    diff: str = ""
    branch: str | None = None  # where the commit goes (or would go): the review branch or the GitOps branch
    violations: list[str] = field(default_factory=list)  # what the policies deny now
    commit_message: str = ""
    checks: list[str] = field(default_factory=list)  # what was proved of the pinned render before the commit
    fallback_reason: str = ""  # why a review branch was pushed instead of the GitOps branch


def safe_overlay_path(overlay: str) -> str:
    path = PurePosixPath(overlay)
    if path.is_absolute() or ".." in path.parts or not overlay or any(c in overlay for c in "\n\r\0"):
        raise BadInputError(f"overlay path {overlay!r} must be a relative path inside the GitOps repository")
    return str(path)


def _current_deployment(checkout: Path, overlay: str, deployment: str, options: SourceOptions) -> dict:
    for doc in render_deployment_source(checkout, overlay, options):
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == deployment:
            return doc
    raise GitOpsError(f"{overlay}: no Deployment named {deployment} in the rendered source")


def _is_non_fast_forward(error: GitOpsError) -> bool:
    text = str(error)
    return "non-fast-forward" in text or "fetch first" in text


def _is_refused_by_remote(error: GitOpsError) -> bool:
    """The remote received the push and refused it (a protected branch, a pre-receive hook): git
    reports `[remote rejected]`; an unreachable remote or a race is something else."""
    return "[remote rejected]" in str(error)


def rollback_model(
    checkout: GitOpsCheckout,
    spec: ModelSpec,
    overlay: str,
    deployment: str,
    bad_version: str,
    decision_id: str,
    engine: PolicyEngine,
    bundle: PolicyBundle,
    facts_rows: list[dict],
    push_attempts: int = 2,
    review_branch: str | None = None,
    dry_run: bool = False,
    fallback_branch: str | None = None,
    source_options: SourceOptions | None = None,
) -> RollbackResult:
    """Pin the last compliant version and push it to the GitOps branch, or, with `review_branch`,
    to a new branch from which a pull request is opened for a person to merge. With `dry_run`,
    everything up to the push happens (the pin, its render and its checks, the commit in the
    throw-away checkout) and nothing is pushed. With `fallback_branch`, a push the remote refuses
    (a protected branch) is pushed to that branch for review instead.

    Nothing is taken on trust from the request: the deployed version is read from the rendered
    overlay and evaluated again with the current facts, and the pinned render must itself pass
    the policies before it is committed."""
    validate_model_version(bad_version, "rollback: bad version")
    overlay = safe_overlay_path(overlay)
    assert checkout.path is not None
    if not (checkout.path / overlay).resolve().is_relative_to(checkout.path.resolve()):
        raise BadInputError(f"overlay {overlay} resolves outside the GitOps repository (a symbolic link?)")
    options = source_options or SourceOptions(checkout_revisions=(checkout.branch,))
    ai_models = ai_models_document(facts_rows)
    manifest = _current_deployment(checkout.path, overlay, deployment, options)
    deployed = manifest["spec"]["template"].get("metadata", {}).get("labels", {}).get("model-version")
    if deployed != bad_version:
        return RollbackResult("already_remediated", deployed, None, [])
    current = evaluate_decisions(engine, bundle, [manifest], ai_models)[0]
    if current.remediation not in ("rollback", "review"):
        return RollbackResult("no_longer_violating", bad_version, None, [], violations=current.deny)
    target, considered = choose_rollback_target(
        engine, bundle, manifest, spec.name, bad_version, facts_rows, {v: d.image for v, d in spec.versions.items()}
    )
    declared = spec.version(target)
    image = declared.image
    note = f"decision {decision_id}; {bad_version} violated policy"
    for attempt in range(1, push_attempts + 1):
        automation = pin_deployment_source(
            checkout.path,
            overlay,
            deployment,
            image,
            target,
            note,
            options,
            declared.serving.replicas,
            declared.serving.instance_type,
        )
        documents = render_deployment_source(checkout.path, overlay, options)
        render = check_pinned_documents(documents, overlay, deployment, image, target)
        pinned = evaluate_decisions(engine, bundle, [render.deployment], ai_models)[0]
        if not pinned.allowed:
            raise NoCompliantVersion(
                f"{spec.name}: the overlay pinned to {target} renders a Deployment the policies deny "
                f"({'; '.join(pinned.deny)}); rollback refused, alert raised"
            )
        checks = [*render.checks(), f"the policies ({bundle.revision or bundle.digest}) allow the pinned render"]
        diff = run_git(["diff"], cwd=checkout.path)
        body = "\n".join(
            [f"Policy {bundle.revision or bundle.digest} denies {spec.name} {bad_version}:"]
            + [f"- {v}" for v in current.deny]
            + ["", f"Restores {target}, the most recent version the same policies allow with its own facts."]
            + ["", "Checked before this commit:"]
            + [f"- {check}" for check in checks]
            + (["", "Image automation neutralised:"] + [f"- {a}" for a in automation] if automation else [])
        )
        sha = checkout.commit(
            f"rollback({spec.name}): pin {target}, {bad_version} violates policy",
            body,
            {
                "Rai-Decision-Id": decision_id,
                "Rai-Model": spec.name,
                "Rai-Bad-Version": bad_version,
                "Rai-Restored-Version": target,
                "Rai-Policy-Digest": bundle.digest,
            },
        )
        message = run_git(["log", "-1", "--format=%B"], cwd=checkout.path).strip()
        destination = review_branch or checkout.branch
        if dry_run:
            return RollbackResult("dry_run", target, sha, considered, diff, destination, current.deny, message, checks)
        try:
            checkout.push(review_branch)
            status = "committed" if review_branch is None else "review_branch_pushed"
            return RollbackResult(status, target, sha, considered, diff, destination, current.deny, message, checks)
        except GitOpsError as error:
            if fallback_branch and review_branch is None and _is_refused_by_remote(error):
                checkout.push(fallback_branch)
                reason = f"{checkout.branch} refused the push ({_refusal(error)}): pushed for review instead"
                return RollbackResult(
                    "review_branch_pushed",
                    target,
                    sha,
                    considered,
                    diff,
                    fallback_branch,
                    current.deny,
                    message,
                    checks,
                    reason,
                )
            if attempt == push_attempts or not _is_non_fast_forward(error):
                raise
            # Someone pushed in between: start again from the remote's head, re-check, re-apply.
            run_git(["reset", "--quiet", "--hard", "HEAD~1"], cwd=checkout.path)
            checkout.rebase_onto_remote()
            manifest = _current_deployment(checkout.path, overlay, deployment, options)
            if manifest["spec"]["template"]["metadata"]["labels"].get("model-version") != bad_version:
                return RollbackResult("already_remediated", target, None, considered)
    raise AssertionError("unreachable")


def _refusal(error: GitOpsError) -> str:
    """What the remote said when it refused (its hook's or its branch protection's own words)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    remote = [m.group(1).strip() for line in lines if (m := re.search(r"\bremote:(.*)", line)) and m.group(1).strip()]
    return "; ".join(remote[:3]) or next((line for line in lines if "[remote rejected]" in line), "refused")


class NoCompliantVersion(PolicyError):
    """No earlier version is known to comply: the rollback is refused and the violation alerted."""


def choose_rollback_target(
    engine: PolicyEngine,
    bundle: PolicyBundle,
    manifest: dict,
    model_name: str,
    bad_version: str,
    facts_rows: list[dict],
    declared_images: dict[str, str],
    package: str = DEFAULT_PACKAGE,
) -> tuple[str, list[tuple[str, list[str]]]]:
    """The most recently measured version of the model, other than `bad_version`, that the same
    policies allow with its own facts, judged on the Deployment as the pin would leave it (the
    version's label and its declared image). A version with no facts is never chosen: being
    unmeasured is not being compliant. Returns the target and the candidates considered with their
    denials."""
    rows = [r for r in facts_rows if r["model_name"] == model_name]
    last_seen: dict[str, str] = {}
    for row in rows:
        last_seen[row["model_version"]] = max(row["date"], last_seen.get(row["model_version"], ""))
    candidates = sorted(
        (v for v in last_seen if v != bad_version and v in declared_images),
        key=lambda v: last_seen[v],
        reverse=True,
    )
    considered = []
    ai_models = ai_models_document(facts_rows)
    for version in candidates:
        candidate = copy.deepcopy(manifest)
        candidate["spec"]["template"]["metadata"]["labels"]["model-version"] = version
        _pin_image(candidate, declared_images[version])
        decision = evaluate_decisions(engine, bundle, [candidate], ai_models, package)[0]
        considered.append((version, decision.deny))
        if decision.allowed:
            return version, considered
    raise NoCompliantVersion(
        f"{model_name}: no version other than {bad_version} is known to comply "
        f"(considered: {considered or 'none with governance facts'}); rollback refused, alert raised"
    )


def _image_repository(image: str) -> str:
    """The image without its tag and digest. A colon before the last slash is a registry's port."""
    name = image.split("@", 1)[0]
    return name.rpartition(":")[0] if ":" in name.rpartition("/")[2] else name


def _pin_image(manifest: dict, image: str) -> None:
    """Set the image of every container of the model's image repository, as the pin does."""
    repository = _image_repository(image)
    for container in (manifest["spec"]["template"].get("spec") or {}).get("containers") or []:
        if isinstance(container, dict) and _image_repository(str(container.get("image", ""))) == repository:
            container["image"] = image


def review_branch(app: str, bad_version: str, overlay: str) -> str:
    """One review branch per deployment and violation: the app's overlays in other environments
    (staging, prod-eu, prod-us) get branches and pull requests of their own, never a shared one.
    The environment is named by the overlay's last path part and told apart by its full path."""
    environment = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePosixPath(overlay).stem or "root").strip("-.")[:40] or "root"
    path_digest = hashlib.sha256(overlay.encode()).hexdigest()[:8]
    return f"rai-pipelines/rollback/{app}/{environment}-{path_digest}/{bad_version}"
