"""What the pins of every manifest style share: image references, dotted keys into YAML mappings,
multi-document files edited one document at a time (the others kept byte for byte), the pin
comment, and Git remote URLs compared as the same repository."""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import ScalarString

from rai_pipelines.core.errors import BadInputError, GitOpsError
from rai_pipelines.core.yamlfile import MAX_YAML_BYTES, check_yaml_bounds
from rai_pipelines.gitops.manifests import _yaml

# A Docker tag: https://github.com/distribution/reference (the `tag` production).
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# The line that starts a YAML document; the spec ends any scalar at a marker in column 0.
_DOCUMENT_START_RE = re.compile(r"^---(?=[ \t\r\n]|$)", re.MULTILINE)
MAX_NOTE_CHARS = 200
PIN_COMMENT_PREFIX = "pinned by rai-pipelines: "


def split_image(image: object) -> tuple[str, str]:
    """`repository:tag` -> (repository, tag); a digest or a reference without a tag is refused:
    the pin is a tag, which is what the registry's versions name."""
    if not isinstance(image, str) or "@" in image or any(c.isspace() for c in image):
        raise GitOpsError(f"image {image!r} is not a `repository:tag` reference")
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag or not _TAG_RE.fullmatch(tag):
        raise GitOpsError(f"image {image!r} has no valid tag (`repository:tag`)")
    return repository, tag


def check_tag(tag: object, where: str) -> str:
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
        raise GitOpsError(f"{where}: {tag!r} is not a valid image tag")
    return tag


def image_repository(reference: str) -> str:
    """The repository of an image reference as manifests write it: `repo`, `repo:tag`,
    `repo@sha256:...`, `registry:5000/repo:tag`."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def pin_comment(note: object) -> str:
    """The end-of-line comment a pin leaves; the note is one line (a line break in a comment
    would write YAML of its own) and bounded."""
    if not isinstance(note, str):
        raise GitOpsError(f"pin note {note!r} is not text")
    one_line = " ".join(note.split())
    if len(one_line) > MAX_NOTE_CHARS:
        one_line = one_line[: MAX_NOTE_CHARS - 3] + "..."
    return PIN_COMMENT_PREFIX + one_line


def parse_dotted_key(key: object, where: str) -> list[str]:
    """`image.tag` -> ['image', 'tag']; a backslash escapes the next character, so a segment may
    hold dots: `podLabels.app\\.kubernetes\\.io/version` -> ['podLabels', 'app.kubernetes.io/version']."""
    if not isinstance(key, str) or not key:
        raise GitOpsError(f"{where}: {key!r} is not a dotted key")
    segments, current, escaped = [], [], False
    for char in key:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        raise GitOpsError(f"{where}: key {key!r} ends with a lone backslash")
    segments.append("".join(current))
    if any(not s for s in segments):
        raise GitOpsError(f"{where}: key {key!r} has an empty segment")
    return segments


def mapping_of(node: object, where: str) -> CommentedMap:
    if not isinstance(node, dict):
        raise GitOpsError(f"{where}: expected a mapping, found {type(node).__name__}")
    return node


def sequence_of(node: object, where: str) -> CommentedSeq:
    if not isinstance(node, list):
        raise GitOpsError(f"{where}: expected a list, found {type(node).__name__}")
    return node


def child_mapping(parent: CommentedMap, key: str, where: str) -> CommentedMap:
    """parent[key] as a mapping, created when absent (None counts as absent)."""
    if parent.get(key) is None:
        parent[key] = CommentedMap()
    return mapping_of(parent[key], f"{where}.{key}")


def set_scalar(mapping: CommentedMap, key: object, value: str) -> None:
    """Set a scalar keeping how it was written (double-quoted stays double-quoted)."""
    old = mapping.get(key)
    mapping[key] = type(old)(value) if isinstance(old, ScalarString) else value


def existing_parent(root: CommentedMap, segments: list[str], where: str, create: bool = False) -> CommentedMap:
    """The mapping holding the last segment of a dotted key; each earlier segment must exist and
    be a mapping (or, with `create`, is created)."""
    node = root
    for depth, segment in enumerate(segments[:-1]):
        path = ".".join(segments[: depth + 1])
        if segment not in node or node[segment] is None:
            if not create:
                raise GitOpsError(f"{where}: has no key {path!r}")
            node[segment] = CommentedMap()
        node = mapping_of(node[segment], f"{where}: {path}")
    return node


def read_bounded(path: Path) -> str:
    """A YAML file's text, refused before it is read when too large, and before it is parsed when
    its nesting or alias expansion is past the bounds."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise GitOpsError(f"{path}: cannot be read: {exc}") from None
    if size > MAX_YAML_BYTES:
        raise GitOpsError(f"{path}: {size:,} bytes of YAML, over the limit of {MAX_YAML_BYTES:,}")
    try:
        text = path.read_text()
        check_yaml_bounds(text, str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise GitOpsError(f"{path}: cannot be read: {exc}") from None
    except BadInputError as exc:
        raise GitOpsError(str(exc)) from None
    return text


def safe_documents(path: Path) -> list[dict]:
    """The documents of a YAML file as plain data (bounded; no tags constructed), empty ones left out."""
    import yaml

    text = read_bounded(path)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        documents = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as exc:
        raise GitOpsError(f"{path}: not valid YAML: {exc}") from None
    for index, document in enumerate(documents):
        if not isinstance(document, dict):
            raise GitOpsError(f"{path}: document {index + 1} is a {type(document).__name__}, not a mapping")
    return documents


def load_text_yaml(text: str, where: str):
    """A YAML document held in a string (an inline patch), round-trip loaded, bounded first."""
    try:
        text = str(text)  # ruamel reads a str, not a ScalarString
        check_yaml_bounds(text, where)
        return _yaml().load(text)
    except BadInputError as exc:
        raise GitOpsError(str(exc)) from None
    except Exception as exc:  # ruamel raises many parser error types
        raise GitOpsError(f"{where}: not valid YAML: {exc}") from None


def dump_text_yaml(document) -> str:
    """A document as a string to hold inline; a top-level list starts in column 0 (kustomize trims
    an inline patch, so an indented first item would misalign with the lines after it)."""
    buffer = io.StringIO()
    _yaml().dump(document, buffer)
    return textwrap.dedent(buffer.getvalue())


class YamlDocuments:
    """A multi-document YAML file edited one document at a time: each document is round-trip
    loaded on its own, and only those marked changed are written again, so the others (and
    comments between documents) stay byte for byte."""

    def __init__(self, path: Path) -> None:
        self.path = path
        text = read_bounded(path)
        starts = [m.start() for m in _DOCUMENT_START_RE.finditer(text)]
        if not starts or starts[0] != 0:
            starts.insert(0, 0)
        self.chunks = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
        self.documents = []
        for index, chunk in enumerate(self.chunks):
            try:
                self.documents.append(_yaml().load(chunk))
            except Exception as exc:  # ruamel raises many parser error types
                raise GitOpsError(f"{path}: document {index + 1} is not valid YAML: {exc}") from None
        self.changed: set[int] = set()

    def mappings(self) -> list[tuple[int, CommentedMap]]:
        return [(i, d) for i, d in enumerate(self.documents) if isinstance(d, dict)]

    def write(self) -> None:
        if not self.changed:
            return
        chunks = list(self.chunks)
        for index in self.changed:
            yaml = _yaml()
            yaml.explicit_start = chunks[index].startswith("---")
            buffer = io.StringIO()
            yaml.dump(self.documents[index], buffer)
            chunks[index] = buffer.getvalue()
        text = "".join(chunks)
        self._check_same_shape(text)
        self.path.write_text(text)

    def _check_same_shape(self, text: str) -> None:
        """The file written holds as many documents as it did, each the one edited: a document
        split or merged by the splice is an error of this module, never committed."""
        from ruamel.yaml import YAML

        expected = [_plain(d) for d in self.documents]
        try:  # the pure loader reads YAML 1.2 as the round trip does (`on` is a string)
            found = list(YAML(typ="safe", pure=True).load_all(text))
        except Exception as exc:  # ruamel raises many parser error types
            raise GitOpsError(f"{self.path}: the edit would write invalid YAML: {exc}") from None
        if [d for d in found if d is not None] != [d for d in expected if d is not None]:
            raise GitOpsError(f"{self.path}: the edit would change documents it did not mean to; nothing written")


def _plain(value):
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, ScalarString):
        return str(value)
    return value


def normalise_repo_url(url: str) -> str:
    """A Git remote as `host/path`, so the forms of one repository compare equal:
    https://host/org/repo.git, ssh://git@host:22/org/repo, git@host:org/repo, with or without a
    trailing slash or `.git`. Host and path are lower-cased (hosting services compare them so)."""
    text = url.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
        authority, _, path = text.partition("/")
        authority = authority.rsplit("@", 1)[-1].split(":", 1)[0]
    elif re.match(r"^[^/@:]+@[^/:]+:", text) or re.match(r"^[^/:]+:(?!/)", text):
        authority, _, path = text.rsplit("@", 1)[-1].partition(":")
    else:  # a local path
        authority, path = "", text
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    return f"{authority}/{path.strip('/')}".lower()
