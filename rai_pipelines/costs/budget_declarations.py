"""Monthly budgets per model, team and workload as declared in the policy data.

Budgets are declared in `policies/governance/data.yaml`, key `budgets`, next to the thresholds they
feed:

    budgets:
      by_model:
        credit-scoring-ai: {monthly: 2500, currency: USD}
      by_team:
        people-analytics:
          monthly: 12000.50
          currency: EUR
          alerts: {actual: [0.5, 0.8, 1.0], forecast: [1.0]}
      by_workload:
        nightly-rescoring: {monthly: 400, currency: USD}

`monthly` is the budget of a calendar month in `currency` (an ISO 4217 code); `alerts` are shares of
the budget: an `actual` threshold is crossed when the spend to date reaches it, a `forecast` one when
the month-end forecast does (AWS Budgets' ACTUAL and FORECASTED notifications). Unknown keys, a
string or a boolean for an amount, and a budget that is not positive are refused.

This module imports only the standard library, pydantic and rai_pipelines.core: the policy gate
validates the declarations with its base install (PyYAML, ruamel.yaml, pydantic), which has no
numpy, pandas or statsforecast. Where a budget stands in the month is `costs.budgets`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import pydantic

from rai_pipelines.core.errors import BadInputError, validation_problems

ScopeKind = Literal["model", "team", "workload"]
MAX_BUDGET = Decimal("1e12")
MAX_THRESHOLD = 10.0  # 1000% of the budget


def amount(value: object) -> Decimal:
    """A YAML number (int or float) or a Decimal as a Decimal; floats through their shortest repr,
    so 2500.1 is Decimal('2500.1'), not its binary approximation. ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{value!r} is not a number")
    result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{value!r} is not a finite amount")
    return result


class _Strict(pydantic.BaseModel):
    # Unknown keys are refused (a typo such as montly must not drop a budget), values are not coerced.
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)


Amount = Annotated[Decimal, pydantic.BeforeValidator(amount), pydantic.Field(gt=0, lt=MAX_BUDGET)]
Currency = Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Z]{3}$")]
Name = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=128)]
Threshold = Annotated[float, pydantic.Field(gt=0, le=MAX_THRESHOLD, allow_inf_nan=False)]


class Alerts(_Strict):
    actual: Annotated[list[Threshold], pydantic.Field(max_length=10)] = [1.0]
    forecast: Annotated[list[Threshold], pydantic.Field(max_length=10)] = [1.0]


class Budget(_Strict):
    monthly: Amount
    currency: Currency
    alerts: Alerts = Alerts()


class Budgets(_Strict):
    by_model: dict[Name, Budget] = {}
    by_team: dict[Name, Budget] = {}
    by_workload: dict[Name, Budget] = {}

    def get(self, kind: ScopeKind, name: str) -> Budget | None:
        """The budget of a model, team or workload, or None when it has none."""
        table = {"model": self.by_model, "team": self.by_team, "workload": self.by_workload}.get(kind)
        if table is None:
            raise BadInputError(f"budget scope kind {kind!r} is not one of model, team, workload")
        return table.get(name)


def parse_budgets(document: object, where: str = "budgets") -> Budgets:
    """Validate the `budgets` mapping of the policy data (None or absent: no budgets)."""
    if document is None:
        return Budgets()
    try:
        return Budgets.model_validate(document)
    except pydantic.ValidationError as exc:
        problems = validation_problems(exc)
        raise BadInputError(f"{where}: {problems}") from None


def load_budgets(path) -> Budgets:
    """The budgets of a policy data file (its `budgets` key)."""
    from rai_pipelines.core.yamlfile import read_yaml_mapping

    return parse_budgets(read_yaml_mapping(path).get("budgets"), f"{path}: budgets")
