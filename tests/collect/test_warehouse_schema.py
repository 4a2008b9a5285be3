"""How a call becomes rows of Segment's warehouse schema."""

from __future__ import annotations

from orchestration.collect.warehouse_schema import call_rows, event_table_name, snake_case


def test_names_are_snake_case_as_segment_writes_them() -> None:
    assert snake_case("firstName") == "first_name"
    assert snake_case("Product ID") == "product_id"
    assert snake_case("utm-source") == "utm_source"
    assert snake_case("$$") == ""
    assert event_table_name("Order Completed") == "order_completed"
    assert event_table_name("Pages") == "pages_event"
    assert event_table_name("404 seen") == "event_404_seen"


def test_a_track_lands_in_tracks_and_in_its_event_table_with_properties_as_text() -> None:
    record = {
        "type": "track",
        "messageId": "m1",
        "userId": 42,
        "event": "Product Added",
        "properties": {
            "productId": "p-9",
            "price": 12.5,
            "onSale": True,
            "tags": ["a", "b"],
            "dims": {"widthCm": 3},
            "id": "shadowed",
        },
        "context": {"page": {"url": "https://shop.example.org/p/9"}, "ip": "10.0.0.1"},
        "timestamp": "2026-12-07T12:00:00.000000Z",
        "receivedAt": "2026-12-07T12:00:01.000000Z",
    }
    (tracks, track_row), (event_table, event_row) = call_rows(record)
    assert (tracks, event_table) == ("tracks", "product_added")
    assert track_row["user_id"] == "42"
    assert track_row["event"] == "product_added" and track_row["event_text"] == "Product Added"
    assert track_row["context_page_url"] == "https://shop.example.org/p/9"
    assert "product_id" not in track_row
    assert event_row["product_id"] == "p-9"
    assert event_row["price"] == "12.5"
    assert event_row["on_sale"] == "true"
    assert event_row["tags"] == '["a","b"]'
    assert event_row["dims_width_cm"] == "3"
    # Segment discards a property named like a column of the call; Tessera keeps it aside.
    assert event_row["id"] == "m1" and event_row["properties_id"] == "shadowed"


def test_identify_traits_and_page_properties_become_columns() -> None:
    [(table, row)] = call_rows(
        {
            "type": "identify",
            "messageId": "m2",
            "anonymousId": "a",
            "traits": {"email": "A@b.co", "firstName": "Ann"},
        }
    )
    assert table == "identifies" and row["email"] == "A@b.co" and row["first_name"] == "Ann"
    [(table, row)] = call_rows(
        {
            "type": "page",
            "messageId": "m3",
            "anonymousId": "a",
            "name": "Home",
            "properties": {"path": "/", "name": "Shadow"},
            "context": {"campaign": {"source": "news", "name": "winter"}},
        }
    )
    assert table == "pages" and row["path"] == "/" and row["name"] == "Home"
    assert row["properties_name"] == "Shadow"
    assert row["context_campaign_source"] == "news" and row["context_campaign_name"] == "winter"
