"""GitOps repository operations with the git CLI: a checkout of the environment branch, commits
with trailers, pushes that survive races, and credentials redacted from everything shown.

The rollback is declarative: the overlay pins the last compliant image tag and `model-version`
label (manifests.py); Argo CD or Flux reconcile the change.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from rai_pipelines.core.errors import GitOpsError

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


# Git asks this helper for the password of an HTTPS remote; the token reaches it in the child's
# environment only, never in a URL, an argument, a config value Dagster stores, or a log.
_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" '
    '"${RAI_GIT_USERNAME:-x-access-token}" "$RAI_GIT_TOKEN"; }; f'
)


def has_credentials(remote: str) -> bool:
    """Whether a remote URL carries credentials (https://user:token@host/...)."""
    return bool(_URL_USERINFO.search(remote))


def run_git(args: list[str], cwd: str | Path | None = None, timeout: float = 60, token: str | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    prefix: list[str] = []
    if token:
        env["RAI_GIT_TOKEN"] = token
        prefix = ["-c", "credential.helper=", "-c", f"credential.helper={_CREDENTIAL_HELPER}"]
    try:
        out = subprocess.run(["git", *prefix, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise GitOpsError(redact(f"git {' '.join(args[:2])} timed out after {timeout:.0f} s")) from exc
    if out.returncode != 0:
        detail = out.stderr.strip() or out.stdout.strip()
        raise GitOpsError(redact(f"git {' '.join(args)} failed ({out.returncode}): {detail}"))
    return out.stdout


def remote_head(remote: str, branch: str, token: str | None = None) -> str:
    out = run_git(["ls-remote", "--heads", remote, branch], timeout=30, token=token)
    for line in out.splitlines():
        sha, ref = line.split("\t", 1)
        if ref == f"refs/heads/{branch}":
            return sha
    raise GitOpsError(f"branch {branch} not found on GitOps remote {remote}")


_TRAILER_VALUE = re.compile(r"^[^\n\r]{1,200}$")


class GitOpsCheckout:
    """A working clone of the GitOps remote, removed on exit."""

    def __init__(
        self,
        remote: str,
        branch: str,
        workdir: str | None = None,
        author: str = "rai-pipelines <rai-pipelines@localhost>",
        token: str | None = None,
    ):
        self.remote, self.branch, self.author, self._token = remote, branch, author, token
        self._workdir = workdir
        self.path: Path | None = None

    def __enter__(self) -> GitOpsCheckout:
        if self._workdir:
            Path(self._workdir).mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.mkdtemp(prefix="gitops-", dir=self._workdir)
        self.path = Path(self._tmp) / "repo"
        run_git(
            ["clone", "--quiet", "--branch", self.branch, self.remote, str(self.path)], timeout=120, token=self._token
        )
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
            run_git(
                ["push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}"],
                cwd=self.path,
                timeout=120,
                token=self._token,
            )
            return
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$", branch) or ".." in branch:
            raise GitOpsError(f"refusing unsafe branch name {branch!r}")
        force = ["--force"] if replace else []
        run_git(
            ["push", "--quiet", *force, "origin", f"HEAD:refs/heads/{branch}"],
            cwd=self.path,
            timeout=120,
            token=self._token,
        )

    def rebase_onto_remote(self) -> None:
        run_git(["fetch", "--quiet", "origin", self.branch], cwd=self.path, timeout=120, token=self._token)
        run_git(["rebase", "--quiet", f"origin/{self.branch}"], cwd=self.path)
