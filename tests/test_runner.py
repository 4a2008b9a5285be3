"""What ``tessera run`` reads back from dbt's log file when the run failed."""

from __future__ import annotations

from orchestration.runner import JobOutcome, StepTiming, dbt_error_summary

LOG = """\
12 of 250 START sql table model marts.customers ............................ [RUN]
12 of 250 ERROR creating sql table model marts.customers ................... [ERROR in 0.1s]
Finished running 1 table model in 0 hours 0 minutes and 1.00 seconds (1.00s).
Completed with 1 error, 0 partial successes, and 0 warnings:
Failure in model customers (models/marts/customers.sql)
  Binder Error: Referenced column "emial" not found in FROM clause!
  LINE 12:     emial,
Done. PASS=11 WARN=0 ERROR=1 SKIP=238 NO-OP=0 TOTAL=250
customers: the step's own line after dbt's command
"""


def test_the_failing_model_s_error_is_read_back_in_full_from_dbt_s_summary() -> None:
    summary = dbt_error_summary(LOG).splitlines()
    assert summary[0].startswith("Completed with 1 error")
    assert 'Referenced column "emial" not found' in summary[2]
    assert summary[-1] == "Done. PASS=11 WARN=0 ERROR=1 SKIP=238 NO-OP=0 TOTAL=250"
    assert len(summary) == 5


def test_a_log_without_dbt_s_summary_gives_nothing_to_print() -> None:
    assert dbt_error_summary("12 of 250 START sql table model marts.customers\n") == ""


def test_full_refresh_reaches_dbt_build_after_the_vars() -> None:
    from orchestration.cli import build_parser
    from orchestration.project import ProjectConfig
    from orchestration.resources import RunSettings

    config = ProjectConfig.load("{tessera_clv_time_unit: day}")
    assert RunSettings.of(config).build_args() == config.dbt_args()
    refresh = RunSettings.of(config, full_refresh=True).build_args()
    assert refresh == [*config.dbt_args(), "--full-refresh"]
    assert build_parser().parse_args(["run", "--full-refresh"]).full_refresh is True
    assert build_parser().parse_args(["run"]).full_refresh is False


def test_the_step_table_sums_quick_successes_and_shows_every_other_step() -> None:
    steps = [
        StepTiming("tessera_dbt", 0.0, 30.0, "succeeded"),
        StepTiming("marts__customers_great_expectations", 0.0, 0.5, "succeeded"),
        StepTiming("syncs__file", 0.0, 0.2, "succeeded"),
        StepTiming("syncs__meta", 0.0, 0.0, "skipped"),
        StepTiming("syncs__hubspot", 0.0, 0.5, "failed"),
    ]
    lines = JobOutcome(success=False, steps=steps).report().splitlines()

    assert [line.split()[0] for line in lines] == [
        "step", "tessera_dbt", "syncs__meta", "syncs__hubspot", "2", "total",
    ]  # fmt: skip
    assert lines[4].split()[-2:] == ["succeeded", "0.7"]
    assert lines[-1].split() == ["total", "31.2"]
