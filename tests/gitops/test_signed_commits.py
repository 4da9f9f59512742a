"""Signed rollback commits (an SSH or OpenPGP key from a secret) checked with `git verify-commit`
on a clone of what the remote received, and the dry run that pushes nothing; against a bare
repository served by a real `git daemon` on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from rai_pipelines.core.errors import GitOpsError
from rai_pipelines.gitops.git import CommitSigning, GitOpsCheckout, remote_head, run_git
from rai_pipelines.governance.rego import make_engine
from rai_pipelines.governance.rollback import review_branch, rollback_model
from rai_pipelines.settings import PROJECT_ROOT
from tests.gitops.test_gitops import FACTS, OVERLAY

AUTHOR_EMAIL = "rai-pipelines@localhost"


def _ssh_key(directory: Path, name: str) -> tuple[str, str]:
    """A new ed25519 key pair without a passphrase: (private key text, public key line)."""
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return path.read_text(), (directory / f"{name}.pub").read_text().strip()


def _gpg(home: Path, *args: str, stdin: str = "") -> str:
    env = {**os.environ, "GNUPGHOME": str(home)}
    return subprocess.run(
        ["gpg", "--batch", *args], input=stdin, env=env, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def gnupg_home():
    """A GnuPG home with a short path (gpg-agent's socket must fit a Unix socket path), agent stopped after."""
    home = Path(tempfile.mkdtemp(prefix="t-gpg-"))
    yield home
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": str(home)}, check=False)
    shutil.rmtree(home, ignore_errors=True)


def _gpg_key(home: Path) -> tuple[str, str]:
    """A new OpenPGP signing key without a passphrase: (armoured private key, armoured public key)."""
    uid = f"rai-pipelines <{AUTHOR_EMAIL}>"
    loopback = ("--passphrase", "", "--pinentry-mode", "loopback")
    _gpg(home, *loopback, "--quick-gen-key", uid, "ed25519", "sign", "never")
    return _gpg(home, *loopback, "--armor", "--export-secret-keys", uid), _gpg(home, "--armor", "--export", uid)


def _rollback(co, specs, bundle, dry_run=False):
    return rollback_model(
        co,
        specs["credit-scoring-ai"],
        OVERLAY,
        "credit-scoring-ai",
        "2.0.0",
        "d-signed",
        make_engine("opa"),
        bundle,
        FACTS,
        dry_run=dry_run,
    )


def _clone(url: str, target: Path) -> Path:
    run_git(["clone", "--quiet", url, str(target)])
    return target


def test_an_ssh_signed_rollback_verifies_on_the_remote_with_its_key_and_not_with_another(
    remote, git_daemon, specs, bundle, tmp_path
):
    private, public = _ssh_key(tmp_path, "signing")
    _, stranger = _ssh_key(tmp_path, "stranger")
    url = git_daemon.url(remote)
    with GitOpsCheckout(url, "main", str(tmp_path / "work"), signing=CommitSigning("ssh", private)) as co:
        result = _rollback(co, specs, bundle)
    assert result.status == "committed" and remote_head(url, "main") == result.commit_sha

    clone = _clone(url, tmp_path / "auditor")
    for name, key, verifies in (("trusted", public, True), ("untrusted", stranger, False)):
        signers = tmp_path / f"allowed_signers_{name}"
        signers.write_text(f"{AUTHOR_EMAIL} {key}\n")
        verify = subprocess.run(
            ["git", "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", result.commit_sha],
            cwd=clone,
            capture_output=True,
            text=True,
        )
        assert (verify.returncode == 0) is verifies, verify.stderr
    assert (
        'Good "git" signature for rai-pipelines@localhost'
        in subprocess.run(
            [
                "git",
                "-c",
                f"gpg.ssh.allowedSignersFile={tmp_path / 'allowed_signers_trusted'}",
                "verify-commit",
                result.commit_sha,
            ],
            cwd=clone,
            capture_output=True,
            text=True,
        ).stderr
    )


def test_a_gpg_signed_rollback_verifies_with_the_public_key_only(
    remote, git_daemon, specs, bundle, tmp_path, gnupg_home
):
    private, public = _gpg_key(gnupg_home)
    url = git_daemon.url(remote)
    with GitOpsCheckout(url, "main", str(tmp_path / "work"), signing=CommitSigning("gpg", private)) as co:
        result = _rollback(co, specs, bundle)
    assert result.status == "committed"

    auditor = gnupg_home / "auditor"
    auditor.mkdir(mode=0o700)
    _gpg(auditor, "--import", stdin=public)
    assert "sec" not in _gpg(auditor, "--list-secret-keys")  # the auditor holds the public half only
    clone = _clone(url, tmp_path / "auditor")
    verify = subprocess.run(
        ["git", "verify-commit", result.commit_sha],
        cwd=clone,
        env={**os.environ, "GNUPGHOME": str(auditor)},
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and "Good signature" in verify.stderr, verify.stderr


@pytest.mark.parametrize(
    ("fmt", "key", "problem"),
    [
        ("ssh", "not a key", "not an OpenSSH private key"),
        ("gpg", "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n", "PGP private key"),
        (
            "ssh",
            "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "A" * 70_000 + "\n-----END OPENSSH PRIVATE KEY-----\n",
            "at most",
        ),
        ("x509", "anything", "must be 'ssh' or 'gpg'"),
    ],
)
def test_a_signing_secret_that_is_not_a_private_key_is_refused_without_showing_it(fmt, key, problem):
    with pytest.raises(GitOpsError, match=problem) as caught:
        CommitSigning(fmt, key)
    assert key[:40] not in str(caught.value) or key == "anything"


def test_a_key_ssh_keygen_cannot_use_fails_before_anything_is_committed(remote, git_daemon, tmp_path):
    corrupt = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ==\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    url = git_daemon.url(remote)
    before = remote_head(url, "main")
    signing = CommitSigning("ssh", corrupt)
    assert "AAAAB3" not in repr(signing)
    with pytest.raises(GitOpsError, match="ssh-keygen cannot read"):
        with GitOpsCheckout(url, "main", str(tmp_path / "work"), signing=signing):
            pass
    assert remote_head(url, "main") == before


def test_a_dry_run_shows_the_diff_message_and_target_and_pushes_nothing(remote, git_daemon, specs, bundle, tmp_path):
    url = git_daemon.url(remote)
    before = run_git(["--git-dir", str(remote), "for-each-ref", "--format=%(refname) %(objectname)"])
    with GitOpsCheckout(url, "main", str(tmp_path / "work")) as co:
        result = _rollback(co, specs, bundle, dry_run=True)
    assert result.status == "dry_run" and result.target_version == "1.4.2" and result.branch == "main"
    assert '-    newTag: "2.0.0"' in result.diff and '+    newTag: "1.4.2"' in result.diff
    assert '+        model-version: "1.4.2"' in result.diff
    assert result.commit_message.startswith("rollback(credit-scoring-ai): pin 1.4.2, 2.0.0 violates policy")
    assert "Rai-Decision-Id: d-signed" in result.commit_message
    # every ref of the remote is where it was: no branch pushed, none moved
    assert run_git(["--git-dir", str(remote), "for-each-ref", "--format=%(refname) %(objectname)"]) == before


def _lake_with_facts(root: Path) -> str:
    from rai_pipelines.core import datasets
    from rai_pipelines.core.lake import Lake
    from rai_pipelines.governance.facts import facts_table

    lake = Lake(str(root))
    for row in FACTS:
        lake.write_table(
            datasets.GOVERNANCE_FACTS, {"model": row["model_name"], "date": row["date"]}, facts_table([row])
        )
    return str(root)


def test_the_rollback_command_dry_run_prints_what_it_would_push_and_pushes_nothing(
    remote, git_daemon, tmp_path, capsys
):
    from rai_pipelines.cli import main

    url = git_daemon.url(remote)
    before = run_git(["--git-dir", str(remote), "for-each-ref", "--format=%(refname) %(objectname)"])
    common = ["--app", "credit-scoring-ai", "--bad-version", "2.0.0", "--overlay", OVERLAY, "--remote", url]
    common += ["--lake", _lake_with_facts(tmp_path / "lake"), "--workdir", str(tmp_path / "work")]
    common += ["--registry", str(PROJECT_ROOT / "models"), "--bundle", str(PROJECT_ROOT / "policies")]
    assert main(["rollback", "--dry-run", *common]) == 0
    out = capsys.readouterr().out
    assert f"dry run: nothing pushed. Would push to {url} branch main" in out
    assert "    rollback(credit-scoring-ai): pin 1.4.2, 2.0.0 violates policy" in out
    assert '+        model-version: "1.4.2"' in out
    assert main(["rollback", "--dry-run", *common, "--mode", "branch"]) == 0
    assert f"branch {review_branch('credit-scoring-ai', '2.0.0', OVERLAY)}\n" in capsys.readouterr().out
    # without --dry-run the command refuses: the pushing rollback is the Dagster job, in the decision log
    assert main(["rollback", *common]) == 2
    assert "only runs as --dry-run" in capsys.readouterr().err
    assert run_git(["--git-dir", str(remote), "for-each-ref", "--format=%(refname) %(objectname)"]) == before
