"""The demo increment: what happens after the generator's clock, appended for incremental runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from orchestration.demo.generator import END, generate, generate_increment
from orchestration.demo.shapes import apply_shape

CUSTOMERS = 20_000
SEED = 3
LOADED_AT = END + timedelta(hours=6)
KEYS = {"identifies": "id", "tracks": "id", "pages": "id", "orders": "order_id"}
EVENTS = ("identifies", "tracks", "pages")


@dataclass
class Incremented:
    con: object
    before: dict[str, int]
    distinct_before: dict[str, int]
    persons_before: int
    ambiguous_before: list[tuple[str, int]]
    appended: dict[str, int]


def _rows(con, table: str) -> int:
    return con.execute(f"select count(*) from raw.{table}").fetchall()[0][0]


def _distinct_keys(con, table: str) -> int:
    if table == "order_items":
        sql = "select count(distinct (order_id, product_id)) from raw.order_items"
    else:
        sql = f"select count(distinct {KEYS[table]}) from raw.{table}"
    return con.execute(sql).fetchall()[0][0]


# Identifiers several true persons hold (junk values), counted per type.
_AMBIGUOUS = """
    select identifier_type, count(*) from (
        select identifier_type, identifier_value from truth.identifiers
        group by all having count(distinct person_id) > 1
    ) as shared
    group by 1 order by 1
"""


def _incremented(customers: int, seed: int, increment_seed: int = 1) -> Incremented:
    data = generate(customers, seed=seed)
    con = data.con
    tables = (*KEYS, "order_items")
    before = {table: _rows(con, table) for table in tables}
    distinct_before = {table: _distinct_keys(con, table) for table in tables}
    persons_before = con.execute("select count(*) from truth.persons").fetchall()[0][0]
    ambiguous_before = con.execute(_AMBIGUOUS).fetchall()
    appended = generate_increment(
        con, customers, seed, increment_seed=increment_seed, loaded_at=LOADED_AT
    )
    return Incremented(con, before, distinct_before, persons_before, ambiguous_before, appended)


@pytest.fixture(scope="module")
def inc() -> Incremented:
    return _incremented(CUSTOMERS, SEED)


def _appended_digest(con) -> tuple:
    """Every appended row (the event rows loaded at LOADED_AT, the orders after END) and the
    truth of the people and identifiers, as one digest per table."""
    loaded = LOADED_AT.replace(tzinfo=None)
    digests = [
        con.execute(
            f"select count(*), md5(string_agg(t::varchar, '|' order by t::varchar)) "
            f"from raw.{table} as t where _loaded_at = ?",
            [loaded],
        ).fetchall()[0]
        for table in EVENTS
    ]
    for sql in (
        "select * from raw.orders where try_cast(ordered_at as timestamptz) > ?",
        "select * from raw.order_items",
        "select * from truth.persons",
        "select * from truth.identifiers",
    ):
        params = [END] if "?" in sql else []
        digests.append(
            con.execute(
                f"select count(*), md5(string_agg(t::varchar, '|' order by t::varchar)) "
                f"from ({sql}) as t",
                params,
            ).fetchall()[0]
        )
    return tuple(digests)


def test_about_the_fraction_of_each_table_is_appended(inc: Incremented) -> None:
    for table in KEYS:
        assert _rows(inc.con, table) - inc.before[table] == inc.appended[table], table
        share = inc.appended[table] / inc.before[table]
        assert 0.009 < share < 0.011, (table, share)
    # One to four items per order, 1.7 on average as generated.
    items = inc.appended["order_items"]
    assert _rows(inc.con, "order_items") - inc.before["order_items"] == items
    assert 1.4 * inc.appended["orders"] < items < 2.0 * inc.appended["orders"]


def test_appended_keys_are_new_and_unique(inc: Incremented) -> None:
    # Generated tables hold duplicate deliveries and rows without a key on purpose; an increment
    # adds neither, and no key that was there.
    for table in (*KEYS, "order_items"):
        added = _distinct_keys(inc.con, table) - inc.distinct_before[table]
        assert added == inc.appended[table], table
    for table, key in KEYS.items():
        (missing,) = inc.con.execute(
            f"select count(*) from raw.{table} where {key} is null"
        ).fetchall()[0]
        assert missing < 0.01 * inc.before[table], table
    (orphans,) = inc.con.execute(
        "select count(*) from raw.order_items where order_id not in "
        "(select order_id from raw.orders where order_id is not null)"
    ).fetchall()[0]
    assert orphans == 0


def test_appended_events_happen_after_the_clock_and_load_at_the_time_given(
    inc: Incremented,
) -> None:
    for table in EVENTS:
        loaded, in_window, after_load = inc.con.execute(
            f"""
            select
                count(*) filter (where _loaded_at = ?),
                count(*) filter (where _loaded_at = ?
                    and try_cast(timestamp as timestamptz) > ?
                    and try_cast(timestamp as timestamptz) < ?),
                count(*) filter (where _loaded_at > ?)
            from raw.{table}
            """,
            [LOADED_AT.replace(tzinfo=None)] * 2 + [END, LOADED_AT, LOADED_AT.replace(tzinfo=None)],
        ).fetchall()[0]
        assert loaded == in_window == inc.appended[table], table
        assert after_load == 0
    (orders_after,) = inc.con.execute(
        "select count(*) from raw.orders where try_cast(ordered_at as timestamptz) between ? and ?",
        [END + timedelta(seconds=1), LOADED_AT],
    ).fetchall()[0]
    assert orders_after == inc.appended["orders"]


def test_appended_rows_come_from_existing_people_from_new_devices_and_from_new_people(
    inc: Incremented,
) -> None:
    # Each appended identify by who sent it: an existing device (its anonymous id generated
    # before), a new device of an existing person (linking it to their user_id), a new person.
    kinds = dict(
        inc.con.execute(
            f"""
            with appended as (
                select anonymous_id, user_id from raw.identifies where _loaded_at = ?
            ),
            device as (
                select identifier_value, person_id from truth.identifiers
                where identifier_type = 'anonymous_id'
            ),
            classified as (
                select
                    case
                        when device.person_id >= {CUSTOMERS} then 'new person'
                        when appended.anonymous_id in (
                            select anonymous_id from raw.identifies where _loaded_at < ?
                            union all
                            select anonymous_id from raw.pages where _loaded_at < ?
                        ) then 'existing device'
                        when users.person_id = device.person_id then 'new device, linked'
                        else 'other'
                    end as source
                from appended
                inner join device on appended.anonymous_id = device.identifier_value
                left join truth.identifiers as users
                    on users.identifier_type = 'user_id'
                    and users.identifier_value = appended.user_id
            )
            select source, count(*) from classified group by source
            """,
            [LOADED_AT.replace(tzinfo=None)] * 3,
        ).fetchall()
    )
    total = inc.appended["identifies"]
    assert set(kinds) == {"existing device", "new device, linked", "new person"}
    assert sum(kinds.values()) == total
    assert 0.12 < kinds["new device, linked"] / total < 0.18
    assert 0.2 < kinds["new person"] / total < 0.35
    assert kinds["existing device"] > 0.4 * total
    # Page views: most on devices seen before.
    existing_pages, new_pages = inc.con.execute(
        f"""
        select
            count(*) filter (where ids.person_id < {CUSTOMERS} and seen.anonymous_id is not null),
            count(*) filter (where seen.anonymous_id is null)
        from raw.pages as pages
        inner join truth.identifiers as ids
            on ids.identifier_type = 'anonymous_id' and ids.identifier_value = pages.anonymous_id
        left join (
            select distinct anonymous_id from raw.pages where _loaded_at < ?
        ) as seen on pages.anonymous_id = seen.anonymous_id
        where pages._loaded_at = ?
        """,
        [LOADED_AT.replace(tzinfo=None)] * 2,
    ).fetchall()[0]
    assert existing_pages + new_pages == inc.appended["pages"]
    assert 0.6 < existing_pages / inc.appended["pages"] < 0.8


def test_new_people_and_identifiers_are_in_the_truth_and_collide_with_nothing(
    inc: Incremented,
) -> None:
    new_people, web, buyers = inc.con.execute(
        f"select count(*), count(*) filter (where kind = 'web'), count(purchases_per_day) "
        f"from truth.persons where person_id >= {CUSTOMERS}"
    ).fetchall()[0]
    assert (
        new_people
        == web
        == inc.con.execute("select count(*) from truth.persons").fetchall()[0][0]
        - inc.persons_before
    )
    assert 0.2 < new_people / inc.appended["identifies"] < 0.4
    assert 0.15 * new_people < buyers < 0.35 * new_people
    # New identifiers each have one true person: the ones several people hold are as before.
    assert inc.con.execute(_AMBIGUOUS).fetchall() == inc.ambiguous_before
    (untracked,) = inc.con.execute(
        """
        select count(*) from raw.identifies as identifies
        where _loaded_at = ? and not exists (
            select 1 from truth.identifiers as ids
            where ids.identifier_type = 'anonymous_id'
                and ids.identifier_value = identifies.anonymous_id
        )
        """,
        [LOADED_AT.replace(tzinfo=None)],
    ).fetchall()[0]
    assert untracked == 0
    # New people's orders carry their new customer refs; returning buyers', the ones they had.
    new_refs, old_refs = inc.con.execute(
        f"""
        select count(*) filter (where ids.person_id >= {CUSTOMERS}),
            count(*) filter (where ids.person_id < {CUSTOMERS})
        from raw.orders as orders
        inner join truth.identifiers as ids
            on ids.identifier_type = 'shop_customer_ref'
            and ids.identifier_value = orders.customer_ref
        where try_cast(orders.ordered_at as timestamptz) > ?
        """,
        [END],
    ).fetchall()[0]
    assert new_refs > 5
    assert old_refs > 5 * new_refs


def test_returning_buyers_who_stop_get_their_dropout_and_buy_no_more(inc: Incremented) -> None:
    stopped, after_dropout = inc.con.execute(
        """
        select
            count(distinct persons.person_id) filter (where persons.dropout_at > ?),
            count(*) filter (where try_cast(orders.ordered_at as timestamptz)
                > persons.dropout_at::timestamptz)
        from raw.orders as orders
        inner join truth.identifiers as ids
            on ids.identifier_type = 'shop_customer_ref'
            and ids.identifier_value = orders.customer_ref
        inner join truth.persons as persons on ids.person_id = persons.person_id
        """,
        [END.replace(tzinfo=None)],
    ).fetchall()[0]
    # About a quarter of the returning buyers stop after this purchase (Beta(0.9, 3) on average).
    assert 0.1 * inc.appended["orders"] < stopped < 0.35 * inc.appended["orders"]
    assert after_dropout == 0


def test_the_same_increment_twice_gives_the_same_rows_and_another_seed_does_not() -> None:
    first = _appended_digest(_incremented(5_000, 4).con)
    again = _appended_digest(_incremented(5_000, 4).con)
    other = _appended_digest(_incremented(5_000, 4, increment_seed=2).con)
    assert first == again
    assert all(a != b for a, b in zip(first[:5], other[:5], strict=True))


def test_a_second_increment_adds_new_keys_again() -> None:
    inc = _incremented(5_000, 4)
    tables = (*KEYS, "order_items")
    before = {table: _distinct_keys(inc.con, table) for table in tables}
    persons = inc.con.execute("select count(*) from truth.persons").fetchall()[0][0]
    appended = generate_increment(
        inc.con, 5_000, 4, increment_seed=2, loaded_at=LOADED_AT + timedelta(days=1)
    )
    for table in tables:
        assert _distinct_keys(inc.con, table) - before[table] == appended[table], table
    (ambiguous,) = inc.con.execute(
        "select count(*) from (select identifier_type, identifier_value from truth.identifiers "
        "where identifier_type = 'anonymous_id' and identifier_value <> 'anonymous' "
        "group by all having count(*) > 1)"
    ).fetchall()[0]
    assert ambiguous == 0
    (distinct_persons,) = inc.con.execute(
        "select count(distinct person_id) from truth.persons"
    ).fetchall()[0]
    assert (
        distinct_persons
        == inc.con.execute("select count(*) from truth.persons").fetchall()[0][0]
        > persons
    )


def test_an_increment_needs_the_tessera_shape_and_the_generated_people() -> None:
    data = generate(2_000, seed=6)
    with pytest.raises(ValueError, match="seed the tables were generated with"):
        generate_increment(data.con, 2_000, seed=7)
    with pytest.raises(ValueError, match="customers and seed"):
        generate_increment(data.con, 1_500, seed=6)
    with pytest.raises(ValueError, match="after the generator's clock"):
        generate_increment(data.con, 2_000, seed=6, loaded_at=END)
    apply_shape(data.con, "raw", "typed")
    with pytest.raises(ValueError, match="tessera shape"):
        generate_increment(data.con, 2_000, seed=6)
