"""Data-quality checks beyond dbt's tests, as Dagster asset checks beside their assets."""
