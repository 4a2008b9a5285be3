"""Shared identifiers are judged by evidence (several otherwise separate people), not by how many
identifiers of a type one account holds: on hand-made people whose partition is known."""

from __future__ import annotations

import pytest

from orchestration.dbt_project import run_dbt
from orchestration.warehouse import Warehouse
from tests.dbt.identity_people import People, company_inbox, many_addresses, placeholder_phone
from tests.dbt.raw_rows import BUILD_IDENTITY

pytestmark = pytest.mark.integration


def _clusters(warehouse: Warehouse) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for customer_id, value in warehouse.query(
        "select customer_id, identifier_value from identity.identity_customer_map"
    ):
        groups.setdefault(customer_id, set()).add(value)
    return {frozenset(group) for group in groups.values()}


def _blocked(warehouse: Warehouse) -> dict[str, str]:
    return dict(
        warehouse.query(
            "select identifier_value, blocked_reason from identity.identity_blocked_identifiers"
        )
    )


def _build(warehouse: Warehouse, people: People) -> None:
    people.write(warehouse)
    run_dbt(BUILD_IDENTITY, warehouse, quiet=True)


def test_one_login_with_many_addresses_and_crm_duplicates_stays_one_customer(
    empty_warehouse: Warehouse,
) -> None:
    people = many_addresses()
    _build(empty_warehouse, people)
    assert _blocked(empty_warehouse) == {}
    assert empty_warehouse.query("select count(*) from identity.identity_violations") == [(0,)]
    clusters = _clusters(empty_warehouse)
    assert clusters == people.expected_clusters()
    maya = next(cluster for cluster in clusters if "user-maya" in cluster)
    # 1 login, 6 emails, 3 phones, 5 CRM contacts, 3 browsers and 1 shop account.
    assert len(maya) == 19


def test_a_company_inbox_typed_by_50_people_merges_nobody(empty_warehouse: Warehouse) -> None:
    people = company_inbox(50)
    _build(empty_warehouse, people)
    blocked = _blocked(empty_warehouse)
    assert set(blocked) == {"info@acme-corp.io"}
    # 25 browsers are more than one person uses, and 25 CRM contacts that share nothing else are
    # 25 people: the first rule that applies is given.
    assert blocked["info@acme-corp.io"] == "shared: linked to 25 anonymous_id values (more than 20)"
    assert _clusters(empty_warehouse) == people.expected_clusters()
    assert len(people.expected_clusters()) == 50


def test_a_company_inbox_of_crm_contacts_alone_is_judged_by_the_people_it_joins(
    empty_warehouse: Warehouse,
) -> None:
    # 12 CRM contacts, no browser: under any device limit, so only the evidence rule can find it.
    people = company_inbox(24)
    people.identifies = []
    people.owners = {k: v for k, v in people.owners.items() if int(k.split("-")[1]) >= 12}
    _build(empty_warehouse, people)
    assert _blocked(empty_warehouse) == {
        "info@acme-corp.io": "shared: joins 12 separate people by crm_contact_id (more than 2)"
    }
    assert _clusters(empty_warehouse) == people.expected_clusters()


def test_a_placeholder_phone_typed_for_80_shop_customers_merges_nobody(
    empty_warehouse: Warehouse,
) -> None:
    people = placeholder_phone(80)
    _build(empty_warehouse, people)
    assert _blocked(empty_warehouse) == {
        "+13125550100": "shared: joins 80 separate people by shop_customer_ref (more than 2)"
    }
    assert _clusters(empty_warehouse) == people.expected_clusters()
    assert len(people.expected_clusters()) == 80


def test_an_address_two_people_share_is_left_to_the_limits(empty_warehouse: Warehouse) -> None:
    # A couple sharing one email, each with a login: two people is not "several"; the limit of
    # one login per customer splits them, the email staying with the better-evidenced login.
    people = People()
    people.identify("ana", "anon-ana", "user-ana", "home@family.io")
    people.identify("ana", "anon-ana", "user-ana", None, "+14155550111")
    people.identify("ben", "anon-ben", "user-ben", "home@family.io")
    _build(empty_warehouse, people)
    assert _blocked(empty_warehouse) == {}
    assert _clusters(empty_warehouse) == {
        frozenset({"anon-ana", "user-ana", "+14155550111", "home@family.io"}),
        frozenset({"anon-ben", "user-ben"}),
    }
    # With three logins it is shared.
    people.identify("cy", "anon-cy", "user-cy", "home@family.io")
    people.shared.add("home@family.io")
    _build(empty_warehouse, people)
    assert _blocked(empty_warehouse) == {
        "home@family.io": "shared: joins 3 separate people by user_id (more than 2)"
    }
    assert _clusters(empty_warehouse) == people.expected_clusters()


def test_the_evidence_rule_is_read_from_vars(empty_warehouse: Warehouse) -> None:
    people = placeholder_phone(5)
    people.write(empty_warehouse)
    run_dbt(
        BUILD_IDENTITY,
        empty_warehouse,
        dbt_vars={"tessera_identity_shared_max_people": 5},
        quiet=True,
    )
    assert _blocked(empty_warehouse) == {}
    run_dbt(
        BUILD_IDENTITY,
        empty_warehouse,
        dbt_vars={"tessera_identity_shared_max_people": 4},
        quiet=True,
    )
    assert list(_blocked(empty_warehouse)) == ["+13125550100"]
