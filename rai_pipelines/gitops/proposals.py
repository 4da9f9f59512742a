"""A recommendation proposed as a branch of the GitOps repository (a serving-resources change) or of
the policy repository (a budget or threshold), for a person to review and merge.

One branch per recommendation, `rai-pipelines/recommendation/<id>`, one commit on top of the base
branch. Made again, the same recommendation rebuilds that branch from the current base and
force-pushes it with a lease on the commit it replaces (a push someone made in between is not
overwritten); when the proposed tree and the gate's verdict are the same as on the branch, nothing
is pushed. The base branch is never pushed to, and nothing is merged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol

from ruamel.yaml.comments import CommentedMap

from rai_pipelines.core.errors import BadInputError, GitOpsError
from rai_pipelines.gitops.git import GitOpsCheckout, redact, run_git
from rai_pipelines.gitops.manifests import INSTANCE_TYPE_LABEL, dump_yaml, load_yaml

BRANCH_PREFIX = "rai-pipelines/recommendation/"
MAX_VERDICT_CHARS = 16_000
_ID = re.compile(r"^[0-9a-f]{12,64}$")
_KEY_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_INSTANCE_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_QUANTITY = {
    "resources.requests.cpu": re.compile(r"^[1-9][0-9]{0,6}m$|^[1-9][0-9]{0,3}(\.[0-9]{1,3})?$"),
    "resources.requests.memory": re.compile(r"^[1-9][0-9]{0,12}(Ki|Mi|Gi|Ti)?$"),
}


class _Evidence(Protocol):
    start: datetime
    end: datetime
    samples: int
    coverage: float

    def describe(self) -> str: ...


class Proposable(Protocol):
    """What a proposal needs of a recommendation (rai_pipelines.costs.recommendations.Recommendation)."""

    id: str
    kind: str
    model: str | None
    version: str | None
    target_field: str
    evidence: _Evidence
    current: object
    proposed: object
    monthly_savings: Decimal
    currency: str
    rationale: str


@dataclass(frozen=True)
class ProposalResult:
    branch: str
    commit_sha: str | None
    # created / updated: pushed; unchanged: the branch already proposes this; already_applied: the
    # base branch already has the proposed values, so there is nothing to propose
    status: Literal["created", "updated", "unchanged", "already_applied"]


def branch_for(recommendation: Proposable) -> str:
    if not isinstance(recommendation.id, str) or not _ID.match(recommendation.id):
        raise BadInputError(f"recommendation id {recommendation.id!r} is not a lowercase hex digest")
    return BRANCH_PREFIX + recommendation.id


def inside(checkout: Path, relative: str) -> Path:
    """A path inside the checkout: relative, no `..`, and not resolving elsewhere through a link."""
    if not isinstance(relative, str) or not relative or any(c in relative for c in "\0\n\r"):
        raise BadInputError(f"path {relative!r} must be a relative path inside the repository")
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts:
        raise BadInputError(f"path {relative!r} must be a relative path inside the repository, without '..'")
    full = checkout / path
    if full.is_symlink() or not full.resolve().is_relative_to(checkout.resolve()):
        raise BadInputError(f"path {relative!r} is a symbolic link or resolves outside the repository")
    return full


def _one_line(value: object, limit: int = 120) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message(recommendation: Proposable, verdict: str) -> tuple[str, str]:
    """The commit's subject and body: what changes, the evidence, the savings and the gate's verdict."""
    r = recommendation
    scope = f"{r.model} {r.version}" if r.model else "all models"
    subject = _one_line(
        f"{r.kind}({r.model or 'all'}): {r.target_field} {r.current} -> {r.proposed}, saves {r.monthly_savings} "
        f"{r.currency} a month",
        200,
    )
    body = "\n".join(
        [
            f"Recommendation {r.id} ({r.kind}) for {_one_line(scope)}.",
            "",
            f"Evidence window: {_one_line(r.evidence.describe(), 300)}",
            f"Change: {_one_line(r.target_field)}: {_one_line(r.current)} -> {_one_line(r.proposed)}",
            f"Monthly savings: {r.monthly_savings} {_one_line(r.currency, 8)} (730 hours a month)",
            "",
            _one_line(r.rationale, 4000),
            "",
            "Gate verdict on the proposed manifest:",
            "",
            verdict,
            "",
            "Proposed by rai-pipelines for review: it is never merged automatically.",
        ]
    )
    return subject, body


def _verdict(text: object) -> str:
    if not isinstance(text, str):
        raise GitOpsError(f"the gate verdict must be text, not {type(text).__name__}")
    text = redact(text.replace("\r", "")).strip() or "(the gate returned no text)"
    if len(text) > MAX_VERDICT_CHARS:
        text = text[:MAX_VERDICT_CHARS] + f"\n[… {len(text) - MAX_VERDICT_CHARS:,} characters cut]"
    return "\n".join("    " + line for line in text.splitlines())  # indented: never read as trailers


def _trailer(cwd: Path, rev: str, key: str) -> str:
    return run_git(["log", "-1", f"--format=%(trailers:key={key},valueonly,separator=%x2C)", rev], cwd=cwd).strip()


def propose(
    recommendation: Proposable,
    repo_url: str,
    base_branch: str,
    edit: Callable[[Path], list[str]],
    gate_verdict: Callable[[Path], str],
    author: str = "rai-pipelines <rai-pipelines@localhost>",
    token: str | None = None,
    workdir: str | None = None,
) -> ProposalResult:
    """Push `recommendation` as the branch `rai-pipelines/recommendation/<id>` off `base_branch`.

    `edit(checkout)` applies the change in a fresh clone of the base and returns the paths it
    changed; `gate_verdict(checkout)` runs the pre-deployment gate on the edited manifests and
    returns its report, which goes in the commit message. A branch that holds anything but our own
    single commit on the base's history (a reviewer's commits) is refused, never overwritten."""
    branch = branch_for(recommendation)
    if branch == base_branch:
        raise GitOpsError(f"refusing to propose onto the base branch {base_branch}")
    with GitOpsCheckout(repo_url, base_branch, workdir, author, token) as checkout:
        root = checkout.path
        assert root is not None
        found = run_git(["for-each-ref", "--format=%(objectname)", f"refs/remotes/origin/{branch}"], cwd=root)
        old = found.split()[0] if found.strip() else None
        if old:
            _check_ours(root, old, recommendation.id, branch)
        changed = edit(root)
        if not isinstance(changed, list) or not all(isinstance(p, str) for p in changed):
            raise GitOpsError("the edit must return the list of paths it changed")
        for path in changed:
            inside(root, path)
        listed = {str(PurePosixPath(p)) for p in changed}
        if listed:
            run_git(["add", "--", *sorted(listed)], cwd=root)
        touched = run_git(["diff", "--name-only", "HEAD"], cwd=root).splitlines()
        touched += run_git(["ls-files", "--others", "--exclude-standard"], cwd=root).splitlines()
        if set(touched) - listed:
            raise GitOpsError(f"the edit changed files it did not report: {sorted(set(touched) - listed)[:5]}")
        if not touched:
            return ProposalResult(branch, None, "already_applied")
        verdict = _verdict(gate_verdict(root))
        digest = "sha256:" + hashlib.sha256(verdict.encode()).hexdigest()[:32]
        if old:
            tree = run_git(["write-tree"], cwd=root).strip()
            same_tree = tree == run_git(["rev-parse", f"{old}^{{tree}}"], cwd=root).strip()
            if same_tree and _trailer(root, old, "Gate-Verdict-Digest") == digest:
                return ProposalResult(branch, old, "unchanged")
        subject, body = message(recommendation, verdict)
        trailers = {
            "Recommendation-Id": recommendation.id,
            "Recommendation-Kind": _one_line(recommendation.kind, 40),
            "Gate-Verdict-Digest": digest,
        }
        sha, ref = checkout.commit(subject, body, trailers), f"refs/heads/{branch}"
        # The lease: the branch must still be where this clone saw it (absent when new), so a push
        # made in between, by a person or another run, is not overwritten.
        run_git(
            ["push", "--quiet", f"--force-with-lease=refs/heads/{branch}:{old or ''}", "origin", f"HEAD:{ref}"],
            cwd=root,
            timeout=120,
            token=token,
        )
        return ProposalResult(branch, sha, "updated" if old else "created")


def _check_ours(root: Path, old: str, rec_id: str, branch: str) -> None:
    ids = _trailer(root, old, "Recommendation-Id")
    parent = run_git(["rev-list", "--parents", "-n", "1", old], cwd=root).split()[1:]
    ours = ids == rec_id and len(parent) == 1
    if ours:
        try:
            run_git(["merge-base", "--is-ancestor", parent[0], "HEAD"], cwd=root)
        except GitOpsError:
            ours = False
    if not ours:
        raise GitOpsError(
            f"branch {branch} holds commits other than this recommendation's own on the base history "
            "(a reviewer's work?); it is left as it is: delete or merge it, and the recommendation is proposed again"
        )


# -- the edits ---------------------------------------------------------------------------------------
def _serving_value(field: str, value: object) -> object:
    if field == "spec.replicas":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 10_000:
            raise BadInputError(f"replicas {value!r}: a whole number between 1 and 10000")
        return value
    if field == "nodeSelector.instance-type":
        if not isinstance(value, str) or not _INSTANCE_TYPE.match(value):
            raise BadInputError(f"instance type {value!r} is not a valid instance type name")
        return value
    if field in _QUANTITY:
        if not isinstance(value, str) or not _QUANTITY[field].match(value):
            raise BadInputError(f"{field} {value!r} is not a Kubernetes quantity")
        return value
    raise GitOpsError(f"no serving-resources edit for the field {field!r}")


def _template_spec(doc) -> CommentedMap:
    spec = doc.setdefault("spec", CommentedMap())
    return spec.setdefault("template", CommentedMap()).setdefault("spec", CommentedMap())


def edit_serving_resources(
    checkout: Path,
    overlay_dir: str,
    recommendation: Proposable,
    patch_file: str = "model-version.yaml",
    container: str = "model",
) -> list[str]:
    """Set the recommended replicas, node instance type or container resource request in the
    overlay's Deployment patch (comments and formatting kept). The patch must still hold the
    recommendation's current value: a recommendation made on a state that has since changed is
    refused rather than applied over someone's edit."""
    relative = f"{overlay_dir.rstrip('/')}/{patch_file}"
    path = inside(Path(checkout), relative)
    if not path.is_file():
        raise GitOpsError(f"{relative}: no such file in the GitOps repository")
    field = recommendation.target_field
    value = _serving_value(field, recommendation.proposed)
    doc = load_yaml(path)
    if not isinstance(doc, CommentedMap) or doc.get("kind") != "Deployment":
        raise GitOpsError(f"{relative}: not a Deployment patch")
    if field == "spec.replicas":
        holder, key = doc.setdefault("spec", CommentedMap()), "replicas"
    elif field == "nodeSelector.instance-type":
        holder, key = _template_spec(doc).setdefault("nodeSelector", CommentedMap()), INSTANCE_TYPE_LABEL
    else:
        containers = _template_spec(doc).setdefault("containers", [])
        entry = next((c for c in containers if isinstance(c, dict) and c.get("name") == container), None)
        if entry is None:
            entry = CommentedMap(name=container)
            containers.append(entry)
        holder = entry.setdefault("resources", CommentedMap()).setdefault("requests", CommentedMap())
        key = field.rsplit(".", 1)[1]
    present = holder.get(key)
    if present is not None and str(present) == str(value):
        return [relative]  # already so on the base: nothing to propose
    if present is not None and str(present) != str(recommendation.current):
        raise GitOpsError(
            f"{relative}: {field} is {present}, not {recommendation.current} as the recommendation measured; "
            "the recommendation is stale"
        )
    holder[key] = value
    dump_yaml(doc, path)
    return [relative]


def edit_policy_data(checkout: Path, data_path: str, key: str, value: object) -> list[str]:
    """Set `key` (dotted, e.g. thresholds.estimated_cost_per_inference_usd_max) in a policy data
    YAML file to `value`, keeping comments and formatting."""
    path = inside(Path(checkout), data_path)
    if not path.is_file():
        raise GitOpsError(f"{data_path}: no such file in the policy repository")
    parts = key.split(".") if isinstance(key, str) else []
    if not 0 < len(parts) <= 8 or not all(_KEY_PART.match(p) for p in parts):
        raise BadInputError(f"policy data key {key!r}: dotted names of letters, digits, '_' and '-'")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise BadInputError(f"policy data value {value!r} is not finite")
        value = int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if not isinstance(value, (bool, int, float, str)):
        raise BadInputError(f"policy data value {value!r}: a number, string or boolean")
    doc = load_yaml(path)
    if not isinstance(doc, CommentedMap):
        raise GitOpsError(f"{data_path}: expected a mapping at the top level")
    holder = doc
    for part in parts[:-1]:
        holder = holder.setdefault(part, CommentedMap())
        if not isinstance(holder, CommentedMap):
            raise GitOpsError(f"{data_path}: {part} in {key} is not a mapping")
    holder[parts[-1]] = value
    dump_yaml(doc, path)
    return [data_path]
