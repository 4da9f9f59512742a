"""GitOps repository operations with the git CLI, kustomize rendering and round-trip YAML edits.

The rollback is declarative: the overlay pins the last compliant image tag and `model-version`
label; Argo CD or Flux reconcile the change. Image-automation markers on the pinned field are
replaced, so Flux's image automation does not bump the tag straight back.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from rai_pipelines.core.errors import GitOpsError
from rai_pipelines.core.registry import validate_model_version

GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "LC_ALL": "C",
}


_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)


def redact(text: str) -> str:
    """Drop credentials embedded in URLs (https://user:token@host/...) before text is logged,
    recorded or shown."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", text)


def run_git(args: list[str], cwd: str | Path | None = None, timeout: float = 60) -> str:
    env = {**os.environ, **GIT_ENV}
    try:
        out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise GitOpsError(redact(f"git {' '.join(args[:2])} timed out after {timeout:.0f} s")) from exc
    if out.returncode != 0:
        detail = out.stderr.strip() or out.stdout.strip()
        raise GitOpsError(redact(f"git {' '.join(args)} failed ({out.returncode}): {detail}"))
    return out.stdout


def remote_head(remote: str, branch: str) -> str:
    out = run_git(["ls-remote", "--heads", remote, branch], timeout=30)
    for line in out.splitlines():
        sha, ref = line.split("\t", 1)
        if ref == f"refs/heads/{branch}":
            return sha
    raise GitOpsError(f"branch {branch} not found on GitOps remote {remote}")


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def load_yaml(path: Path):
    try:
        return _yaml().load(path.read_text())
    except Exception as exc:
        raise GitOpsError(f"{path}: not valid YAML: {exc}") from exc


def dump_yaml(document, path: Path) -> None:
    buffer = io.StringIO()
    _yaml().dump(document, buffer)
    path.write_text(buffer.getvalue())


def kustomize_render(directory: Path) -> list[dict]:
    """Render an overlay with `kubectl kustomize`; the documents it produces, as plain dicts."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        cmd = [kubectl, "kustomize", str(directory)]
    elif shutil.which("kustomize"):
        cmd = ["kustomize", "build", str(directory)]
    else:
        raise GitOpsError("neither kubectl nor kustomize is installed: cannot render the GitOps overlay")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise GitOpsError(f"rendering {directory} timed out") from exc
    if out.returncode != 0:
        raise GitOpsError(f"rendering {directory} with kustomize failed: {out.stderr.strip()}")
    # kustomize's output is plain YAML: parse it with libyaml (C), about 20x faster than ruamel's
    # pure-Python loader on a render of a thousand overlays; ruamel stays for round-trip edits.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [dict(_to_plain(d)) for d in yaml.load_all(out.stdout, Loader=loader) if d]


def _to_plain(value):
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class RenderedDeployment:
    overlay: str  # path of the overlay inside the repository
    manifest: dict

    @property
    def app(self) -> str:
        return self.manifest.get("metadata", {}).get("labels", {}).get("app") or self.manifest["metadata"]["name"]

    @property
    def model_version(self) -> str | None:
        labels = self.manifest.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        return labels.get("model-version")


@dataclass(frozen=True)
class RenderFailure:
    overlay: str
    error: str


ORIGIN_ANNOTATION = "rai-pipelines.io/overlay"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def _render_together(checkout: Path, overlays: list[str]) -> dict[str, list[dict]] | None:
    """Render all overlays with one `kustomize` call: each is wrapped in a kustomization that
    stamps an annotation naming it, so every document can be traced back to its overlay. None when
    they cannot be built together (two overlays defining the same object): render one by one."""
    with tempfile.TemporaryDirectory(prefix=".rai-render-", dir=checkout) as tmp:
        root = Path(tmp)
        names = []
        for i, overlay in enumerate(overlays):
            wrapper = root / f"o{i}"
            wrapper.mkdir()
            target = os.path.relpath(checkout / overlay, wrapper)
            (wrapper / "kustomization.yaml").write_text(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                f"resources:\n  - {json.dumps(target)}\n"
                f"commonAnnotations:\n  {ORIGIN_ANNOTATION}: {json.dumps(overlay)}\n"
            )
            names.append(f"o{i}")
        (root / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
            + "".join(f"  - {n}\n" for n in names)
        )
        try:
            docs = kustomize_render(root)
        except GitOpsError:
            return None
    by_overlay: dict[str, list[dict]] = {o: [] for o in overlays}
    for doc in docs:
        annotations = doc.get("metadata", {}).get("annotations") or {}
        overlay = annotations.pop(ORIGIN_ANNOTATION, None)
        if not annotations:
            doc["metadata"].pop("annotations", None)
        template = doc.get("spec", {}).get("template", {}).get("metadata", {})
        if isinstance(template.get("annotations"), dict):
            template["annotations"].pop(ORIGIN_ANNOTATION, None)
            if not template["annotations"]:
                template.pop("annotations")
        if overlay not in by_overlay:
            return None
        by_overlay[overlay].append(doc)
    return by_overlay


def _render_chunks(checkout: Path, overlays: list[str]) -> dict[str, list[dict]] | None:
    """Render the overlays together, in one chunk per core, concurrently (kustomize spends about
    10 ms per kustomization, so a thousand overlays take seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(os.cpu_count() or 1, len(overlays) // 50 or 1))
    chunks = [overlays[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda chunk: _render_together(checkout, chunk), chunks))
    # A chunk that cannot be built together (a broken overlay, an object two overlays define) is
    # left out here and rendered overlay by overlay; the other chunks keep their render.
    return {overlay: docs for part in parts if part is not None for overlay, docs in part.items()}


@dataclass
class _Render:
    revision: str
    # overlay -> (the Git trees it is built from, its Deployments)
    overlays: dict[str, tuple[tuple | None, list[RenderedDeployment]]]


_RENDER_CACHE: dict[str, _Render] = {}  # overlay glob -> the latest commit's render


def cached_render(revision: str, overlay_glob: str) -> tuple[list[RenderedDeployment], list[RenderFailure]] | None:
    """The render of `revision` made earlier in this process, if any (no clone needed then)."""
    cached = _RENDER_CACHE.get(overlay_glob)
    if cached is None or cached.revision != revision:
        return None
    return [d for _, docs in cached.overlays.values() for d in docs], []


def _directory_trees(checkout: Path) -> dict[str, str]:
    """Git tree id of every directory of HEAD (one `git ls-tree` call)."""
    trees = {"": run_git(["rev-parse", "HEAD^{tree}"], cwd=checkout).strip()}
    for line in run_git(["ls-tree", "-r", "-d", "HEAD"], cwd=checkout).splitlines():
        meta, path = line.split("\t", 1)
        trees[path] = meta.split()[2]
    return trees


def _kustomization_dirs(checkout: Path, directory: str, seen: set[str]) -> bool:
    """Add to `seen` every repository directory the kustomization in `directory` is built from
    (its own, and those of its resources, components and files outside it). False when that cannot
    be known (a remote resource, an unreadable file): the overlay is then always rendered."""
    if directory in seen:
        return True
    seen.add(directory)
    path = checkout / directory
    file = next((path / n for n in KUSTOMIZATION_FILES if (path / n).is_file()), None)
    if file is None:
        return False
    try:
        document = yaml.load(file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError:
        return False
    references = []
    for key in ("resources", "bases", "components", "crds", "configurations", "transformers", "generators"):
        references += [r for r in document.get(key) or [] if isinstance(r, str)]
    for key in ("patches", "patchesStrategicMerge", "patchesJson6902"):
        for patch in document.get(key) or []:
            references.append(patch.get("path") if isinstance(patch, dict) else patch)
    for key in ("configMapGenerator", "secretGenerator"):
        for generator in document.get(key) or []:
            for entry in (generator.get("files") or []) + (generator.get("envs") or []) + [generator.get("env")]:
                if isinstance(entry, str):
                    references.append(entry.split("=", 1)[-1])
    for reference in references:
        if reference is None:
            continue
        if not isinstance(reference, str) or "://" in reference or reference.startswith("git@"):
            return False
        target = os.path.normpath(os.path.join(directory, reference))
        if target.startswith(".."):
            return False
        if (checkout / target).is_dir():
            if not _kustomization_dirs(checkout, target, seen):
                return False
        else:
            seen.add(os.path.dirname(target))
    return True


def _overlay_key(checkout: Path, overlay: str, trees: dict[str, str]) -> tuple | None:
    dirs: set[str] = set()
    if not _kustomization_dirs(checkout, overlay, dirs):
        return None
    return tuple(sorted((d, trees.get("" if d == "." else d)) for d in dirs))


def rendered_deployments(
    checkout: Path, overlay_glob: str, revision: str | None = None
) -> tuple[list[RenderedDeployment], list[RenderFailure]]:
    """Every Deployment the overlays render, and the overlays that failed to render: one broken
    overlay must not stop the governance of the others.

    With `revision` (the checkout's commit) the render is kept in memory: a tick for the same
    commit (only the facts changed) reuses it whole, and a tick for a new commit renders again only
    the overlays whose Git trees (their own and those they are built from) changed."""
    cached = _RENDER_CACHE.get(overlay_glob) if revision is not None else None
    if cached is not None and cached.revision == revision:
        return cached_render(revision, overlay_glob) or ([], [])
    overlays = [
        o.relative_to(checkout).as_posix()
        for o in sorted(checkout.glob(overlay_glob))
        if any((o / name).is_file() for name in KUSTOMIZATION_FILES)
    ]
    trees = _directory_trees(checkout) if revision is not None else {}
    keys = {o: _overlay_key(checkout, o, trees) for o in overlays} if revision is not None else {}
    reused: dict[str, list[RenderedDeployment]] = {}
    if cached is not None:
        for overlay in overlays:
            key = keys.get(overlay)
            if key is not None and overlay in cached.overlays and cached.overlays[overlay][0] == key:
                reused[overlay] = cached.overlays[overlay][1]
    to_render = [o for o in overlays if o not in reused]
    together = _render_chunks(checkout, to_render) if len(to_render) > 1 else {}
    rendered: dict[str, list[RenderedDeployment]] = {}
    failures = []
    for overlay in to_render:
        if overlay in together:
            docs = together[overlay]
        else:
            try:
                docs = kustomize_render(checkout / overlay)
            except GitOpsError as exc:
                failures.append(RenderFailure(overlay, str(exc)))
                continue
        rendered[overlay] = [RenderedDeployment(overlay, d) for d in docs if d.get("kind") == "Deployment"]
    if revision is not None and not failures:  # a failed render may be transient: never cached
        _RENDER_CACHE[overlay_glob] = _Render(
            revision,
            {o: (keys.get(o), reused.get(o) or rendered.get(o, [])) for o in overlays},
        )
    # Shared with the cache, not copied: decisions read manifests and never change them (a rollback
    # candidate is a deep copy made where it is changed).
    found = [d for o in overlays for d in reused.get(o) or rendered.get(o, [])]
    return found, failures


def _image_repository(image: str) -> tuple[str, str]:
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        raise GitOpsError(f"image {image!r} has no tag")
    return repository, tag


INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


def pin_model_version(
    overlay: Path,
    deployment_name: str,
    image: str,
    version: str,
    note: str,
    replicas: int | None = None,
    instance_type: str | None = None,
) -> None:
    """Edit the overlay in place so it deploys `image` with the pod label model-version=`version`,
    and the version's declared serving resources (replica count, node instance type).

    kustomization.yaml `images:` carries the tag; a strategic-merge patch in the overlay carries
    the label and the serving resources. Comments and formatting of both files are kept.
    """
    validate_model_version(version, f"{overlay}: target version")
    repository, tag = _image_repository(image)
    kustomization_path = overlay / "kustomization.yaml"
    kustomization = load_yaml(kustomization_path)
    images = kustomization.get("images")
    if images is None:
        images = kustomization["images"] = []
    entry = next((i for i in images if i.get("name") == repository), None)
    if entry is None:
        entry = CommentedMap(name=repository)
        images.append(entry)
    entry["newTag"] = tag
    # The end-of-line comment of newTag is where Flux keeps its {"$imagepolicy": ...} marker; the
    # pin replaces it so image automation leaves the field alone until a person removes the pin.
    entry.yaml_add_eol_comment(f"pinned by rai-pipelines: {note}", "newTag")
    dump_yaml(kustomization, kustomization_path)

    patch_path = None
    for patch in kustomization.get("patches") or []:
        candidate = overlay / str(patch.get("path", ""))
        if patch.get("path") and candidate.is_file():
            doc = load_yaml(candidate)
            if doc and doc.get("kind") == "Deployment" and doc.get("metadata", {}).get("name") == deployment_name:
                patch_path = candidate
                break
    if patch_path is None:
        raise GitOpsError(
            f"{kustomization_path}: no strategic-merge patch for Deployment {deployment_name} "
            "to carry the model-version label; add one under `patches:`"
        )
    patch_doc = load_yaml(patch_path)
    spec = patch_doc.setdefault("spec", CommentedMap())
    template = spec.setdefault("template", CommentedMap())
    template.setdefault("metadata", CommentedMap()).setdefault("labels", CommentedMap())["model-version"] = version
    if replicas is not None:
        spec["replicas"] = int(replicas)
    if instance_type is not None:
        template.setdefault("spec", CommentedMap()).setdefault("nodeSelector", CommentedMap())[INSTANCE_TYPE_LABEL] = (
            instance_type
        )
    dump_yaml(patch_doc, patch_path)


def check_rendered(overlay: Path, deployment_name: str, image: str, version: str) -> dict:
    """Render the edited overlay and prove it deploys what the pin says, before anything is committed."""
    for doc in kustomize_render(overlay):
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == deployment_name:
            template = doc["spec"]["template"]
            label = template.get("metadata", {}).get("labels", {}).get("model-version")
            images = [c.get("image") for c in template["spec"].get("containers", [])]
            if label != version or image not in images:
                raise GitOpsError(
                    f"{overlay}: the rendered Deployment has model-version={label!r} and images {images}, "
                    f"expected {version!r} and {image!r}"
                )
            return doc
    raise GitOpsError(f"{overlay}: the rendered overlay holds no Deployment named {deployment_name}")


_TRAILER_VALUE = re.compile(r"^[^\n\r]{1,200}$")


class GitOpsCheckout:
    """A working clone of the GitOps remote, removed on exit."""

    def __init__(
        self,
        remote: str,
        branch: str,
        workdir: str | None = None,
        author: str = "rai-pipelines <rai-pipelines@localhost>",
    ):
        self.remote, self.branch, self.author = remote, branch, author
        self._workdir = workdir
        self.path: Path | None = None

    def __enter__(self) -> GitOpsCheckout:
        if self._workdir:
            Path(self._workdir).mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.mkdtemp(prefix="gitops-", dir=self._workdir)
        self.path = Path(self._tmp) / "repo"
        run_git(["clone", "--quiet", "--branch", self.branch, self.remote, str(self.path)], timeout=120)
        name, email = re.match(r"^(.*) <(.*)>$", self.author).groups()
        run_git(["config", "user.name", name], cwd=self.path)
        run_git(["config", "user.email", email], cwd=self.path)
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def head(self) -> str:
        return run_git(["rev-parse", "HEAD"], cwd=self.path).strip()

    def has_changes(self) -> bool:
        return bool(run_git(["status", "--porcelain"], cwd=self.path).strip())

    def commit(self, subject: str, body: str, trailers: dict[str, str]) -> str:
        args = ["commit", "--quiet", "--all", "-m", subject, "-m", body]
        for key, value in trailers.items():
            if not re.match(r"^[A-Za-z][A-Za-z0-9-]*$", key) or not _TRAILER_VALUE.match(str(value)):
                raise GitOpsError(f"refusing malformed commit trailer {key!r}: {value!r}")
            args += ["--trailer", f"{key}: {value}"]
        run_git(args, cwd=self.path)
        return self.head

    def push(self, branch: str | None = None, replace: bool = True) -> None:
        """Push HEAD to the tracked branch, or to `branch` (a review branch, created, or replaced
        when `replace`; otherwise an existing branch, maybe with a reviewer's commits, is refused)."""
        if branch is None:
            run_git(["push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}"], cwd=self.path, timeout=120)
            return
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$", branch) or ".." in branch:
            raise GitOpsError(f"refusing unsafe branch name {branch!r}")
        force = ["--force"] if replace else []
        run_git(["push", "--quiet", *force, "origin", f"HEAD:refs/heads/{branch}"], cwd=self.path, timeout=120)

    def rebase_onto_remote(self) -> None:
        run_git(["fetch", "--quiet", "origin", self.branch], cwd=self.path, timeout=120)
        run_git(["rebase", "--quiet", f"origin/{self.branch}"], cwd=self.path)
