"""The pull request (GitHub) or merge request (GitLab) of a rollback's review branch, through the
forges' REST APIs with the standard library only.

One request per head branch: an open one for the same head and base is found and updated (title,
body, labels), otherwise one is opened, so a rerun never opens a second. The token travels in a
header to the configured API host only (redirects are refused, not followed) and is scrubbed from
every message; answers are bounded in size and checked field by field.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

from rai_pipelines.core.errors import BadInputError, GitOpsError
from rai_pipelines.gitops.git import redact

GITHUB_BODY_LIMIT = 65_536
GITLAB_BODY_LIMIT = 1_000_000
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_ERROR_DETAIL_CHARS = 600
TITLE_LIMIT = 255
LABEL_LIMIT = 50
USER_AGENT = "rai-pipelines-gitops"

_FORGE_NAMES = {"github": "GitHub", "gitlab": "GitLab"}
_KNOWN_HOSTS = {
    "github.com": ("github", "https://api.github.com"),
    "gitlab.com": ("gitlab", "https://gitlab.com/api/v4"),
}
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_REPOSITORY_SHAPE = {
    "github": re.compile(rf"^{_SEGMENT}/{_SEGMENT}$"),
    "gitlab": re.compile(rf"^{_SEGMENT}(?:/{_SEGMENT})+$"),
}
_TOKEN = re.compile(r"^[\x21-\x7e]{1,4096}$")  # printable ASCII, no spaces: nothing that can split a header
_BRANCH = re.compile(r"^[^\x00-\x20\x7f~^:?*\[\\]{1,255}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SCP_REMOTE = re.compile(r"^(?:[^@/\s]+@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?!//)(?P<path>\S+)$")


class ForgeError(GitOpsError):
    """A forge API call that failed: the message names the call, the repository and branches, the
    HTTP status, the API's own message and what to do. `status` is None when no answer came."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    def __reduce__(self):
        return type(self), (str(self), self.status)


@dataclass(frozen=True)
class ForgeConfig:
    """Where the review branch's pull/merge request is opened. `api_url` is the REST API's root
    (https://api.github.com, https://HOST/api/v3 for GitHub Enterprise, https://HOST/api/v4 for
    GitLab); `repository` is `owner/name` (GitHub) or `group/subgroup/project` (GitLab)."""

    kind: Literal["github", "gitlab"]
    api_url: str
    repository: str
    token: str

    def __post_init__(self) -> None:
        if self.kind not in _FORGE_NAMES:
            raise BadInputError(f"forge kind must be 'github' or 'gitlab', not {self.kind!r}")
        object.__setattr__(self, "api_url", _checked_api_url(self.api_url))
        if not isinstance(self.repository, str) or not _REPOSITORY_SHAPE[self.kind].match(self.repository):
            shape = "owner/name" if self.kind == "github" else "group/project or group/subgroup/.../project"
            raise BadInputError(f"forge repository {self.repository!r} must be {shape} ({self.kind})")
        if any(part.endswith(".git") for part in self.repository.split("/")):
            raise BadInputError(f"forge repository {self.repository!r}: name it without the .git suffix")
        if not isinstance(self.token, str) or not _TOKEN.match(self.token):
            raise BadInputError(
                "forge token must be non-empty printable text without whitespace or newlines (its value is not shown)"
            )

    def __repr__(self) -> str:
        return f"ForgeConfig(kind={self.kind!r}, api_url={self.api_url!r}, repository={self.repository!r}, token=***)"

    __str__ = __repr__


def _checked_api_url(api_url: object) -> str:
    if not isinstance(api_url, str) or not api_url or len(api_url) > 2048:
        raise BadInputError("forge api_url must be an http(s) URL of at most 2,048 characters")
    shown = redact(api_url)
    if _CONTROL.search(api_url) or any(c.isspace() for c in api_url):
        raise BadInputError(f"forge api_url {shown!r} must not contain whitespace or control characters")
    parts = urllib.parse.urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(f"forge api_url {shown!r} must be an http:// or https:// URL with a host")
    if "@" in parts.netloc:
        raise BadInputError(f"forge api_url {shown!r} must not carry credentials: the token is given on its own")
    if parts.query or parts.fragment:
        raise BadInputError(f"forge api_url {shown!r} must not have a query or fragment")
    return api_url.rstrip("/")


def forge_from_remote(remote: str, kind: str | None, api_url: str | None, token: str) -> ForgeConfig:
    """The forge of a GitOps remote (https://github.com/o/r(.git), git@github.com:o/r.git,
    ssh://git@gitlab.com/g/sub/p.git, ...). github.com and gitlab.com are recognised; a
    self-hosted host needs `kind` and `api_url` given. An explicit `api_url` always wins."""
    if not isinstance(remote, str) or not remote.strip():
        raise BadInputError("GitOps remote is empty: cannot tell which forge hosts it")
    shown = redact(remote)
    host, path = _remote_host_and_path(remote, shown)
    known = _KNOWN_HOSTS.get(host)
    if known is not None:
        if kind is not None and kind != known[0]:
            raise BadInputError(f"GitOps remote {shown} is on {host}, a {known[0]} host, but forge kind is {kind!r}")
        kind, api_url = kind or known[0], api_url or known[1]
    elif kind is None or api_url is None:
        raise BadInputError(
            f"GitOps remote {shown} is on the self-hosted host {host}: set the forge kind ('github' or 'gitlab') "
            f"and its api_url (GitHub Enterprise: https://{host}/api/v3; GitLab: https://{host}/api/v4)"
        )
    repository = path.strip("/")
    repository = repository[: -len(".git")] if repository.endswith(".git") else repository
    try:
        return ForgeConfig(kind=kind, api_url=api_url, repository=repository, token=token)  # type: ignore[arg-type]
    except BadInputError as exc:
        raise BadInputError(f"GitOps remote {shown}: {exc}") from None


def _remote_host_and_path(remote: str, shown: str) -> tuple[str, str]:
    if _CONTROL.search(remote) or any(c.isspace() for c in remote):
        raise BadInputError(f"GitOps remote {shown!r} must not contain whitespace or control characters")
    if "://" in remote:
        parts = urllib.parse.urlsplit(remote)
        if parts.scheme not in ("https", "http", "ssh", "git"):
            raise BadInputError(f"GitOps remote {shown}: a {parts.scheme}:// remote has no forge to open requests on")
        if not parts.hostname or parts.query or parts.fragment:
            raise BadInputError(f"GitOps remote {shown}: expected scheme://host/owner/repository(.git)")
        return parts.hostname.lower(), parts.path
    scp = _SCP_REMOTE.match(remote)
    if scp is None:
        raise BadInputError(
            f"GitOps remote {shown}: a local path has no forge; expected https://host/owner/repository(.git) "
            "or git@host:owner/repository.git"
        )
    return scp["host"].lower(), scp["path"]


@dataclass(frozen=True)
class PullRequest:
    """An open pull/merge request: its number (GitLab's iid), its web page, and whether this call
    opened it (False: an open one for the same head branch was updated)."""

    number: int
    url: str
    created: bool


def open_or_update_pull_request(
    forge: ForgeConfig,
    head: str,
    base: str,
    title: str,
    body: str,
    labels: tuple[str, ...] = (),
    timeout: float = 10,
) -> PullRequest:
    """Open the pull/merge request of `head` into `base`, or update the open one (title, body,
    labels) when there is one already. The body is cut to the forge's limit with a visible note."""
    if not isinstance(forge, ForgeConfig):
        raise BadInputError(f"forge must be a ForgeConfig, not {type(forge).__name__}")
    for name, branch in (("head", head), ("base", base)):
        if not isinstance(branch, str) or not _BRANCH.match(branch) or ".." in branch or branch.endswith("/"):
            raise BadInputError(f"pull request {name} branch {branch!r} is not a valid branch name")
    if head == base:
        raise BadInputError(f"pull request head and base are the same branch ({head}): nothing to review")
    if not isinstance(title, str) or not title.strip() or len(title) > TITLE_LIMIT or _CONTROL.search(title):
        raise BadInputError(f"pull request title must be one line of 1 to {TITLE_LIMIT} characters, not {title!r:.80}")
    if not isinstance(body, str):
        raise BadInputError(f"pull request body must be text, not {type(body).__name__}")
    labels = _checked_labels(labels)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout <= 600):
        raise BadInputError(f"forge timeout must be a number of seconds in (0, 600], not {timeout!r}")

    client = (_GitHub if forge.kind == "github" else _GitLab)(forge, head, base, float(timeout))
    body = fit_body(body, GITHUB_BODY_LIMIT if forge.kind == "github" else GITLAB_BODY_LIMIT)
    existing = client.find_open()
    if existing is None:
        try:
            number, url = client.create(title, body, labels)
        except ForgeError as exc:
            # Another run may have opened it since the search: use that one, else report the refusal.
            if exc.status not in (409, 422):
                raise
            existing = client.find_open()
            if existing is None:
                raise
        else:
            client.add_labels(number, url, labels)
            return PullRequest(number=number, url=url, created=True)
    number, url = client.update(existing, title, body, labels)
    client.add_labels(number, url, labels)
    return PullRequest(number=number, url=url, created=False)


def _checked_labels(labels: object) -> tuple[str, ...]:
    if not isinstance(labels, (tuple, list)) or len(labels) > 20:
        raise BadInputError("pull request labels must be a tuple of at most 20 names")
    for label in labels:
        if not isinstance(label, str) or not label.strip() or len(label) > LABEL_LIMIT:
            raise BadInputError(f"pull request label {label!r} must be a name of 1 to {LABEL_LIMIT} characters")
        if "," in label or _CONTROL.search(label):
            raise BadInputError(f"pull request label {label!r} must not contain commas or control characters")
    return tuple(dict.fromkeys(labels))


def fit_body(body: str, limit: int) -> str:
    """`body` if it fits in `limit` characters, else its start and a note saying it was cut."""
    if len(body) <= limit:
        return body
    note = f"\n\n---\n*(truncated: the first {{shown:,}} of {len(body):,} characters are shown)*\n"
    shown = limit - len(note.format(shown=limit))
    while shown + 1 + len(note.format(shown=shown + 1)) <= limit:  # the count may print shorter than the limit
        shown += 1
    return body[:shown] + note.format(shown=shown)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect becomes an HTTPError: following it would resend the token to wherever it points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class _Client:
    """One forge, one head and base branch: the calls, and the errors that name all of them."""

    def __init__(self, forge: ForgeConfig, head: str, base: str, timeout: float):
        self.forge, self.head, self.base, self.timeout = forge, head, base, timeout

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def find_open(self) -> tuple[int, str] | None:
        raise NotImplementedError

    def create(self, title: str, body: str, labels: tuple[str, ...]) -> tuple[int, str]:
        raise NotImplementedError

    def update(self, existing: tuple[int, str], title: str, body: str, labels: tuple[str, ...]) -> tuple[int, str]:
        raise NotImplementedError

    def add_labels(self, number: int, url: str, labels: tuple[str, ...]) -> None:
        """Labels a forge cannot set in the create or update call itself."""

    def call(self, action: str, method: str, path: str, query: dict | None = None, payload: Any = None) -> Any:
        url = self.forge.api_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if payload is None else json.dumps(payload).encode()
        headers = {**self.headers(), "User-Agent": USER_AGENT}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        deadline = time.monotonic() + self.timeout
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                status, content_type = response.status, response.headers.get("Content-Type", "")
                try:
                    raw = _read_bounded(response, MAX_RESPONSE_BYTES, deadline)
                except _TooLarge:
                    too_large = f"the answer is larger than {MAX_RESPONSE_BYTES:,} bytes"
                    raise self.error(action, status, too_large, _CHECK_API_URL) from None
        except urllib.error.HTTPError as exc:
            status, headers_in = exc.code, exc.headers
            try:
                detail = _api_message(_read_bounded(exc, 64 * 1024, deadline))
            except (OSError, http.client.HTTPException, _TooLarge):
                detail = ""
            finally:
                exc.close()
            raise self.error(action, status, detail, _advice(self.forge, status, headers_in)) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, refused, reset, bad status line
            problem, advice = _network_problem(exc, self.timeout)
            raise self.error(action, None, problem, advice) from None
        if not raw.strip() and status == 204:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            answer = f"HTTP {status} with a body that is not JSON (Content-Type {content_type or 'none'})"
            raise self.error(action, status, answer, _CHECK_API_URL) from None

    def error(self, action: str, status: int | None, detail: str, advice: str) -> ForgeError:
        forge = _FORGE_NAMES[self.forge.kind]
        what = f"{forge} {action} for {self.forge.repository} ({self.head} -> {self.base}) at {self.forge.api_url}"
        http_status = f"HTTP {status}" if status is not None else ""
        answer = ": ".join(part for part in (http_status, detail.rstrip(". ")) if part)
        message = f"{what} failed: {answer}. {advice or _UNEXPECTED_SHAPE}"
        return ForgeError(_scrub(message, self.forge.token), status=status)

    def field(self, action: str, status: int, value: Any, path: str, kind: type) -> Any:
        """`value`'s field at `path` (dotted, [i] for list items) checked to be of type `kind`."""
        current = value
        for step in re.findall(r"\[\d+\]|[^.\[]+", path):
            if step.startswith("["):
                index = int(step[1:-1])
                current = current[index] if isinstance(current, list) and index < len(current) else None
            else:
                current = current.get(step) if isinstance(current, dict) else None
        valid = isinstance(current, kind) and not isinstance(current, bool)
        if valid and kind is int:
            valid = current > 0
        if valid and kind is str and path.endswith("url"):
            valid = current.startswith(("https://", "http://"))
        if not valid:
            expected = {int: "a positive integer", str: "text", list: "a list", dict: "an object"}[kind]
            raise self.error(action, status, f"the answer's field `{path}` is {_describe(current)}, not {expected}", "")
        return current


class _TooLarge(Exception):
    pass


_UNEXPECTED_SHAPE = "The answer is not in the API's documented shape: check that api_url is the forge's REST API root"
_UNAVAILABLE = "The forge is unavailable: retry later"
_CHECK_API_URL = "Check that api_url is the forge's REST API root (https://api.github.com, https://HOST/api/v4)"


def _read_bounded(response, limit: int, deadline: float) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = response.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        if time.monotonic() > deadline:
            raise TimeoutError("the answer took longer than the timeout to arrive")


def _network_problem(exc: BaseException, timeout: float) -> tuple[str, str]:
    """What went wrong on the way to the forge, and what to do about it."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s (timed out)", _UNAVAILABLE
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused", _UNAVAILABLE
    problem = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    if isinstance(reason, ssl.SSLError):
        return problem, "The TLS connection failed: check api_url's host and the certificate authorities trusted here"
    return problem, f"{_UNAVAILABLE}, and check api_url if it persists"


def _api_message(raw: bytes) -> str:
    """The API's own error text: GitHub's `message` and `errors`, GitLab's `message` (text, list
    or field map) and `error`/`error_description`."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        text = raw.decode("utf-8", "replace").strip()
        return _one_line(text) if text and not text.lstrip().startswith("<") else ""
    if not isinstance(document, dict):
        return ""
    parts = [_flatten(document.get("message"))]
    errors = document.get("errors")
    if isinstance(errors, list):
        parts.extend(_github_error(e) for e in errors[:10])
    parts += [_flatten(document.get("error")), _flatten(document.get("error_description"))]
    return _one_line("; ".join(p for p in parts if p))


def _github_error(error: Any) -> str:
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            return error["message"]
        described = [f"{k}={error[k]}" for k in ("resource", "field", "code", "value") if isinstance(error.get(k), str)]
        return " ".join(described)
    return _flatten(error)


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "; ".join(_flatten(v) for v in value[:10] if _flatten(v))
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in list(value.items())[:10])
    return "" if value is None else str(value)


def _one_line(text: str) -> str:
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= MAX_ERROR_DETAIL_CHARS else text[:MAX_ERROR_DETAIL_CHARS] + "..."


def _describe(value: Any) -> str:
    return "missing" if value is None else f"{type(value).__name__} {_one_line(repr(value))[:60]}"


def _scrub(text: str, token: str) -> str:
    return redact(text.replace(token, "***")) if token else redact(text)


def _advice(forge: ForgeConfig, status: int, headers) -> str:
    github = forge.kind == "github"
    if 300 <= status < 400:
        location = redact(str(headers.get("Location", "")))[:200] if headers is not None else ""
        return (
            f"The API answered with a redirect{f' to {location}' if location else ''}, which is not followed so the "
            "token stays with the configured host: set api_url to the API's final address"
        )
    rate_limited = headers is not None and (headers.get("X-RateLimit-Remaining") == "0" or headers.get("Retry-After"))
    if status == 429 or (status == 403 and rate_limited):
        wait = headers.get("Retry-After") if headers is not None else None
        return f"Rate limited by the forge: retry later{f' (after {wait} s)' if wait else ''}"
    if status == 401:
        return "The token is invalid or expired: check the secret that holds it"
    if status == 403:
        needed = (
            "a fine-grained token needs `pull_requests: write` on the repository, a classic token the `repo` scope"
            if github
            else "the token needs the `api` scope and at least the Developer role on the project"
        )
        return f"The token lacks permission: {needed}"
    if status == 404:
        what = "repository" if github else "project"
        return f"The {what} {forge.repository} is not found or not visible to the token: check the name and its access"
    if status in (400, 409, 422):
        return (
            "The forge refused the request: fix what its message names (the head branch must be pushed and differ "
            "from the base; close a conflicting request)"
        )
    if status >= 500:
        return _UNAVAILABLE
    return "Unexpected answer from the forge"


class _GitHub(_Client):
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.forge.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    @property
    def prefix(self) -> str:
        owner, name = self.forge.repository.split("/")
        return f"/repos/{urllib.parse.quote(owner)}/{urllib.parse.quote(name)}"

    def find_open(self) -> tuple[int, str] | None:
        action = "search for an open pull request"
        owner = self.forge.repository.split("/")[0]
        query = {"state": "open", "head": f"{owner}:{self.head}", "base": self.base, "per_page": "100"}
        found = self.call(action, "GET", f"{self.prefix}/pulls", query)
        if not isinstance(found, list):
            raise self.error(action, 200, f"the answer is {_describe(found)}, not a list of pull requests", "")
        matches = []
        for i, _ in enumerate(found):
            number = self.field(action, 200, found, f"[{i}].number", int)
            url = self.field(action, 200, found, f"[{i}].html_url", str)
            state = self.field(action, 200, found, f"[{i}].state", str)
            head = self.field(action, 200, found, f"[{i}].head.ref", str)
            base = self.field(action, 200, found, f"[{i}].base.ref", str)
            # The filter is the server's; a head of another owner (a fork) or a stale answer is not ours.
            label = found[i]["head"].get("label")
            if state == "open" and head == self.head and base == self.base and label in (None, f"{owner}:{head}"):
                matches.append((number, url))
        return min(matches) if matches else None

    def create(self, title: str, body: str, labels: tuple[str, ...]) -> tuple[int, str]:
        action = "create pull request"
        payload = {"title": title, "head": self.head, "base": self.base, "body": body, "maintainer_can_modify": False}
        created = self.call(action, "POST", f"{self.prefix}/pulls", payload=payload)
        number = self.field(action, 201, created, "number", int)
        return number, self.field(action, 201, created, "html_url", str)

    def update(self, existing: tuple[int, str], title: str, body: str, labels: tuple[str, ...]) -> tuple[int, str]:
        number = existing[0]
        action = f"update pull request #{number}"
        updated = self.call(action, "PATCH", f"{self.prefix}/pulls/{number}", payload={"title": title, "body": body})
        if self.field(action, 200, updated, "number", int) != number:
            raise self.error(action, 200, f"the answer names another pull request than #{number}", "")
        return number, self.field(action, 200, updated, "html_url", str)

    def add_labels(self, number: int, url: str, labels: tuple[str, ...]) -> None:
        if labels:
            action = f"add labels to pull request #{number} ({url})"
            path = f"{self.prefix}/issues/{number}/labels"
            answer = self.call(action, "POST", path, payload={"labels": list(labels)})
            if not isinstance(answer, list):
                raise self.error(action, 200, f"the answer is {_describe(answer)}, not a list of labels", "")


class _GitLab(_Client):
    def headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.forge.token, "Accept": "application/json"}

    @property
    def prefix(self) -> str:
        return f"/projects/{urllib.parse.quote(self.forge.repository, safe='')}"

    def find_open(self) -> tuple[int, str] | None:
        action = "search for an open merge request"
        query = {"state": "opened", "source_branch": self.head, "target_branch": self.base, "per_page": "100"}
        found = self.call(action, "GET", f"{self.prefix}/merge_requests", query)
        if not isinstance(found, list):
            raise self.error(action, 200, f"the answer is {_describe(found)}, not a list of merge requests", "")
        matches = []
        for i, _ in enumerate(found):
            iid = self.field(action, 200, found, f"[{i}].iid", int)
            url = self.field(action, 200, found, f"[{i}].web_url", str)
            state = self.field(action, 200, found, f"[{i}].state", str)
            source = self.field(action, 200, found, f"[{i}].source_branch", str)
            target = self.field(action, 200, found, f"[{i}].target_branch", str)
            if state == "opened" and source == self.head and target == self.base:
                matches.append((iid, url))
        return min(matches) if matches else None

    def create(self, title: str, body: str, labels: tuple[str, ...]) -> tuple[int, str]:
        action = "create merge request"
        payload: dict[str, Any] = {
            "source_branch": self.head,
            "target_branch": self.base,
            "title": title,
            "description": body,
            "remove_source_branch": True,
        }
        if labels:
            payload["labels"] = ",".join(labels)
        created = self.call(action, "POST", f"{self.prefix}/merge_requests", payload=payload)
        return self.field(action, 201, created, "iid", int), self.field(action, 201, created, "web_url", str)

    def update(self, existing: tuple[int, str], title: str, body: str, labels: tuple[str, ...]) -> tuple[int, str]:
        iid = existing[0]
        action = f"update merge request !{iid}"
        payload: dict[str, Any] = {"title": title, "description": body}
        if labels:
            payload["add_labels"] = ",".join(labels)  # keeps labels people added by hand
        updated = self.call(action, "PUT", f"{self.prefix}/merge_requests/{iid}", payload=payload)
        if self.field(action, 200, updated, "iid", int) != iid:
            raise self.error(action, 200, f"the answer names another merge request than !{iid}", "")
        return iid, self.field(action, 200, updated, "web_url", str)
