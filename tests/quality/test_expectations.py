"""Great Expectations suites: the project's files load and build, a bad file is named with its
field, and a failed expectation is reported with counts, never with the values."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from orchestration.dbt_project import project_dir
from orchestration.quality.expectations import (
    ExpectationConfigError,
    ExpectationSpec,
    Suite,
    check_result,
    expectation,
    load_suites,
    validate_frame,
)

GATED_MODELS = {
    "customers",
    "customer_clv",
    "customer_churn_scores",
    "audience_browse_abandoners",
    "audience_high_value_at_risk",
    "audience_repeat_buyers",
}


def test_every_suite_of_the_project_builds_and_the_gated_models_have_one() -> None:
    models = {path.stem for path in (project_dir() / "models").rglob("*.sql")}
    suites = load_suites(project_dir(), models)
    assert {suite.model for suite in suites} == GATED_MODELS
    for suite in suites:
        for spec in suite.expectations:
            expectation(spec, suite.source)  # raises on a bad argument
    assert sum(len(suite.expectations) for suite in suites) >= 30


def _write(folder: Path, name: str, text: str) -> None:
    (folder / "expectations").mkdir(exist_ok=True)
    (folder / "expectations" / name).write_text(text)


def test_a_bad_suite_is_named_by_file_and_field(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "a.yml",
        "model: customers\nexpectations:\n"
        "  - type: check_it\n"
        "  - type: expect_column_values_to_be_unique\n"
        "    kwargs: {column: x}\n"
        "    severity: fatal\n"
        "  - {type: expect_table_row_count_to_be_between, kwarg: {}}\n",
    )
    _write(tmp_path, "b.yml", "model: no_such_model\nexpectations: []\n")
    _write(tmp_path, "c.yml", "model: customers\nexpectations:\n  - type: expect_x\n")

    with pytest.raises(ExpectationConfigError) as raised:
        load_suites(tmp_path, {"customers"})

    assert raised.value.problems == [
        "expectations/a.yml: expectations[0].type: 'check_it' is not an expectation name "
        "(expect_...)",
        "expectations/a.yml: expectations[1].severity: 'fatal' is not one of error, warn",
        "expectations/a.yml: expectations[2]: unknown keys kwarg (allowed: type, kwargs, severity)",
        "expectations/b.yml: model: no dbt model named 'no_such_model'",
        "expectations/b.yml: expectations: required, a list of expectations",
        "expectations/c.yml: model 'customers' already has a suite in expectations/a.yml",
    ]


def test_bad_arguments_and_unknown_expectations_name_the_file() -> None:
    bad = ExpectationSpec("expect_column_values_to_be_between", {"column": "p", "min_value": "x"})
    with pytest.raises(ValueError, match=r"^f.yml: expect_column_values_to_be_between\(p\)"):
        expectation(bad, "f.yml")
    with pytest.raises(ValueError, match="expect_rows_to_sparkle is not a Great Expectations"):
        expectation(ExpectationSpec("expect_rows_to_sparkle", {}), "f.yml")


def _suite(severity: str) -> Suite:
    return Suite(
        "members",
        (
            ExpectationSpec("expect_column_values_to_be_unique", {"column": "id"}),
            ExpectationSpec(
                "expect_column_values_to_match_regex",
                {"column": "email", "regex": r"^[^@\s]+@[^@\s]+\.[^@\s]+$"},
                severity,
            ),
            ExpectationSpec("expect_table_row_count_to_be_between", {"min_value": 1}),
        ),
        "expectations/members.yml",
    )


FRAME = pd.DataFrame(
    {
        "id": [f"c{n}" for n in range(10)],
        "email": [f"user{n}@mail.com" for n in range(8)] + ["secret.person", "hidden@nowhere"],
    }
)


def test_a_failed_error_expectation_fails_the_check_with_counts_and_no_values() -> None:
    result = validate_frame(_suite("error"), FRAME)
    check = check_result(result)

    assert [o.success for o in result.outcomes] == [True, False, True]
    failed = result.outcomes[1]
    assert (failed.unexpected_count, failed.unexpected_percent) == (2, 20.0)
    assert result.outcomes[2].observed_value == 10
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert check.description == (
        "1 of 3 expectations failed on 10 rows:\n- [error] "
        "expect_column_values_to_match_regex(email): 2 unexpected rows (20.00%)"
    )
    text = check.description + repr(check.metadata)
    assert "secret.person" not in text and "hidden@nowhere" not in text


def test_a_failed_warn_expectation_is_reported_without_blocking() -> None:
    check = check_result(validate_frame(_suite("warn"), FRAME))
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)


def test_a_clean_frame_passes_every_expectation() -> None:
    clean = FRAME.assign(email=[f"user{n}@mail.com" for n in range(10)])
    check = check_result(validate_frame(_suite("error"), clean))
    assert check.passed
    assert check.description == "all 3 expectations passed on 10 rows"
