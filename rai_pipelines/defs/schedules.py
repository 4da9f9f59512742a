import dagster as dg

from rai_pipelines.defs.jobs import daily_governance_job

# 03:00 UTC: AWS delivers the previous day's CUR lines a few hours after midnight.
daily_governance_schedule = dg.build_schedule_from_partitioned_job(
    daily_governance_job,
    hour_of_day=3,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
