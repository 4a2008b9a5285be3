"""The Dagster UI as a user sees it: Debian's chromium, headless, driven through the DevTools
protocol (a websocket, no browser download): the asset graph shows every layer, and a
materialization launched from the UI succeeds. A screenshot of each page is kept in
test-artifacts/ui/.
"""

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestration.activation.config import declared_sync_names
from orchestration.activation.destinations import registry
from orchestration.cli import generate_into
from orchestration.collect.triggers import load_triggers
from orchestration.predictive.assets import PREDICTION_TABLES, PROPENSITY_TABLES
from orchestration.warehouse import Warehouse
from tests.e2e.browser import Browser, launch, wait_until
from tests.postgres_server import free_port

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT / "test-artifacts" / "ui"
CUSTOMERS = 300


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    browser = launch(tmp_path / "chromium")
    yield browser
    browser.close()


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[str]:
    """``dagster dev`` (webserver and daemon, as ``make ui`` starts them) on a free port, against
    a fresh DuckDB holding demo sources only."""
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "demo.duckdb")
    generate_into(warehouse, CUSTOMERS, seed=3)
    home = tmp_path / "dagster_home"
    home.mkdir()
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), **warehouse.dbt_env()}
    log = (tmp_path / "dagster.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-m", "orchestration.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        assert server.poll() is None, (tmp_path / "dagster.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_until(serving, 240, "the Dagster UI to serve", interval=1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # `dagster dev` was seen still shutting down a minute after SIGTERM, which failed
            # the teardown of a passing test: the UI was checked already, stop it hard.
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


def test_the_ui_shows_every_layer_and_a_materialization_launched_there_succeeds(
    ui: str, browser: Browser
) -> None:
    browser.open(f"{ui}/asset-groups")
    text = browser.wait_for_text(["Global asset lineage", "Materialize all ("], 180)
    # Dagster asks new users to join its community once; the dialog covers the page.
    browser.click_button("Skip")
    lines = set(text.splitlines())
    layers = {
        "raw",
        "reference",
        "staging",
        "identity",
        "marts",
        "journeys",
        "predictive",
        "metrics",
        "audiences",
        "syncs",
        "console",
    }
    assert layers <= lines
    # Every model, seed, predictive and propensity table, saved query table (schema metrics) and
    # sync, the three event tables the collector's loader writes, the stream worker's trigger
    # snapshot and, on DuckDB, the console's snapshot; the other raw tables and the worker itself
    # are external, nothing to materialize there.
    models = len(list((PROJECT / "models").rglob("*.sql")))
    seeds = len(list((PROJECT / "seeds").glob("*.csv")))
    syncs = len(declared_sync_names(PROJECT))
    loaded = len(["identifies", "tracks", "pages"])
    snapshot = 1 if load_triggers(PROJECT, registry()) else 0
    console = 1
    predictions = len(PREDICTION_TABLES) + len(PROPENSITY_TABLES)
    saved_queries = yaml.safe_load((PROJECT / "models/semantic/saved_queries.yml").read_text())
    metrics = len(saved_queries["saved_queries"])
    total = models + seeds + predictions + syncs + loaded + snapshot + console + metrics
    assert f"Materialize all ({total})" in text
    browser.screenshot(ARTIFACTS / "asset-lineage.png")

    # The seeds: a real dbt run through the run queue, the daemon and a run worker, kept short.
    browser.open(f"{ui}/locations/orchestration.definitions/asset-groups/reference")
    # The button shows before the assets have loaded, and does nothing until they have.
    browser.wait_for_text(
        ["country_calling_codes", "identifier_blocklist", "Never materialized"], 60
    )
    wait_until(lambda: browser.click_button("Materialize all"), 30, "the Materialize all button")
    # Leaving the page before the launch request returns would cancel it.
    browser.wait_for_text(["Materializing"], 60)

    browser.open(f"{ui}/runs")
    runs = browser.wait_for_text([f"{seeds} assets", "Success"], 300)
    assert "Failure" not in runs
    browser.screenshot(ARTIFACTS / "runs.png")
