from pathlib import Path

import dagster as dg

from rai_pipelines.gitops.git import GitOpsCheckout, remote_head


class GitOpsResource(dg.ConfigurableResource):
    """The GitOps repository Argo CD or Flux reconciles: a local bare repository by default, any
    Git remote (HTTPS or SSH, with credentials from the environment) in production."""

    remote: str
    branch: str = "main"
    overlay_glob: str = "apps/*/overlays/production"
    workdir: str | None = None
    author: str = "rai-pipelines <rai-pipelines@localhost>"

    def checkout(self) -> GitOpsCheckout:
        return GitOpsCheckout(self.remote, self.branch, self.workdir, self.author)

    def render_cache_dir(self) -> str | None:
        """Where renders of the overlays are kept between processes: beside the checkouts."""
        return str(Path(self.workdir) / "render-cache") if self.workdir else None

    def head(self) -> str:
        return remote_head(self.remote, self.branch)
