"""Shared identifiers are judged by evidence (several otherwise separate people), not by how many
identifiers of a type one account holds: on hand-made people whose partition is known."""

from __future__ import annotations

import pytest

from orchestration.dbt_project import run_dbt
from orchestration.warehouse import Warehouse
from tests.dbt.identity_people import (
    People,
    company_inbox,
    customer_clusters,
    many_addresses,
    placeholder_phone,
)
from tests.dbt.raw_rows import BUILD_IDENTITY, BUILD_IDENTITY_FAST

pytestmark = pytest.mark.integration


def _blocked(warehouse: Warehouse) -> dict[str, str]:
    return dict(
        warehouse.query(
            "select identifier_value, blocked_reason from identity.identity_blocked_identifiers"
        )
    )


def _build(warehouse: Warehouse, people: People) -> None:
    people.write(warehouse)
    run_dbt(BUILD_IDENTITY, warehouse, quiet=True)


def test_many_addresses_stay_one_person_and_an_inbox_or_a_shop_phone_merge_nobody(
    empty_warehouse: Warehouse,
) -> None:
    # Four groups of people in one set of source tables (they share nothing): one build.
    maya = many_addresses()
    inbox = company_inbox(50)
    # 12 CRM contacts on another inbox, no browser: under any device threshold, so only the
    # evidence rule can find it.
    crm_inbox = company_inbox(12, inbox="team@globex.io", on_website=False)
    shop = placeholder_phone(80)
    people = People().add(maya).add(inbox).add(crm_inbox).add(shop)
    _build(empty_warehouse, people)

    assert _blocked(empty_warehouse) == {
        # 25 browsers are more than one person uses (the first rule that applies is given; the
        # 25 CRM contacts that share nothing else would be 25 people too).
        "info@acme-corp.io": "shared: linked to 25 anonymous_id values (more than 20)",
        "team@globex.io": "shared: joins 12 separate people by crm_contact_id (more than 2)",
        "+13125550100": "shared: joins 80 separate people by shop_customer_ref (more than 2)",
    }
    clusters = customer_clusters(empty_warehouse)
    assert clusters == people.expected_clusters()
    assert len(clusters) == 1 + 1 + 50 + 12 + 80
    # One login, 6 emails, 3 phones, 5 CRM duplicates, 3 browsers and 1 shop account: one
    # customer, and no link cut.
    (one,) = (cluster for cluster in clusters if "user-maya" in cluster)
    assert len(one) == 19
    assert empty_warehouse.query("select count(*) from identity.identity_violations") == [(0,)]


def test_an_address_two_people_share_is_left_to_the_limits(empty_warehouse: Warehouse) -> None:
    # A couple sharing one email, each with a login: two people is not "several"; the limit of
    # one login per customer splits them, the email staying with the better-evidenced login.
    people = People()
    people.identify("ana", "anon-ana", "user-ana", "home@family.io")
    people.identify("ana", "anon-ana", "user-ana", None, "+14155550111")
    people.identify("ben", "anon-ben", "user-ben", "home@family.io")
    _build(empty_warehouse, people)
    assert _blocked(empty_warehouse) == {}
    assert customer_clusters(empty_warehouse) == {
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
    assert customer_clusters(empty_warehouse) == people.expected_clusters()


def test_the_evidence_rule_is_read_from_vars(empty_warehouse: Warehouse) -> None:
    people = placeholder_phone(5)
    people.write(empty_warehouse)
    run_dbt(
        BUILD_IDENTITY_FAST,
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
