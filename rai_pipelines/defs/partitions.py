import dagster as dg


def daily_partitions(start_date: str) -> dg.DailyPartitionsDefinition:
    """Days complete in UTC, from the first day configured (RAI_PARTITIONS_START), so that a
    deployment does not list years of empty partitions."""
    return dg.DailyPartitionsDefinition(start_date=start_date, end_offset=0)
