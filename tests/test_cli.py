"""The ``tessera`` command's own logic, in process: exit codes and argument parsing."""

from __future__ import annotations

import pytest

from orchestration.activation.engine import SyncResult
from orchestration.cli import EXIT_ROWS_FAILED, EXIT_SYNC_FAILED, build_parser, sync_exit_code


def _results(*statuses: str) -> list[SyncResult]:
    return [SyncResult(f"s{i}", "", status, None) for i, status in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ((), 0),
        (("succeeded", "skipped", "dry_run"), 0),
        # It broke: a run whose rows the destination refused ended `partial` and exited 0.
        (("succeeded", "partial"), EXIT_ROWS_FAILED),
        (("partial", "failed"), EXIT_SYNC_FAILED),
        (("succeeded", "aborted"), EXIT_SYNC_FAILED),
    ],
)
def test_sync_exit_code_tells_failed_rows_from_a_failed_sync(statuses, code) -> None:
    assert sync_exit_code(_results(*statuses)) == code


def test_the_exit_codes_are_the_documented_ones() -> None:
    assert (EXIT_ROWS_FAILED, EXIT_SYNC_FAILED) == (2, 1)


def test_vars_are_taken_as_text_for_the_project_configuration_to_parse() -> None:
    args = build_parser().parse_args(["sync", "--retry-parked", "--vars", "{a: 1}"])
    assert (args.retry_parked, args.vars) == (True, "{a: 1}")
    run = build_parser().parse_args(["run", "--verbose"])
    assert (run.verbose, run.vars) == (True, None)
