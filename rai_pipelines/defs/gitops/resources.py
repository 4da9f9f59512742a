from pathlib import Path

import dagster as dg

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.gitops.forges import ForgeConfig, forge_from_remote
from rai_pipelines.gitops.git import CommitSigning, GitOpsCheckout, remote_head
from rai_pipelines.gitops.sources import SourceOptions


class GitOpsResource(dg.ConfigurableResource):
    """The GitOps repository Argo CD or Flux reconciles: a local bare repository by default, any
    Git remote (HTTPS or SSH, with credentials from the environment) in production."""

    remote: str  # never with credentials in it: Dagster stores config values in its snapshots
    branch: str = "main"
    overlay_glob: str = "apps/*/overlays/production"
    # Deployment sources that are not kustomize overlays, as files: plain Deployment manifests, Argo CD
    # Applications (Helm parameters or kustomize images), Helm values files beside their chart
    source_glob: str | None = None
    # other URLs Argo CD Applications name this repository by (the remote is one)
    repo_urls: list[str] = []
    helm_image_tag_key: str = "image.tag"
    helm_version_label_key: str = "podLabels.model-version"
    workdir: str | None = None
    author: str = "rai-pipelines <rai-pipelines@localhost>"
    # The HTTPS token, given as dg.EnvVar("RAI_GITOPS_TOKEN"): Dagster keeps the variable's name, not
    # its value; git gets it from a credential helper, never in a URL or an argument.
    token: str | None = None
    # The key that signs every rollback commit, given as dg.EnvVar("RAI_GITOPS_SIGNING_KEY"): an
    # OpenSSH private key ("ssh") or an armoured OpenPGP private key ("gpg"), without a passphrase.
    signing_key: str | None = None
    signing_format: str = "ssh"
    # Pull or merge requests for review branches: "github" or "gitlab" (None: the branch only). The
    # API and the repository are inferred from github.com and gitlab.com remotes; a self-hosted
    # forge names them. The token, dg.EnvVar("RAI_GITOPS_FORGE_TOKEN"), may open pull requests.
    forge: str | None = None
    forge_api_url: str | None = None
    forge_repository: str | None = None
    forge_token: str | None = None
    pull_request_labels: list[str] = ["rai-pipelines", "rollback"]
    # "push": rollbacks the policies mark `rollback` are pushed to the branch; "review": every
    # rollback goes to a review branch (and a pull request, with a forge) for a person to merge
    remediation_mode: str = "push"
    # the web page of a commit, for links in alerts: "https://github.com/acme/gitops/commit/{sha}"
    commit_url_template: str | None = None

    def commit_link(self, sha: str | None) -> tuple[tuple[str, str], ...]:
        if not (self.commit_url_template and sha) or "{sha}" not in self.commit_url_template:
            return ()
        return (("Commit", self.commit_url_template.replace("{sha}", sha)),)

    def source_options(self) -> SourceOptions:
        return SourceOptions(
            gitops_repo_urls=(self.remote, *self.repo_urls),
            checkout_revisions=(self.branch,),
            helm_image_tag_key=self.helm_image_tag_key,
            helm_version_label_key=self.helm_version_label_key,
            argo_version_parameter=self.helm_version_label_key,
        )

    def forge_config(self) -> ForgeConfig | None:
        if not self.forge:
            return None
        if not self.forge_token:
            raise BadInputError(
                f"GitOps forge {self.forge!r} is configured without a token: set RAI_GITOPS_FORGE_TOKEN "
                "(a secret's environment variable) to a token that may open pull requests"
            )
        if self.forge_repository and self.forge_api_url:
            return ForgeConfig(self.forge, self.forge_api_url, self.forge_repository, self.forge_token)
        return forge_from_remote(self.remote, self.forge, self.forge_api_url, self.forge_token)

    def checkout(self) -> GitOpsCheckout:
        signing = CommitSigning(self.signing_format, self.signing_key) if self.signing_key else None
        return GitOpsCheckout(self.remote, self.branch, self.workdir, self.author, self.token, signing)

    def render_cache_dir(self) -> str | None:
        """Where renders of the overlays are kept between processes: beside the checkouts."""
        return str(Path(self.workdir) / "render-cache") if self.workdir else None

    def head(self) -> str:
        return remote_head(self.remote, self.branch, self.token)
