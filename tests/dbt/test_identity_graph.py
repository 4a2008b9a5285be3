"""Identity stitching against the generator's ground truth, on DuckDB and on Postgres."""

from __future__ import annotations

import re

import pytest

from orchestration.dbt_project import run_dbt
from orchestration.demo.generator import JUNK_EMAIL, SHARED_INBOX
from orchestration.warehouse import Warehouse
from tests.dbt.raw_rows import BUILD_IDENTITY, replace_identifies

pytestmark = pytest.mark.integration


# Identifier -> true person, for the identifiers the graph placed, excluding values that truly
# belong to several people (junk: those must be blocked, see the test below).
_PLACED_WITH_TRUTH = """
    with truth as (
        select identifier_type, identifier_value, min(person_id) as person_id
        from truth.identifiers
        group by identifier_type, identifier_value
        having count(distinct person_id) = 1
    )
    select map.cluster_id, truth.person_id
    from identity.identity_map as map
    inner join truth
        on map.identifier_type = truth.identifier_type
        and map.identifier_value = truth.identifier_value
"""


def _pairwise_scores(warehouse: Warehouse) -> tuple[float, float, int]:
    """Pairwise precision and recall of the clustering against the true persons."""
    cells = f"""
        with placed as ({_PLACED_WITH_TRUTH}),
        cells as (select cluster_id, person_id, count(*) as n from placed group by 1, 2),
        clusters as (select cluster_id, count(*) as n from placed group by 1),
        persons as (select person_id, count(*) as n from placed group by 1)
        select
            (select sum(n * (n - 1) / 2) from cells),
            (select sum(n * (n - 1) / 2) from clusters),
            (select sum(n * (n - 1) / 2) from persons),
            (select count(*) from placed)
    """
    together, predicted, true, placed = (float(v or 0) for v in warehouse.query(cells)[0])
    return together / predicted, together / true, int(placed)


def test_clean_data_is_clustered_exactly_as_the_truth(clean_warehouse: Warehouse) -> None:
    precision, recall, placed = _pairwise_scores(clean_warehouse)
    assert placed > 3_000
    assert (precision, recall) == (1.0, 1.0)


def test_duckdb_and_postgres_find_the_same_partition(
    clean_duckdb_warehouse: Warehouse, clean_postgres_warehouse: Warehouse
) -> None:
    # Node ids follow each database's string order, so compare partitions: every identifier
    # named by the smallest member of its cluster.
    sql = """
        select map.identifier_type, map.identifier_value, named.representative
        from identity.identity_map as map
        inner join (
            select cluster_id, min(identifier_type || ':' || identifier_value) as representative
            from identity.identity_map group by cluster_id
        ) as named on map.cluster_id = named.cluster_id
        order by 1, 2
    """
    duck = clean_duckdb_warehouse.query(sql)
    assert len(duck) > 3_000
    assert duck == clean_postgres_warehouse.query(sql)


def test_junk_identifiers_never_merge_different_people(warehouse: Warehouse) -> None:
    precision, recall, placed = _pairwise_scores(warehouse)
    assert placed > 3_000
    assert precision == 1.0
    # Recall is below 1 only because ~1% of rows are broken and rejected on purpose.
    assert recall > 0.9


def test_every_identifier_shared_by_several_people_is_blocked(warehouse: Warehouse) -> None:
    unblocked = warehouse.query(
        """
        with shared as (
            select identifier_type, identifier_value
            from truth.identifiers
            group by identifier_type, identifier_value
            having count(distinct person_id) > 1
        )
        select shared.identifier_type, shared.identifier_value
        from shared
        inner join identity.identity_identifiers as seen
            on shared.identifier_type = seen.identifier_type
            and shared.identifier_value = seen.identifier_value
        where not seen.is_blocked
        """
    )
    assert unblocked == []
    reasons = dict(
        warehouse.query(
            "select identifier_value, blocked_reason from identity.identity_blocked_identifiers "
            f"where identifier_value in ('{JUNK_EMAIL}', '{SHARED_INBOX}')"
        )
    )
    assert reasons[JUNK_EMAIL].startswith("blocklist:")
    # CRM contacts of different people who share nothing but the inbox (and whose logins
    # make them people).
    assert re.fullmatch(
        r"shared: joins \d+ separate people by \w+ \(more than 2\)", reasons[SHARED_INBOX]
    )


def test_every_edge_keeps_the_source_row_that_proves_it(warehouse: Warehouse) -> None:
    unexplained = warehouse.query(
        """
        select count(*)
        from identity.identity_edges as edges
        left join identity.identity_observations as evidence_a
            on edges.first_source_table = evidence_a.source_table
            and edges.first_source_row_id = evidence_a.source_row_id
            and edges.identifier_type_a = evidence_a.identifier_type
            and edges.identifier_value_a = evidence_a.identifier_value
        left join identity.identity_observations as evidence_b
            on edges.first_source_table = evidence_b.source_table
            and edges.first_source_row_id = evidence_b.source_row_id
            and edges.identifier_type_b = evidence_b.identifier_type
            and edges.identifier_value_b = evidence_b.identifier_value
        where evidence_a.source_row_id is null or evidence_b.source_row_id is null
        """
    )
    assert unexplained == [(0,)]
    assert warehouse.query("select count(*) from identity.identity_edges")[0][0] > 1_000


def _chain(length: int) -> list[tuple[str | None, ...]]:
    """identifies rows linking anon_0 - email_0 - anon_1 - email_1 - ... : a path graph."""
    rows: list[tuple[str | None, ...]] = []
    for i in range(length // 2):
        email = f"user{i:03d}@chain.example.org"
        rows.append((f"c{i}a", f"anon-{i:03d}", None, email, None, "2025-01-01T00:00:00Z"))
        rows.append((f"c{i}b", f"anon-{i + 1:03d}", None, email, None, "2025-01-01T00:00:00Z"))
    return rows


def test_a_chain_of_100_linked_identifiers_converges_to_one_cluster(
    empty_warehouse: Warehouse,
) -> None:
    replace_identifies(empty_warehouse, _chain(100))
    # 50 emails would break the default limit of 5 per customer: this test is about convergence.
    run_dbt(
        BUILD_IDENTITY,
        empty_warehouse,
        dbt_vars={"tessera_identity_limits": {"email": 50}},
        quiet=True,
    )
    clusters = empty_warehouse.query(
        "select count(distinct cluster_id), count(*) from identity.identity_map"
    )
    # 50 emails and 51 anonymous ids on one path: diameter 100, one person.
    assert clusters == [(1, 101)]
