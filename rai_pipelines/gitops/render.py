"""Rendering the GitOps repository's overlays with kustomize (or kubectl kustomize) into the
Deployments the policies judge: many overlays at once, on every core; a RenderCache keeps renders
(in memory and on disk) so that only overlays whose Git trees changed are rendered again."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from rai_pipelines.core.errors import BadInputError, GitOpsError
from rai_pipelines.core.yamlfile import check_yaml_bounds
from rai_pipelines.gitops.git import run_git

# What one render may take: kustomize expands whatever the repository holds (an alias bomb in a
# resource reached 22 GB), so each render runs under an address-space limit and its output is bounded.
RENDER_MEMORY_MB = int(os.environ.get("RAI_RENDER_MAX_MEMORY_MB", "2048"))
MAX_RENDER_OUTPUT_BYTES = 64 * 1024 * 1024


def _bounded(cmd: list[str]) -> list[str]:
    """The command under an address-space limit (prlimit, or the shell's ulimit), set in the child
    itself: no preexec_fn, which is unsafe beside the render threads."""
    limit = RENDER_MEMORY_MB * 1024 * 1024
    if shutil.which("prlimit"):
        return ["prlimit", f"--as={limit}", "--", *cmd]
    return ["sh", "-c", f'ulimit -v {limit // 1024} && exec "$@"', "sh", *cmd]


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
        out = subprocess.run(_bounded(cmd), capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise GitOpsError(f"rendering {directory} timed out") from exc
    if out.returncode != 0:
        detail = out.stderr.strip().splitlines()[0] if out.stderr.strip() else f"exit code {out.returncode}"
        if "out of memory" in out.stderr or "cannot allocate memory" in out.stderr.lower():
            detail = f"it needed more than {RENDER_MEMORY_MB} MB (RAI_RENDER_MAX_MEMORY_MB)"
        raise GitOpsError(f"rendering {directory} with kustomize failed: {detail}")
    if len(out.stdout) > MAX_RENDER_OUTPUT_BYTES:
        raise GitOpsError(f"rendering {directory} produced more than {MAX_RENDER_OUTPUT_BYTES:,} bytes")
    # kustomize's output is plain YAML: parse it with libyaml (C), about 20x faster than ruamel's
    # pure-Python loader on a render of a thousand overlays; ruamel stays for round-trip edits.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [dict(to_plain(d)) for d in yaml.load_all(out.stdout, Loader=loader) if d]


def to_plain(value):
    """A parsed YAML document as plain dicts and lists, its keys strings."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
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


class RenderCache:
    """The latest commit's render per overlay glob, kept by whoever renders repeatedly (the policy
    sensor): a tick for the same commit reuses it whole, and a tick for a new commit renders again
    only the overlays whose Git trees changed. With a `directory`, each overlay's render is also
    kept on disk under the Git tree ids of everything it is built from (and the renderer's
    identity), so a restarted code server does not render again what has not changed."""

    FORMAT = 1
    MAX_AGE_S = 14 * 24 * 3600  # entries unused this long are removed

    def __init__(self, directory: str | Path | None = None) -> None:
        self.renders: dict[str, _Render] = {}
        self.directory = Path(directory) if directory else None
        # renders of the sources that are not kustomize overlays (plain manifests, Argo CD
        # Applications, Helm values), per glob: (revision, deployments), in memory only
        self.other_sources: dict[str, tuple[str, list[RenderedDeployment]]] = {}

    def get(self, revision: str, overlay_glob: str) -> tuple[list[RenderedDeployment], list[RenderFailure]] | None:
        """The render of `revision` made earlier, if any (no clone needed then)."""
        cached = self.renders.get(overlay_glob)
        if cached is None or cached.revision != revision:
            return None
        return [d for _, docs in cached.overlays.values() for d in docs], []

    def _path(self, overlay: str, key: tuple) -> Path:
        identity = json.dumps([self.FORMAT, _renderer_identity(), overlay, key])
        return self.directory / f"{hashlib.sha256(identity.encode()).hexdigest()[:40]}.json"

    def load(self, overlay: str, key: tuple | None) -> list[RenderedDeployment] | None:
        """The overlay's Deployments rendered earlier from the same trees, or None."""
        if self.directory is None or key is None:
            return None
        path = self._path(overlay, key)
        try:
            documents = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(documents, list) or not all(
            isinstance(d, dict) and d.get("kind") == "Deployment" for d in documents
        ):
            return None  # not what this cache writes: rendered again
        os.utime(path)
        return [RenderedDeployment(overlay, d) for d in documents]

    def store(self, overlay: str, key: tuple | None, deployments: list[RenderedDeployment]) -> None:
        if self.directory is None or key is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(overlay, key)
        staged = path.with_suffix(f".{os.getpid()}.tmp")
        staged.write_text(json.dumps([d.manifest for d in deployments]))
        os.replace(staged, path)  # whole or not at all, even with two writers

    def prune(self) -> None:
        if self.directory is None or not self.directory.is_dir():
            return
        horizon = time.time() - self.MAX_AGE_S
        for entry in os.scandir(self.directory):
            if entry.name.endswith(".json") and entry.stat().st_mtime < horizon:
                Path(entry.path).unlink(missing_ok=True)


@functools.lru_cache(maxsize=1)
def _renderer_identity() -> list:
    """Which renderer renders (its path, size and modification time): a new kustomize may render
    the same trees differently, so its renders are not reused."""
    binary = shutil.which("kubectl") or shutil.which("kustomize") or ""
    info = os.stat(binary) if binary else None
    return [binary, info.st_size if info else 0, int(info.st_mtime) if info else 0]


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
        text = file.read_text()
        check_yaml_bounds(text, str(file))
        document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except (yaml.YAMLError, BadInputError, OSError, UnicodeDecodeError):
        return False
    if not isinstance(document, dict):
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


def check_overlay_inputs(checkout: Path, overlay: str) -> None:
    """Bound every YAML file an overlay is built from (size, nesting, expanded size) before kustomize
    expands it; files of an overlay whose inputs cannot be listed are checked in its own folder."""
    folders: set[str] = set()
    if not _kustomization_dirs(checkout, overlay, folders):
        folders = {overlay}
    for folder in sorted(folders):
        base = checkout / folder
        if not base.is_dir():
            continue
        for file in sorted(p for p in base.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()):
            try:
                text = file.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise BadInputError(f"{overlay}: {file.relative_to(checkout)} cannot be read: {exc}") from None
            check_yaml_bounds(text, f"{overlay}: {file.relative_to(checkout)}")


def rendered_deployments(
    checkout: Path, overlay_glob: str, revision: str | None = None, cache: RenderCache | None = None
) -> tuple[list[RenderedDeployment], list[RenderFailure]]:
    """Every Deployment the overlays render, and the overlays that failed to render: one broken
    overlay must not stop the governance of the others.

    With a `cache` and the checkout's `revision`, the render is kept: a tick for the same commit
    (only the facts changed) reuses it whole, and a tick for a new commit renders again only the
    overlays whose Git trees (their own and those they are built from) changed."""
    if cache is None:
        revision = None
    cached = cache.renders.get(overlay_glob) if revision is not None else None
    if cached is not None and cached.revision == revision:
        return cache.get(revision, overlay_glob) or ([], [])
    overlays = [
        o.relative_to(checkout).as_posix()
        for o in sorted(checkout.glob(overlay_glob))
        if any((o / name).is_file() for name in KUSTOMIZATION_FILES)
    ]
    trees = _directory_trees(checkout) if revision is not None else {}
    keys = {o: _overlay_key(checkout, o, trees) for o in overlays} if revision is not None else {}
    reused: dict[str, list[RenderedDeployment]] = {}
    for overlay in overlays:
        key = keys.get(overlay)
        if cached is not None and key is not None and overlay in cached.overlays and cached.overlays[overlay][0] == key:
            reused[overlay] = cached.overlays[overlay][1]
        elif cache is not None and (found := cache.load(overlay, key)) is not None:
            reused[overlay] = found
    failures = []
    to_render = []
    for overlay in (o for o in overlays if o not in reused):
        try:
            check_overlay_inputs(checkout, overlay)
        except BadInputError as exc:  # never expanded: an alert for that overlay alone
            failures.append(RenderFailure(overlay, str(exc)))
        else:
            to_render.append(overlay)
    together = _render_chunks(checkout, to_render) if len(to_render) > 1 else {}
    rendered: dict[str, list[RenderedDeployment]] = {}
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
    if cache is not None:
        for overlay, deployments in rendered.items():
            cache.store(overlay, keys.get(overlay), deployments)
        cache.prune()
    if revision is not None and not failures:  # a failed render may be transient: never cached
        cache.renders[overlay_glob] = _Render(
            revision,
            {o: (keys.get(o), reused.get(o) or rendered.get(o, [])) for o in overlays},
        )
    # Shared with the cache, not copied: decisions read manifests and never change them (a rollback
    # candidate is a deep copy made where it is changed).
    found = [d for o in overlays for d in reused.get(o) or rendered.get(o, [])]
    return found, failures
