"""Great Expectations suites on the tables that feed the syncs, run as blocking asset checks.

One file per model under ``expectations/`` at the project root::

    model: customer_churn_scores
    expectations:
      - type: expect_column_values_to_be_between     # any Great Expectations expectation
        kwargs: {column: churn_probability, min_value: 0, max_value: 1}
      - type: expect_column_values_to_be_in_set
        kwargs: {column: risk_tier, value_set: [high, medium, low]}
        severity: warn                               # error (default) | warn

Each suite becomes one asset check, ``great_expectations``, on the model's asset. The check reads
the table, validates it with Great Expectations and reports every expectation's outcome as
counts (unexpected rows and their share; an aggregate's observed value), never the unexpected
values themselves: they may be personal data. A failed ``error`` expectation fails the check
with severity ERROR, and the check being blocking, Dagster then runs nothing downstream of the
model in that run: no audience is rebuilt and no sync sends from data that broke a rule. A
failed ``warn`` expectation is reported and blocks nothing.

The files are checked when the definitions load (structure, known model, known expectation
type), and every error names the file and the field. The expectations' own arguments are
checked by Great Expectations when the check runs; ``tests/unit/test_expectations.py`` builds
every suite of the project, so a bad argument fails the test suite first.
"""

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.declarations import DeclarationError, yaml_documents
from orchestration.resources import WarehouseResource
from orchestration.warehouse import Warehouse

SUITES_DIR = "expectations"
CHECK_NAME = "great_expectations"
SEVERITIES = ("error", "warn")
_TYPE = re.compile(r"expect_[a-z0-9_]+")
_KEYS = ("type", "kwargs", "severity")


class ExpectationConfigError(DeclarationError):
    """One or more suites are invalid; the message lists each problem as file: path: why."""

    subject = "expectation suites"


@dataclass(frozen=True)
class ExpectationSpec:
    type: str
    kwargs: Mapping[str, Any]
    severity: str = "error"

    @property
    def label(self) -> str:
        """``type(column)``, or the type alone for a table-level expectation."""
        columns = [
            str(self.kwargs[name])
            for name in ("column", "column_A", "column_B")
            if name in self.kwargs
        ]
        if "column_list" in self.kwargs:
            columns.append("+".join(map(str, self.kwargs["column_list"])))
        return f"{self.type}({', '.join(columns)})" if columns else self.type


@dataclass(frozen=True)
class Suite:
    model: str
    expectations: tuple[ExpectationSpec, ...]
    source: str


@dataclass(frozen=True)
class ExpectationOutcome:
    spec: ExpectationSpec
    success: bool
    #: Rows that broke the expectation, and their share of the rows checked (column kinds).
    unexpected_count: int | None
    unexpected_percent: float | None
    #: What an aggregate expectation measured (a row count, a mean), when it is a number.
    observed_value: float | None

    def describe(self) -> str:
        if self.unexpected_count is not None:
            share = f" ({self.unexpected_percent:.2f}%)" if self.unexpected_percent else ""
            return f"{self.spec.label}: {self.unexpected_count:,} unexpected rows{share}"
        if self.observed_value is not None:
            return f"{self.spec.label}: observed {self.observed_value:g}"
        return self.spec.label


@dataclass(frozen=True)
class SuiteResult:
    suite: Suite
    rows: int
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.success]

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.failed if outcome.spec.severity == "error"]

    def describe(self) -> str:
        failed = self.failed
        total = len(self.outcomes)
        if not failed:
            return f"all {total} expectations passed on {self.rows:,} rows"
        lines = [f"{len(failed)} of {total} expectations failed on {self.rows:,} rows:"]
        lines += [f"- [{o.spec.severity}] {o.describe()}" for o in failed]
        return "\n".join(lines)


def load_suites(project: Path, models: Iterable[str] | None = None) -> list[Suite]:
    """Every suite under ``project``/expectations, checked; raise ExpectationConfigError.

    ``models`` (the dbt project's model names) turns on the check that each suite's model
    exists.
    """
    known_models = set(models) if models is not None else None
    problems: list[str] = []
    suites: list[Suite] = []
    seen: dict[str, str] = {}
    for label, document in yaml_documents(project, SUITES_DIR, problems):
        suite = _suite(document, label, known_models, problems)
        if suite is None:
            continue
        if suite.model in seen:
            problems.append(
                f"{label}: model {suite.model!r} already has a suite in {seen[suite.model]}"
            )
            continue
        seen[suite.model] = label
        suites.append(suite)
    if problems:
        raise ExpectationConfigError(problems)
    return suites


def _suite(document: Any, label: str, models: set[str] | None, problems: list[str]) -> Suite | None:
    if not isinstance(document, dict):
        problems.append(f"{label}: expected a mapping with model and expectations")
        return None
    unknown = sorted(set(document) - {"model", "description", "expectations"})
    if unknown:
        problems.append(
            f"{label}: unknown keys {', '.join(unknown)} (allowed: model, "
            "description, expectations)"
        )
    model = document.get("model")
    if not isinstance(model, str) or not model:
        problems.append(f"{label}: model: required, the name of a dbt model")
        return None
    if models is not None and model not in models:
        problems.append(f"{label}: model: no dbt model named {model!r}")
    items = document.get("expectations")
    if not isinstance(items, list) or not items:
        problems.append(f"{label}: expectations: required, a list of expectations")
        return None
    expectations = []
    for index, item in enumerate(items):
        where = f"{label}: expectations[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping with type and kwargs")
            continue
        extra = sorted(set(item) - set(_KEYS))
        if extra:
            problems.append(
                f"{where}: unknown keys {', '.join(extra)} (allowed: {', '.join(_KEYS)})"
            )
        kind = item.get("type")
        if not isinstance(kind, str) or not _TYPE.fullmatch(kind):
            problems.append(f"{where}.type: {kind!r} is not an expectation name (expect_...)")
            continue
        kwargs = item.get("kwargs", {})
        if not isinstance(kwargs, dict):
            problems.append(f"{where}.kwargs: expected a mapping of the expectation's arguments")
            continue
        severity = item.get("severity", "error")
        if severity not in SEVERITIES:
            problems.append(f"{where}.severity: {severity!r} is not one of error, warn")
            continue
        expectations.append(ExpectationSpec(kind, kwargs, severity))
    return Suite(model, tuple(expectations), label)


def _gx():
    """Great Expectations, imported when a check runs (it takes seconds to import), without its
    usage statistics (nothing may call out of the machine)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def expectation(spec: ExpectationSpec, source: str = "<code>"):
    """The Great Expectations object of a spec; ValueError naming the file and the type."""
    gx = _gx()
    class_name = "".join(part.capitalize() for part in spec.type.split("_"))
    cls = getattr(gx.expectations, class_name, None)
    if cls is None:
        raise ValueError(f"{source}: {spec.type} is not a Great Expectations expectation")
    try:
        return cls(**spec.kwargs)
    except Exception as exc:  # pydantic's ValidationError, and TypeError from older classes
        raise ValueError(f"{source}: {spec.label}: invalid arguments: {exc}") from None


def validate_frame(suite: Suite, frame: Any) -> SuiteResult:
    """Validate a DataFrame against a suite, in an in-memory Great Expectations context."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("tessera")
        .add_dataframe_asset(name=suite.model)
        .add_batch_definition_whole_dataframe("whole_table")
    )
    expectations = [expectation(spec, suite.source) for spec in suite.expectations]
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.model))
    for item in expectations:
        gx_suite.add_expectation(item)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    validation = batch.validate(gx_suite, result_format="BASIC")
    outcomes = []
    # Results come back in the suite's order.
    for spec, result in zip(suite.expectations, validation.results, strict=True):
        details = result.result or {}
        observed = details.get("observed_value")
        outcomes.append(
            ExpectationOutcome(
                spec,
                bool(result.success),
                _number(details.get("unexpected_count")),
                _number(details.get("unexpected_percent")),
                _number(observed),
            )
        )
    return SuiteResult(suite, len(frame), tuple(outcomes))


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def validate_table(warehouse: Warehouse, relation: str, suite: Suite) -> SuiteResult:
    schema, table = relation.split(".", 1)
    return validate_frame(suite, warehouse.read_frame(schema, table))


def check_result(result: SuiteResult) -> dg.AssetCheckResult:
    blocking = result.blocking_failures
    metadata: dict[str, Any] = {
        "rows": result.rows,
        "expectations": len(result.outcomes),
        "failed": len(result.failed),
        "suite": result.suite.source,
    }
    for outcome in result.outcomes:
        metadata[outcome.spec.label] = ("passed: " if outcome.success else "FAILED: ") + (
            outcome.describe()
        )
    return dg.AssetCheckResult(
        passed=not result.failed,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        description=result.describe(),
        metadata=metadata,
    )


def build_expectation_checks(
    suites: Sequence[Suite], keys: Mapping[str, dg.AssetKey], relations: Mapping[str, str]
) -> list[dg.AssetChecksDefinition]:
    """One blocking check per suite, on the asset ``keys[model]`` reading ``relations[model]``."""
    return [_check(suite, keys[suite.model], relations[suite.model]) for suite in suites]


def _check(suite: Suite, key: dg.AssetKey, relation: str) -> dg.AssetChecksDefinition:
    count = len(suite.expectations)

    @dg.asset_check(
        asset=key,
        name=CHECK_NAME,
        blocking=True,
        description=(
            f"Great Expectations suite {suite.source} ({count} expectations): a failed "
            "error-severity expectation stops everything downstream in the run, syncs included."
        ),
    )
    def expectations_check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        result = validate_table(warehouse.get(), relation, suite)
        context.log.info(f"{relation}: {result.describe()}")
        return check_result(result)

    return expectations_check
