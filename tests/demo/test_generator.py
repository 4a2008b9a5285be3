"""The demo generator: deterministic per seed, realistic and adversarial in the ways promised."""

from __future__ import annotations

import pytest

from orchestration.demo.generator import (
    JUNK_EMAIL,
    JUNK_PHONE_E164,
    SHARED_INBOX,
    SOURCE_TABLES,
    SPECS,
    generate,
)


@pytest.fixture(scope="module")
def data():
    return generate(5_000, seed=3)


def _table_digest(con, schema: str, table: str) -> tuple[int, str]:
    return con.execute(
        f"select count(*), md5(string_agg(t::varchar, '|' order by t::varchar)) "
        f"from {schema}.{table} as t"
    ).fetchall()[0]


def test_the_sources_go_to_the_schema_asked_for_with_the_same_rows(data) -> None:
    # It broke: the demo always wrote schema raw, whatever tessera_raw_schema said.
    landing = generate(5_000, seed=3, schema="landing")
    for table in SOURCE_TABLES:
        assert _table_digest(landing.con, "landing", table) == _table_digest(
            data.con, "raw", table
        ), table
    assert landing.con.execute(
        "select count(*) from information_schema.tables where table_schema = 'raw'"
    ).fetchall() == [(0,)]


def test_same_seed_gives_identical_tables_and_another_seed_does_not(data) -> None:
    again = generate(5_000, seed=3)
    other = generate(5_000, seed=4)
    for table in SOURCE_TABLES:
        digest = _table_digest(data.con, "raw", table)
        assert digest == _table_digest(again.con, "raw", table), table
        assert digest != _table_digest(other.con, "raw", table), table
    assert _table_digest(data.con, "truth", "identifiers") == _table_digest(
        again.con, "truth", "identifiers"
    )


def test_raw_tables_have_exactly_the_contract_columns(data) -> None:
    for table in SOURCE_TABLES:
        columns = [
            row[0]
            for row in data.con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'raw' and table_name = ? order by ordinal_position",
                [table],
            ).fetchall()
        ]
        assert columns == list(SPECS[table].columns), table


def test_about_one_percent_of_rows_are_broken(data) -> None:
    defects = dict(
        data.con.execute(
            "select table_name, sum(rows) from truth.defects "
            "where reason <> 'duplicate_id' group by table_name"
        ).fetchall()
    )
    for table in ("pages", "tracks", "identifies", "orders", "consents"):
        share = defects[table] / data.row_counts[table]
        assert 0.005 < share < 0.015, (table, share)


def test_people_browse_anonymously_on_several_devices_before_identifying(data) -> None:
    (people_with_many_devices,) = data.con.execute(
        "select count(*) from (select user_id from raw.identifies where user_id is not null "
        "group by user_id having count(distinct anonymous_id) > 1)"
    ).fetchall()[0]
    assert people_with_many_devices > 100
    # Page views of a device before its first identify carry no user_id.
    (anonymous_before,) = data.con.execute(
        "select count(*) from raw.pages as p inner join ("
        "  select anonymous_id, min(timestamp) as first_identify from raw.identifies "
        "  where user_id is not null group by anonymous_id"
        ") as i on p.anonymous_id = i.anonymous_id "
        "where p.user_id is null and p.timestamp < i.first_identify"
    ).fetchall()[0]
    assert anonymous_before > 100


def test_one_email_appears_with_case_and_whitespace_variants(data) -> None:
    (variants,) = data.con.execute(
        "select count(*) from (select lower(trim(email)) as e from raw.orders "
        "where email is not null group by e having count(distinct email) > 1)"
    ).fetchall()[0]
    assert variants > 50


def test_phones_come_in_national_and_international_formats(data) -> None:
    international, national = data.con.execute(
        "select sum(case when trim(phone) like '+%' or phone like '00%' then 1 else 0 end), "
        "sum(case when trim(phone) like '+%' or phone like '00%' then 0 else 1 end) "
        "from raw.orders where phone is not null"
    ).fetchall()[0]
    assert international > 100
    assert national > 100


def test_shop_only_and_crm_only_people_exist(data) -> None:
    (pos_orders_with_only_a_phone,) = data.con.execute(
        "select count(*) from raw.orders where channel = 'pos' and email is null "
        "and customer_ref is null and phone is not null"
    ).fetchall()[0]
    assert pos_orders_with_only_a_phone > 100
    kinds = dict(
        data.con.execute("select kind, count(*) from truth.persons group by kind").fetchall()
    )
    assert kinds["crm"] > 100
    assert kinds["pos"] > 100


def test_junk_identifiers_are_shared_by_many_people(data) -> None:
    shared = dict(
        data.con.execute(
            "select identifier_value, count(distinct person_id) from truth.identifiers "
            "where identifier_value in (?, ?, ?, 'anonymous') group by identifier_value",
            [JUNK_EMAIL, JUNK_PHONE_E164, SHARED_INBOX],
        ).fetchall()
    )
    assert shared[JUNK_EMAIL] >= 10
    assert shared[JUNK_PHONE_E164] >= 2
    assert shared[SHARED_INBOX] >= 10
    assert shared["anonymous"] >= 3
    # Every other identifier belongs to exactly one person.
    (ambiguous,) = data.con.execute(
        "select count(*) from (select identifier_type, identifier_value from truth.identifiers "
        "group by all having count(distinct person_id) > 1)"
    ).fetchall()[0]
    assert ambiguous == 4


def test_revoked_consents_follow_an_earlier_grant(data) -> None:
    revoked, revoked_after_grant = data.con.execute(
        "select count(*), count(grant_at) from ("
        "  select r.subject_value, r.purpose, max(g.recorded_at) as grant_at "
        "  from raw.consents as r left join raw.consents as g "
        "    on lower(trim(g.subject_value)) = lower(trim(r.subject_value)) "
        "    and g.purpose = r.purpose and g.granted and g.recorded_at <= r.recorded_at "
        "  where not r.granted and r.subject_value is not null "
        "  group by r.subject_value, r.purpose, r.recorded_at)"
    ).fetchall()[0]
    assert revoked > 100
    # All but the ~1% whose grant row was broken on purpose (no subject or no valid timestamp).
    assert revoked_after_grant >= 0.97 * revoked
    assert data.row_counts["deletion_requests"] > 5


def test_customer_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate(0)


def test_clean_mode_has_no_broken_rows_and_no_shared_identifiers() -> None:
    clean = generate(2_000, seed=5, defect_rate=0.0, junk=False)
    (defects,) = clean.con.execute("select sum(rows) from truth.defects").fetchall()[0]
    assert defects == 0
    (ambiguous,) = clean.con.execute(
        "select count(*) from (select identifier_type, identifier_value from truth.identifiers "
        "group by all having count(distinct person_id) > 1)"
    ).fetchall()[0]
    assert ambiguous == 0
