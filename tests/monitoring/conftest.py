"""The car-loan traffic the monitoring tests share (NannyML's data set, in the demo's data)."""

from __future__ import annotations

import pandas as pd
import pytest

from rai_pipelines.settings import PROJECT_ROOT

DATA = PROJECT_ROOT / "rai_pipelines" / "demo" / "data"


@pytest.fixture(scope="session")
def car_loan():
    folder = DATA / "car_loan"
    reference = pd.read_parquet(folder / "reference.parquet").sort_values("timestamp", kind="stable")
    analysis = pd.read_parquet(folder / "analysis.parquet").sort_values("timestamp", kind="stable")
    target = pd.read_parquet(folder / "analysis_target.parquet")
    analysis = analysis.merge(target, on="id", how="left", validate="one_to_one")
    return reference.reset_index(drop=True), analysis.reset_index(drop=True)
