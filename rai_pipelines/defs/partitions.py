import dagster as dg

from rai_pipelines.settings import Settings

# Days complete in UTC; the first day is configurable (RAI_PARTITIONS_START) so that a deployment
# does not list years of empty partitions.
daily_partitions = dg.DailyPartitionsDefinition(start_date=Settings.from_env().partitions_start, end_offset=0)
