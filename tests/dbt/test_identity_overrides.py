"""Identity overrides (seed identity_overrides and the tool table): always-link, never-link and
ignore, applied before the components, logged with who and why, kept through --full-refresh;
and `tessera identity unmerge`."""

from __future__ import annotations

import pytest

from orchestration.dbt_project import run_dbt
from orchestration.identity.explain import explain, format_explanation
from orchestration.identity.overrides import Override, OverrideError, unmerge, write_override
from orchestration.warehouse import Warehouse
from tests.dbt.identity_people import People, customer_clusters
from tests.dbt.raw_rows import BUILD_IDENTITY, BUILD_IDENTITY_FAST

pytestmark = pytest.mark.integration

# The seed's table edited as a person would edit the CSV and run `dbt seed`: a build that leaves
# the seeds as they are.
BUILD_KEEPING_SEEDS = [*BUILD_IDENTITY, "seed"]
FAST_KEEPING_SEEDS = [*BUILD_IDENTITY_FAST, "seed"]


def _customer_of(warehouse: Warehouse, value: str) -> str:
    mark = warehouse.placeholder
    rows = warehouse.query(
        f"select customer_id from identity.identity_customer_map where identifier_value = {mark}",
        [value],
    )
    return rows[0][0]


def _log(warehouse: Warehouse) -> list[tuple[str, ...]]:
    return warehouse.query(
        "select change, action, identifier_value, other_identifier_value, created_by, reason, "
        "detail from identity.identity_override_log order by logged_at, action, identifier_value"
    )


def _seed_rows(warehouse: Warehouse, rows: list[tuple[str | None, ...]]) -> None:
    def literal(value: str | None) -> str:
        return "null" if value is None else "'" + value.replace("'", "''") + "'"

    statements = ["delete from reference.identity_overrides"]
    statements.extend(
        "insert into reference.identity_overrides values ("
        + ", ".join(literal(v) for v in row)
        + ")"
        for row in rows
    )
    warehouse.execute(statements)


def two_logins() -> People:
    """One person with an old and a new login that no source row ties together."""
    people = People()
    people.identify("ida", "anon-ida-1", "user-ida-old", "ida@old-mail.io")
    people.identify("ida", "anon-ida-1", "user-ida-old", None, "+14155550123")
    people.identify("ida", "anon-ida-2", "user-ida-new", "ida@new-mail.io")
    return people


def neighbours_on_one_phone() -> People:
    """Two people without logins whose newsletter forms carry one landline."""
    people = People()
    people.identify("eva", "anon-eva", None, "eva@mail.io", "+14155550177")
    people.identify("eva", "anon-eva", None, "eva@mail.io")
    people.identify("max", "anon-max", None, "max@mail.io", "+14155550177")
    return people


def test_an_always_link_in_the_seed_joins_two_logins_past_the_limit_of_one(
    empty_warehouse: Warehouse,
) -> None:
    people = two_logins()
    people.write(empty_warehouse)
    run_dbt(BUILD_IDENTITY_FAST, empty_warehouse, quiet=True)
    assert len(customer_clusters(empty_warehouse)) == 2
    _seed_rows(
        empty_warehouse,
        [("always_link", "user_id", "user-ida-new", "user_id", "user-ida-old", "kim",
          "Ida confirmed both accounts by phone, ticket 4411")],
    )  # fmt: skip
    run_dbt(FAST_KEEPING_SEEDS, empty_warehouse, quiet=True)
    # Two user_ids always linked count once toward the limit of one login per customer.
    assert customer_clusters(empty_warehouse) == people.expected_clusters()
    assert empty_warehouse.query("select count(*) from identity.identity_violations") == [(0,)]
    assert _log(empty_warehouse) == [
        ("applied", "always_link", "user-ida-new", "user-ida-old", "kim",
         "Ida confirmed both accounts by phone, ticket 4411", None),
    ]  # fmt: skip
    # Still applied after a full refresh, and logged once.
    run_dbt([*BUILD_KEEPING_SEEDS, "--full-refresh"], empty_warehouse, quiet=True)
    assert customer_clusters(empty_warehouse) == people.expected_clusters()
    assert len(_log(empty_warehouse)) == 1
    # Withdrawn: the logins part again, and the log says so.
    _seed_rows(empty_warehouse, [])
    run_dbt(FAST_KEEPING_SEEDS, empty_warehouse, quiet=True)
    assert len(customer_clusters(empty_warehouse)) == 2
    assert [row[0] for row in _log(empty_warehouse)] == ["applied", "withdrawn"]


def test_a_never_link_splits_a_customer_and_an_ignore_blocks_a_value(
    empty_warehouse: Warehouse,
) -> None:
    people = neighbours_on_one_phone()
    people.write(empty_warehouse)
    run_dbt(BUILD_IDENTITY_FAST, empty_warehouse, quiet=True)
    assert len(customer_clusters(empty_warehouse)) == 1
    before = _customer_of(empty_warehouse, "eva@mail.io")

    write_override(
        empty_warehouse,
        Override("never_link", "email", "max@mail.io", "email", "eva@mail.io", "kim",
                 "two neighbours, not one person"),
    )  # fmt: skip
    run_dbt(BUILD_IDENTITY, empty_warehouse, quiet=True)
    # The phone is one link from each address: a tie goes to the stronger end (eva@ has more
    # evidence), and so does the customer id, which eva's part held first.
    assert customer_clusters(empty_warehouse) == {
        frozenset({"anon-eva", "eva@mail.io", "+14155550177"}),
        frozenset({"anon-max", "max@mail.io"}),
    }
    assert _customer_of(empty_warehouse, "eva@mail.io") == before
    assert _customer_of(empty_warehouse, "max@mail.io") != before
    # `tessera explain` shows the override, and the links it cut with its reason.
    text = format_explanation(explain(empty_warehouse, "max@mail.io"))
    assert (
        "never_link email:eva@mail.io -- email:max@mail.io   by kim: two neighbours, not one person"
        in text
    )
    assert "a never_link override keeps email max@mail.io apart from email eva@mail.io" in text
    cuts = empty_warehouse.query(
        "select identifier_value_a, identifier_value_b, rule, reason "
        "from identity.identity_violations order by 1, 2"
    )
    assert [(a, b, rule) for a, b, rule, _ in cuts] == [
        ("anon-max", "+14155550177", "never_link"),
        ("max@mail.io", "+14155550177", "never_link"),
    ]
    assert (
        cuts[0][3] == "a never_link override keeps email max@mail.io apart from email eva@mail.io"
    )
    split = empty_warehouse.query(
        "select event_type, previous_customer_id, identifiers_moved "
        "from identity.identity_merge_log where event_type = 'split'"
    )
    assert split == [("split", before, 2)]

    write_override(
        empty_warehouse,
        Override("ignore", "phone", "(415) 555-0177", None, None, "kim", "the building's landline"),
    )
    run_dbt(BUILD_IDENTITY_FAST, empty_warehouse, quiet=True)
    assert empty_warehouse.query(
        "select identifier_value, blocked_reason from identity.identity_blocked_identifiers"
    ) == [("+14155550177", "override: ignored by kim: the building's landline")]
    assert customer_clusters(empty_warehouse) == {
        frozenset({"anon-eva", "eva@mail.io"}),
        frozenset({"anon-max", "max@mail.io"}),
    }


def test_overrides_that_cannot_apply_are_refused_with_a_reason(
    empty_warehouse: Warehouse,
) -> None:
    people = neighbours_on_one_phone()
    people.write(empty_warehouse)
    run_dbt(BUILD_IDENTITY_FAST, empty_warehouse, quiet=True)
    _seed_rows(
        empty_warehouse,
        [
            ("merge", "email", "eva@mail.io", "email", "max@mail.io", "kim", "typo"),
            ("always_link", "email", "eva@mail.io", "email", "not-an-email", "kim", "bad"),
            ("always_link", "fax", "123", "email", "eva@mail.io", "kim", "no such type"),
            ("always_link", "email", "eva@mail.io", "email", " EVA@mail.io", "kim", "itself"),
            ("ignore", "email", "eva@mail.io", "email", "max@mail.io", "kim", "two values"),
            ("always_link", "email", "max@mail.io", "email", "eva@mail.io", "kim", "same"),
            ("never_link", "email", "eva@mail.io", "email", "max@mail.io", "lee", "different"),
        ],
    )
    run_dbt(BUILD_KEEPING_SEEDS, empty_warehouse, quiet=True)
    refused = {(row[1], row[5]): row[6] for row in _log(empty_warehouse) if row[0] == "refused"}
    assert refused == {
        ("merge", "typo"): "unknown action (always_link, never_link or ignore)",
        ("always_link", "bad"): "other identifier: malformed_email",
        ("always_link", "no such type"): "unknown_subject_type",
        ("always_link", "itself"): "an identifier cannot be linked with itself",
        ("ignore", "two values"): "ignore names one identifier only",
        ("always_link", "same"): "contradicted by a never_link of the same identifiers",
    }
    # The one valid override is applied: the neighbours are apart.
    assert [row[:2] for row in _log(empty_warehouse) if row[0] == "applied"] == [
        ("applied", "never_link")
    ]
    assert len(customer_clusters(empty_warehouse)) == 2


def test_unmerge_splits_the_identifier_off_and_the_oldest_part_keeps_the_id(
    empty_warehouse: Warehouse,
) -> None:
    people = People()
    people.identify("lea", "anon-lea", "user-lea", "lea@mail.io", ts="2025-01-01T00:00:00Z")
    people.write(empty_warehouse)
    run_dbt(BUILD_IDENTITY_FAST, empty_warehouse, quiet=True)
    lea = _customer_of(empty_warehouse, "user-lea")
    # Later a shop order typed by someone else on Lea's browser ties Tom's address to her.
    people.identify("tom", "anon-lea", None, "tom@mail.io", ts="2025-03-01T00:00:00Z")
    people.identify("tom", "anon-tom", None, "tom@mail.io", "+14155550188",
                    ts="2025-03-01T00:00:00Z")  # fmt: skip
    people.write(empty_warehouse)
    run_dbt(BUILD_IDENTITY_FAST, empty_warehouse, quiet=True)
    assert len(customer_clusters(empty_warehouse)) == 1
    assert _customer_of(empty_warehouse, "tom@mail.io") == lea

    with pytest.raises(OverrideError, match="belongs to customer"):
        unmerge(empty_warehouse, "cus_0000000000000000", "tom@mail.io", "kim", "wrong customer")
    done = unmerge(empty_warehouse, lea, "email:tom@mail.io", "kim", "Tom is Lea's flatmate")
    # Kept apart from the identifier Lea's customer has held longest (her login ranks first
    # among those seen in the first run).
    assert done.anchor == ("user_id", "user-lea")
    run_dbt(BUILD_IDENTITY, empty_warehouse, quiet=True)
    assert customer_clusters(empty_warehouse) == {
        frozenset({"anon-lea", "user-lea", "lea@mail.io"}),
        frozenset({"tom@mail.io", "anon-tom", "+14155550188"}),
    }
    assert _customer_of(empty_warehouse, "user-lea") == lea
    tom = _customer_of(empty_warehouse, "tom@mail.io")
    assert tom != lea
    assert empty_warehouse.query(
        "select event_type, customer_id, previous_customer_id, identifiers_moved "
        "from identity.identity_merge_log order by logged_at"
    )[-1] == ("split", tom, lea, 3)
    log = _log(empty_warehouse)
    assert log[-1][:6] == ("applied", "never_link", "tom@mail.io", "user-lea", "kim",
                           "Tom is Lea's flatmate")  # fmt: skip


def test_an_identifier_blocked_in_an_incremental_run_splits_as_a_full_build_does(
    empty_warehouse: Warehouse,
) -> None:
    people = neighbours_on_one_phone()
    people.write(empty_warehouse)
    run_dbt(BUILD_IDENTITY_FAST, empty_warehouse, quiet=True)
    assert len(customer_clusters(empty_warehouse)) == 1
    write_override(
        empty_warehouse,
        Override("ignore", "phone", "+14155550177", None, None, "kim", "the building's landline"),
    )
    run_dbt(BUILD_IDENTITY_FAST, empty_warehouse, quiet=True)
    incremental = customer_clusters(empty_warehouse)
    # The blocked identifier stays in identity_identifiers, marked, as a full build leaves it.
    blocked = empty_warehouse.query(
        "select identifier_value, is_blocked from identity.identity_identifiers "
        "where identifier_type = 'phone'"
    )
    assert blocked == [("+14155550177", True)]
    assert incremental == {
        frozenset({"anon-eva", "eva@mail.io"}),
        frozenset({"anon-max", "max@mail.io"}),
    }
    run_dbt([*BUILD_IDENTITY, "--full-refresh"], empty_warehouse, quiet=True)
    assert customer_clusters(empty_warehouse) == incremental
