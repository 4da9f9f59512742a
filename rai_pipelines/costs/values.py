"""Parsing one provider value at a time (sources read row by row: GCP's export, on-premises usage
and rates), with an error that names the file, the row and the field."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from rai_pipelines.core.errors import BadInputError


def decimal_value(value, where: str) -> Decimal:
    """A finite decimal, exactly as written (no float in between); `where` names the field."""
    if isinstance(value, Decimal):
        amount = value
    else:
        try:
            amount = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            raise BadInputError(f"{where} = {value!r} is not a number") from None
    if not amount.is_finite():
        raise BadInputError(f"{where} = {value!r} is not a finite number")
    return amount


def optional_decimal(value, where: str) -> Decimal | None:
    return None if value is None or value == "" else decimal_value(value, where)


def utc_instant(value, where: str, naive_is_utc: bool) -> datetime:
    """An ISO 8601 date-time in UTC. A time without a zone is UTC where the format says so
    (BigQuery TIMESTAMPs), and refused elsewhere: guessing a zone would move charges between days."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadInputError(f"{where} = {value!r} is not a date-time") from None
    if moment.tzinfo is None:
        if not naive_is_utc:
            raise BadInputError(f"{where} = {value!r} has no time zone")
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def float_amounts(values, where: str):
    """A column of costs (numbers or Decimals) as a float array for statistics, which need no cents;
    BadInputError naming the first row that is not an amount. Missing and infinite values are left
    for the caller to judge (as NaN or inf)."""
    import numpy as np
    import pandas as pd

    if values.dtype == object:
        items = values.tolist()
        for row, v in enumerate(items):
            if not isinstance(v, int | float | Decimal) or isinstance(v, bool):
                raise BadInputError(f"{where} row {row}: cost {v!r} is not an amount")
        return np.array([float(v) for v in items], dtype=np.float64)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    raise BadInputError(f"{where}: column cost of {values.dtype} is not an amount")
