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
from dataclasses import dataclass
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


def run_git(
    args: list[str],
    cwd: str | Path | None = None,
    timeout: float = 60,
    token: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> str:
    env = {**os.environ, **GIT_ENV, **(extra_env or {})}
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

MAX_SIGNING_KEY_BYTES = 64 * 1024
_SSH_PRIVATE_KEY = re.compile(
    r"^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END OPENSSH PRIVATE KEY-----\n?$"
)
_PGP_PRIVATE_KEY = re.compile(
    r"^-----BEGIN PGP PRIVATE KEY BLOCK-----\n(?:[^\n]*\n)+?-----END PGP PRIVATE KEY BLOCK-----\n?$"
)


@dataclass(frozen=True)
class CommitSigning:
    """The key that signs every rollback commit, from a secret: an OpenSSH private key (git's
    `gpg.format=ssh`) or an ASCII-armoured OpenPGP private key, without a passphrase (the secret
    store protects it). Never shown: the repr names the format only."""

    format: str  # "ssh" or "gpg"
    key: str

    def __post_init__(self) -> None:
        if self.format not in ("ssh", "gpg"):
            raise GitOpsError(f"commit signing: format must be 'ssh' or 'gpg', not {self.format!r}")
        if not isinstance(self.key, str) or len(self.key.encode()) > MAX_SIGNING_KEY_BYTES:
            raise GitOpsError(f"commit signing: the key must be text of at most {MAX_SIGNING_KEY_BYTES:,} bytes")
        pattern = _SSH_PRIVATE_KEY if self.format == "ssh" else _PGP_PRIVATE_KEY
        if not pattern.match(self.key.replace("\r\n", "\n").strip() + "\n"):
            expected = "an OpenSSH private key" if self.format == "ssh" else "an ASCII-armoured PGP private key block"
            raise GitOpsError(f"commit signing: the {self.format} signing key is not {expected}")

    def __repr__(self) -> str:
        return f"CommitSigning(format={self.format!r}, key=***)"


def _run_tool(cmd: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    except subprocess.TimeoutExpired as exc:
        raise GitOpsError(f"commit signing: {cmd[0]} timed out") from exc


def _configure_signing(signing: CommitSigning, repo: Path, private_dir: Path) -> dict[str, str]:
    """Make every commit in `repo` signed with `signing`'s key, kept in `private_dir` (outside the
    work tree, mode 0700), and return the environment git needs for it. The commit is then
    verified locally before it is pushed (verify_head_signature)."""
    private_dir.mkdir(mode=0o700)
    key_text = signing.key.replace("\r\n", "\n").strip() + "\n"
    if signing.format == "ssh":
        key_file = private_dir / "signing_key"
        key_file.touch(mode=0o600)
        key_file.write_text(key_text)
        public = _run_tool(["ssh-keygen", "-y", "-f", str(key_file)], {})
        if public.returncode != 0:
            raise GitOpsError("commit signing: ssh-keygen cannot read the SSH signing key (a passphrase, or not a key)")
        email = run_git(["config", "user.email"], cwd=repo).strip()
        (private_dir / "allowed_signers").write_text(f"{email} {public.stdout.strip()}\n")
        settings = {
            "gpg.format": "ssh",
            "user.signingkey": str(key_file),
            "gpg.ssh.allowedSignersFile": str(private_dir / "allowed_signers"),
        }
        env: dict[str, str] = {}
    else:
        # gpg-agent's socket lives in GNUPGHOME and a Unix socket's path must stay under 108 bytes:
        # a short folder of its own in the system's temporary directory, removed with the checkout.
        gnupg_home = Path(tempfile.mkdtemp(prefix="rai-gpg-"))
        env = {"GNUPGHOME": str(gnupg_home)}
        imported = _run_tool(["gpg", "--batch", "--quiet", "--import"], env, key_text)
        listed = _run_tool(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env)
        fingerprints = [line.split(":")[9] for line in listed.stdout.splitlines() if line.startswith("fpr:")]
        if imported.returncode != 0 or not fingerprints:
            _run_tool(["gpgconf", "--kill", "gpg-agent"], env)
            shutil.rmtree(gnupg_home, ignore_errors=True)
            raise GitOpsError("commit signing: gpg cannot import the OpenPGP signing key (a passphrase, or not a key)")
        _run_tool(["gpg", "--batch", "--quiet", "--import-ownertrust"], env, f"{fingerprints[0]}:6:\n")
        settings = {"gpg.format": "openpgp", "user.signingkey": fingerprints[0]}
    for key, value in {**settings, "commit.gpgsign": "true"}.items():
        run_git(["config", key, value], cwd=repo)
    return env


class GitOpsCheckout:
    """A working clone of the GitOps remote, removed on exit."""

    def __init__(
        self,
        remote: str,
        branch: str,
        workdir: str | None = None,
        author: str = "rai-pipelines <rai-pipelines@localhost>",
        token: str | None = None,
        signing: CommitSigning | None = None,
    ):
        self.remote, self.branch, self.author, self._token = remote, branch, author, token
        self._workdir, self._signing = workdir, signing
        self._env: dict[str, str] = {}
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
        if self._signing is not None:
            try:
                self._env = _configure_signing(self._signing, self.path, Path(self._tmp) / "signing")
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    @property
    def signed(self) -> bool:
        return self._signing is not None

    def __exit__(self, *exc) -> None:
        gnupg_home = self._env.get("GNUPGHOME")
        if gnupg_home:
            _run_tool(["gpgconf", "--kill", "gpg-agent"], self._env)
            shutil.rmtree(gnupg_home, ignore_errors=True)
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
        run_git(args, cwd=self.path, extra_env=self._env)
        if self._signing is not None:
            self.verify_head_signature()
        return self.head

    def verify_head_signature(self) -> str:
        """`git verify-commit HEAD` with the signing key's own public half: a commit that is not
        signed, or signed by another key, is never pushed. Returns git's report of the signature."""
        try:
            return run_git(["verify-commit", "--raw", "HEAD"], cwd=self.path, extra_env=self._env)
        except GitOpsError as exc:
            raise GitOpsError(f"the rollback commit's signature does not verify: {exc}") from exc

    def push(self, branch: str | None = None, replace: bool = True) -> None:
        """Push HEAD to the tracked branch, or to `branch` (a review branch, created, or replaced
        when `replace`; otherwise an existing branch, maybe with a reviewer's commits, is refused)."""
        target = branch or self.branch
        if branch is not None and (not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$", branch) or ".." in branch):
            raise GitOpsError(f"refusing unsafe branch name {branch!r}")
        force = ["--force"] if branch is not None and replace else []
        try:
            run_git(
                ["push", "--quiet", *force, "origin", f"HEAD:refs/heads/{target}"],
                cwd=self.path,
                timeout=120,
                token=self._token,
            )
        except GitOpsError as exc:
            raise GitOpsError(f"pushing to {redact(self.remote)} branch {target}: {exc}") from exc

    def rebase_onto_remote(self) -> None:
        run_git(["fetch", "--quiet", "origin", self.branch], cwd=self.path, timeout=120, token=self._token)
        run_git(["rebase", "--quiet", f"origin/{self.branch}"], cwd=self.path)
