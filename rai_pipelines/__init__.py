"""rai-pipelines: responsible-AI and FinOps governance as a closed loop of Dagster assets."""

__version__ = "0.1.0"
