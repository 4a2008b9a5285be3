from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.postgres_server import PostgresServer, PostgresUnavailable, start_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests without a marker are unit tests.
    for item in items:
        if not any(item.iter_markers(name) for name in ("integration", "e2e")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real Postgres server for the whole session. Under CI it must start: never a skip."""
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI requires Postgres tests to run: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()
