"""Fixtures the platform destination tests share."""

from __future__ import annotations

import pytest

from tests.activation.sync_support import make_warehouse


@pytest.fixture
def warehouse(request, tmp_path_factory):
    return make_warehouse(request, tmp_path_factory, "duckdb")
