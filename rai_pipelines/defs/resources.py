"""Resources every domain uses: the lake (with the decision log and the pseudonymisation key) and
the model registry. Each domain's own resources are in its folder."""

import os
from pathlib import Path

import dagster as dg

from rai_pipelines.core.decision_log import DecisionLog
from rai_pipelines.core.lake import Lake
from rai_pipelines.core.registry import ModelSpec, load_registry, load_registry_reporting

MIN_KEY_BYTES, MAX_KEY_BYTES = 32, 4096


class LakeResource(dg.ConfigurableResource):
    """The lake (a local folder, or s3://bucket/prefix in production), the decision log, and the
    key that pseudonymises request ids (a file, e.g. a mounted Kubernetes secret)."""

    root: str
    decision_log_dir: str
    pseudonymisation_key_file: str
    # Only the embedded default creates its own key; in production a missing key (an unmounted
    # secret) is an error, or every pod would pseudonymise with a different random key.
    create_missing_key: bool = False

    def lake(self) -> Lake:
        return Lake(self.root)

    def decision_log(self) -> DecisionLog:
        return DecisionLog(self.decision_log_dir)

    def pseudonymisation_key(self) -> bytes:
        """Read the key; on the embedded default, create a random one on first use (mode 0600)."""
        path = Path(self.pseudonymisation_key_file)
        if not path.exists():
            if not self.create_missing_key:
                raise FileNotFoundError(f"pseudonymisation key file {path} is missing (mount the secret there)")
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another run created it first: use theirs
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(os.urandom(32).hex().encode())
        with open(path, "rb") as f:  # bounded: a key is a secret of a few bytes, never a file to slurp
            key = f.read(MAX_KEY_BYTES + 1).strip()
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"pseudonymisation key in {path} is shorter than {MIN_KEY_BYTES} bytes")
        if len(key) > MAX_KEY_BYTES:
            raise ValueError(
                f"pseudonymisation key in {path} is longer than {MAX_KEY_BYTES:,} bytes: is it the right file?"
            )
        return key


class ModelRegistryResource(dg.ConfigurableResource):
    """The model registry: one YAML file per model."""

    directory: str

    def models(self) -> dict[str, ModelSpec]:
        return load_registry(self.directory)

    def load_reporting(self) -> tuple[dict[str, ModelSpec], dict[str, str]]:
        """The valid models and the problem of each bad model file (by path)."""
        return load_registry_reporting(self.directory)

    def model(self, name: str) -> ModelSpec:
        models = self.models()
        if name not in models:
            raise KeyError(f"model {name} is not in the registry at {self.directory}")
        return models[name]
