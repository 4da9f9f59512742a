"""The demo: a local world built from real data, and the whole loop run through Dagster on it."""
