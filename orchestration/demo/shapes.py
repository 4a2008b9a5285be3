"""The generated sources reshaped as other tools land them in a warehouse.

The generator writes Tessera's source contract with every column as text, so that broken values
(an impossible date, a malformed email) survive as a user's raw data would hold them; only the
events' load timestamp, `_loaded_at`, is a TIMESTAMP, as the loader that writes it types it. Real
warehouses are filled by EL tools that type their columns, and event data usually arrives in the
Segment or RudderStack warehouse schema rather than in Tessera's contract. Each shape here rewrites
the generated tables of one schema, in place, into one of those forms:

- ``tessera``: the contract as generated, all text.
- ``typed``: the contract with typed columns, as an EL tool writes them: TIMESTAMP and TIMESTAMP
  WITH TIME ZONE, DECIMAL and DOUBLE, BOOLEAN, INTEGER. A value the type cannot hold (the
  generator's unparseable timestamps) becomes null, as it would on load.
- ``segment``: Segment's warehouse schema (segment-docs, "Warehouse Schemas"): identify traits as
  columns; ``tracks`` without properties plus one table per event named by the event's snake_case
  slug, properties as columns; UTM parameters as ``context_campaign_*``; the four timestamps
  (``timestamp``, ``original_timestamp``, ``sent_at``, ``received_at``) and ``uuid_ts``, typed
  TIMESTAMP WITH TIME ZONE.
- ``rudderstack``: RudderStack's warehouse schema (rudderstack-docs, "Warehouse Schemas"): as
  Segment's, but identify traits arrive in the context (``context_traits_*``), a ``users`` table
  holds each user's latest traits, and timestamps are TIMESTAMP (UTC).

Only the event tables (identifies, tracks, pages) differ between the presets; orders, CRM
contacts, tickets, consents and deletion requests keep the contract's names in every shape and
are typed as in ``typed``.
"""

from __future__ import annotations

import duckdb

from orchestration.collect.warehouse_schema import event_table_name
from orchestration.demo.generator import SOURCE_TABLES, TRACK_EVENTS

SHAPES = ("tessera", "typed", "segment", "rudderstack")
# The generated events whose properties hold a product id and a price.
PRODUCT_EVENTS = TRACK_EVENTS[:2]

# How long after an event the collector received it, and after that the loader wrote it.
_RECEIVED_DELAY = "interval 2 second"
_LOADED_DELAY = "interval 40 minute"
# When the server received a call whose own timestamp was unusable: the clock of the generator.
_FALLBACK_RECEIVED = "timestamptz '2026-10-31 00:00:00+00'"


def _instant(expr: str) -> str:
    """ISO-8601 text (with or without an offset) as TIMESTAMP WITH TIME ZONE; null if unusable."""
    return f"try_cast({expr} as timestamptz)"


def _utc(expr: str) -> str:
    """ISO-8601 text as TIMESTAMP (UTC wall time); null if unusable."""
    return f"timezone('UTC', {_instant(expr)})"


def _replace(con: duckdb.DuckDBPyConnection, schema: str, table: str, select: str) -> None:
    con.execute(f'create or replace table "{schema}"."{table}" as {select}')


def apply_shape(con: duckdb.DuckDBPyConnection, schema: str, shape: str) -> list[str]:
    """Rewrite the generated tables of ``schema`` into ``shape``; return the tables it holds."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: choose one of {', '.join(SHAPES)}")
    tables = list(SOURCE_TABLES)
    if shape == "tessera":
        return tables
    con.execute("set TimeZone = 'UTC'")
    _type_shop_and_crm(con, schema)
    if shape == "typed":
        _type_events(con, schema)
        return tables
    event_tables = _vendor_events(con, schema, vendor=shape)
    return [*tables, *event_tables]


def _type_shop_and_crm(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    s = f'"{schema}"'
    _replace(con, schema, "orders", f"""
        select * replace (
            {_utc("ordered_at")} as ordered_at,
            cast(total_amount as decimal(18, 2)) as total_amount
        ) from {s}.orders""")  # fmt: skip
    _replace(con, schema, "crm_contacts", f"""
        select * replace (
            {_instant("created_at")} as created_at,
            {_instant("updated_at")} as updated_at
        ) from {s}.crm_contacts""")  # fmt: skip
    _replace(con, schema, "support_tickets", f"""
        select * replace (
            {_utc("created_at")} as created_at,
            cast(satisfaction_score as integer) as satisfaction_score
        ) from {s}.support_tickets""")  # fmt: skip
    _replace(con, schema, "consents", f"""
        select * replace (
            cast(granted as boolean) as granted,
            {_instant("recorded_at")} as recorded_at
        ) from {s}.consents""")  # fmt: skip
    _replace(con, schema, "deletion_requests", f"""
        select * replace ({_utc("requested_at")} as requested_at)
        from {s}.deletion_requests""")  # fmt: skip
    _replace(con, schema, "order_items", f"""
        select * replace (
            cast(price as decimal(18, 2)) as price,
            -- DuckDB would round '1.5' to 2; an INTEGER column cannot hold it at all.
            case when regexp_full_match(quantity, '-?[0-9]+') then cast(quantity as integer) end
                as quantity
        ) from {s}.order_items""")  # fmt: skip


def _type_events(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    s = f'"{schema}"'
    stamps = {"identifies": _instant, "tracks": _utc, "pages": _instant}
    for table, typed in stamps.items():
        stamp = typed('"timestamp"')
        _replace(con, schema, table, f'select * replace ({stamp} as "timestamp") from {s}.{table}')


def _timestamps(vendor: str) -> str:
    """The four call timestamps and uuid_ts of a vendor's tables, from the generated text."""
    event = _instant('"timestamp"')
    received = f"coalesce({event}, {_FALLBACK_RECEIVED}) + {_RECEIVED_DELAY}"
    columns = {
        "timestamp": event,
        "original_timestamp": event,
        "sent_at": event,
        "received_at": received,
        "uuid_ts": f"{received} + {_LOADED_DELAY}",
    }
    if vendor == "rudderstack":
        columns = {name: f"timezone('UTC', {expr})" for name, expr in columns.items()}
    return ", ".join(f'{expr} as "{name}"' for name, expr in columns.items())


def _vendor_events(con: duckdb.DuckDBPyConnection, schema: str, vendor: str) -> list[str]:
    s = f'"{schema}"'
    stamps = _timestamps(vendor)
    library = "'analytics.js'" if vendor == "segment" else "'RudderLabs JavaScript SDK'"
    common = f"id, anonymous_id, user_id, {library} as context_library_name, {stamps}"
    if vendor == "segment":
        traits = "email, phone, first_name, last_name"
    else:
        traits = (
            "email as context_traits_email, phone as context_traits_phone, "
            "first_name as context_traits_first_name, last_name as context_traits_last_name"
        )
    _replace(con, schema, "identifies", f"select {common}, {traits} from {s}.identifies")

    con.execute(f"create or replace temp table generated_tracks as select * from {s}.tracks")
    slug = "trim(regexp_replace(lower(event), '[^a-z0-9]+', '_', 'g'), '_')"
    track_columns = f"{common}, {slug} as event, event as event_text, context_device_id"
    _replace(con, schema, "tracks", f"select {track_columns} from generated_tracks")
    event_tables = []
    events = con.execute(
        "select distinct event from generated_tracks where event is not null order by event"
    ).fetchall()
    for (event,) in events:
        table = event_table_name(event)
        # The generator gives product events a product id and a price; the others carry none.
        properties = (
            ", json_extract_string(properties, '$.product_id') as product_id, "
            "cast(json_extract(properties, '$.price') as double) as price"
            if event in PRODUCT_EVENTS
            else ""
        )
        name = event.replace("'", "''")
        _replace(
            con,
            schema,
            table,
            f"select {track_columns}{properties} from generated_tracks where event = '{name}'",
        )
        event_tables.append(table)
    con.execute("drop table generated_tracks")

    _replace(con, schema, "pages", f"""
        select
            {common},
            cast(null as varchar) as name,
            path, referrer, cast(null as varchar) as title, url,
            path as context_page_path, url as context_page_url,
            referrer as context_page_referrer,
            utm_source as context_campaign_source,
            utm_medium as context_campaign_medium,
            utm_campaign as context_campaign_name
        from {s}.pages""")  # fmt: skip
    if vendor == "rudderstack":
        _replace(con, schema, "users", f"""
            select
                user_id as id, received_at, uuid_ts, context_traits_email as email,
                context_traits_first_name as first_name, context_traits_last_name as last_name
            from {s}.identifies
            where user_id is not null
            qualify row_number() over (partition by user_id order by received_at desc, id) = 1
        """)  # fmt: skip
        event_tables.append("users")
    return event_tables
