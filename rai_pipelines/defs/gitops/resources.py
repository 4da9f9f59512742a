from pathlib import Path

import dagster as dg

from rai_pipelines.gitops.git import CommitSigning, GitOpsCheckout, remote_head


class GitOpsResource(dg.ConfigurableResource):
    """The GitOps repository Argo CD or Flux reconciles: a local bare repository by default, any
    Git remote (HTTPS or SSH, with credentials from the environment) in production."""

    remote: str  # never with credentials in it: Dagster stores config values in its snapshots
    branch: str = "main"
    overlay_glob: str = "apps/*/overlays/production"
    workdir: str | None = None
    author: str = "rai-pipelines <rai-pipelines@localhost>"
    # The HTTPS token, given as dg.EnvVar("RAI_GITOPS_TOKEN"): Dagster keeps the variable's name, not
    # its value; git gets it from a credential helper, never in a URL or an argument.
    token: str | None = None
    # The key that signs every rollback commit, given as dg.EnvVar("RAI_GITOPS_SIGNING_KEY"): an
    # OpenSSH private key ("ssh") or an armoured OpenPGP private key ("gpg"), without a passphrase.
    signing_key: str | None = None
    signing_format: str = "ssh"

    def checkout(self) -> GitOpsCheckout:
        signing = CommitSigning(self.signing_format, self.signing_key) if self.signing_key else None
        return GitOpsCheckout(self.remote, self.branch, self.workdir, self.author, self.token, signing)

    def render_cache_dir(self) -> str | None:
        """Where renders of the overlays are kept between processes: beside the checkouts."""
        return str(Path(self.workdir) / "render-cache") if self.workdir else None

    def head(self) -> str:
        return remote_head(self.remote, self.branch, self.token)
