import dagster as dg

from rai_pipelines.registry import ModelSpec, load_registry


class ModelRegistryResource(dg.ConfigurableResource):
    """The model registry: one YAML file per model."""

    directory: str

    def models(self) -> dict[str, ModelSpec]:
        return load_registry(self.directory)

    def model(self, name: str) -> ModelSpec:
        models = self.models()
        if name not in models:
            raise KeyError(f"model {name} is not in the registry at {self.directory}")
        return models[name]
