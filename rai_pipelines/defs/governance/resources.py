import dagster as dg

from rai_pipelines.governance.bundle import DEFAULT_PACKAGE, PolicyBundle
from rai_pipelines.governance.rego import PolicyEngine, RegopyEngine, TimeBoundedEngine


class PolicyResource(dg.ConfigurableResource):
    """The Rego bundle and the engine that evaluates it (embedded regopy by default)."""

    bundle_dir: str
    # The model registry, whose teams decide which team's thresholds apply (data.registry.teams).
    registry_dir: str | None = None
    package: str = DEFAULT_PACKAGE
    engine: str = "regopy"
    # Evaluate in a child process stopped after this many seconds, so that a runaway policy cannot
    # stall the sensor past Dagster's 60 s tick limit; None evaluates in-process.
    evaluation_timeout_s: float | None = 40.0

    def bundle(self) -> PolicyBundle:
        bundle = PolicyBundle.load(self.bundle_dir)
        if self.registry_dir:
            from rai_pipelines.core.registry import load_registry

            bundle = bundle.with_registry(load_registry(self.registry_dir))
        return bundle

    def policy_engine(self) -> PolicyEngine:
        if self.engine != "regopy":
            raise ValueError(
                f"policy engine {self.engine!r} is not available yet: only the embedded 'regopy' engine is built"
            )
        if self.evaluation_timeout_s:
            return TimeBoundedEngine(RegopyEngine(), self.evaluation_timeout_s)
        return RegopyEngine()
