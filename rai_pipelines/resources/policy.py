import dagster as dg

from rai_pipelines.policy import DEFAULT_PACKAGE, PolicyBundle, PolicyEngine, RegopyEngine


class PolicyResource(dg.ConfigurableResource):
    """The Rego bundle and the engine that evaluates it (embedded regopy by default)."""

    bundle_dir: str
    package: str = DEFAULT_PACKAGE
    engine: str = "regopy"

    def bundle(self) -> PolicyBundle:
        return PolicyBundle.load(self.bundle_dir)

    def policy_engine(self) -> PolicyEngine:
        if self.engine != "regopy":
            raise ValueError(
                f"policy engine {self.engine!r} is not available yet: only the embedded 'regopy' engine is built"
            )
        return RegopyEngine()
