import dagster as dg

from rai_pipelines.core.registry import load_registry
from rai_pipelines.governance.bundle import DEFAULT_PACKAGE, PolicyBundle
from rai_pipelines.governance.rego import PolicyEngine, TimeBoundedEngine, make_engine


class PolicyResource(dg.ConfigurableResource):
    """The Rego bundle and the engine that evaluates it: OPA's own evaluator by default, regopy on
    request."""

    bundle_dir: str
    # The model registry, whose teams decide which team's thresholds apply (data.registry.teams).
    registry_dir: str | None = None
    package: str = DEFAULT_PACKAGE
    engine: str = "opa"
    # Evaluate in a spawned child process stopped after this many seconds, so that a runaway policy
    # cannot stall the sensor past Dagster's 60 s tick limit; None evaluates in-process.
    evaluation_timeout_s: float | None = 40.0

    def bundle(self) -> PolicyBundle:
        bundle = PolicyBundle.load(self.bundle_dir)
        if self.registry_dir:
            bundle = bundle.with_registry(load_registry(self.registry_dir))
        return bundle

    def policy_engine(self) -> PolicyEngine:
        engine = make_engine(self.engine)
        if self.evaluation_timeout_s:
            return TimeBoundedEngine(engine, self.evaluation_timeout_s)
        return engine
