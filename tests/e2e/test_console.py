"""The console (``tessera console``) as its users see it, in headless chromium: over the warehouse
``tessera demo`` leaves (the session's build with its predictions, the demo's syncs run into a
copy, then the console snapshot), served by the command in its own process, its output kept.
A viewer finds a customer by email and sees personal values masked, an admin sees them in full
and whose lookups the access log holds; the audience, overlap and sync health pages show what
the warehouse holds; nothing is served without signing in and the log holds no searched value.
Every figure asserted is read from the warehouse with SQL. Screenshots go to
test-artifacts/console/.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from urllib.parse import unquote, urlencode, urlsplit

import pytest

from orchestration.activation.engine import run_syncs
from orchestration.console.access import add_user
from orchestration.console.pages import TIMELINE_PAGE_SIZE
from orchestration.console.reader import write_snapshot
from orchestration.privacy import mask
from orchestration.warehouse import Warehouse
from tests.conftest import Predicted
from tests.e2e.browser import Browser, launch, wait_until
from tests.postgres_server import free_port

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT / "test-artifacts" / "console"
VIEWER, ADMIN = "vic", "ada"
ROLES = {VIEWER: "viewer", ADMIN: "admin"}
#: The runs per sync the sync health page shows (pages.sync_health's default).
RUNS_SHOWN = 10
#: The sync given platform reports whose match rate falls 20 points.
REPORTED_SYNC = "repeat_buyers_table"


@dataclass(frozen=True)
class Console:
    url: str
    log: Path
    passwords: dict[str, str]


@dataclass(frozen=True)
class Person:
    """The customer searched: one a sync sent, with several identifiers and the most events."""

    customer_id: str
    email: str
    identifiers: int
    events: int
    deliveries: int


@dataclass(frozen=True)
class Seen:
    """A profile page as the browser showed it."""

    url: str
    text: str
    html: str
    golden: dict[str, str]
    identifiers: int
    events: int
    timeline_heading: str
    deliveries: int


@pytest.fixture(scope="module")
def console_warehouse(
    predicted_duckdb_warehouse: Predicted, tmp_path_factory: pytest.TempPathFactory
) -> Warehouse:
    """The warehouse ``tessera demo`` leaves: a copy of the session's (tests/conftest.py), the
    demo's syncs run into it, and its console snapshot written."""
    source = predicted_duckdb_warehouse.warehouse
    # What is still in the write-ahead log goes into the file before it is copied.
    source.execute(["checkpoint"])
    folder = tmp_path_factory.mktemp("console_warehouse")
    # The same file name: DuckDB names the database after it, and dbt's views name the database.
    warehouse = Warehouse(target="local", duckdb_path=folder / source.duckdb_path.name)
    shutil.copyfile(source.duckdb_path, warehouse.duckdb_path)
    # The file syncs write under output/syncs of the working directory; with no account
    # configured the syncs to ad platforms and CRMs are skipped, as in the demo.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        results = run_syncs(warehouse, env={})
    ran = {result.sync: result.status for result in results if result.status != "skipped"}
    assert len(ran) >= 2 and set(ran.values()) == {"succeeded"}, ran
    # What an ad platform reports of two runs, the later matching 20 points fewer: a file
    # destination reports nothing, so the rows are written as the engine writes Google's.
    (run_id,) = warehouse.query(
        f"select run_id from activation.sync_runs where sync_name = '{REPORTED_SYNC}'"
    )[0]
    warehouse.execute(
        [
            "insert into activation.sync_platform_reports values "
            f"('{run_id}', '{REPORTED_SYNC}', 'file', timestamp '2026-12-01 05:00:00', 200, 0, "
            "0.41, 0.5, 'MATCH_RATE_RANGE_41_TO_50'), "
            f"('{run_id}', '{REPORTED_SYNC}', 'file', timestamp '2026-12-02 05:00:00', 200, 0, "
            "0.2, 0.3, 'MATCH_RATE_RANGE_20_TO_30')"
        ]
    )
    write_snapshot(warehouse)
    return warehouse


@pytest.fixture(scope="module")
def person(console_warehouse: Warehouse) -> Person:
    rows = console_warehouse.query(
        """
        with identifiers as (
            select customer_id, count(*) as identifiers_count
            from marts.customer_identities
            group by customer_id
        ),

        events as (
            select customer_id, count(*) as events_count
            from marts.customer_events
            group by customer_id
        ),

        own_emails as (
            select customer_id, identifier_value as email
            from marts.customer_identities
            where identifier_type = 'email'
        ),

        deliveries as (
            select customer_id, count(*) as deliveries_count
            from activation.sync_state
            group by customer_id
        )

        select
            customers.customer_id,
            customers.email,
            identifiers.identifiers_count,
            events.events_count,
            deliveries.deliveries_count
        from marts.customers as customers
        inner join identifiers on customers.customer_id = identifiers.customer_id
        inner join events on customers.customer_id = events.customer_id
        inner join deliveries on customers.customer_id = deliveries.customer_id
        inner join own_emails
            on customers.customer_id = own_emails.customer_id
            and customers.email = own_emails.email
        where identifiers.identifiers_count >= 3
        order by events.events_count desc, customers.customer_id
        limit 1
        """
    )
    assert rows, "no customer a sync sent with an email, several identifiers and events"
    person = Person(*rows[0])
    # More events than a page of the timeline holds, so the page shows one page of them.
    assert person.events > TIMELINE_PAGE_SIZE
    return person


@pytest.fixture(scope="module")
def console(
    console_warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    """``tessera console`` on a free port, reading the snapshot, with a viewer and an admin;
    everything it prints goes to ``Console.log``."""
    folder = tmp_path_factory.mktemp("console")
    users = folder / "users.yml"
    passwords = {name: secrets.token_urlsafe(12) for name in ROLES}
    for name, role in ROLES.items():
        add_user(users, name, role, passwords[name])
    port = free_port()
    env = {
        **os.environ,
        **console_warehouse.dbt_env(),
        "TESSERA_CONSOLE_DIR": str(folder),
        "TESSERA_CONSOLE_USERS_FILE": str(users),
        "TESSERA_CONSOLE_USERS": "",
        "TESSERA_CONSOLE_SECRET": "",
        "PYTHONUNBUFFERED": "1",
    }
    log = folder / "console.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "orchestration.cli", "console", "--port", str(port)],
            cwd=PROJECT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            return _http(f"{url}/login")[0] == 200
        except OSError:
            return False

    try:
        wait_until(serving, 60, "the console to serve", interval=0.2)
        yield Console(url, log, passwords)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    browser = launch(tmp_path_factory.mktemp("chromium"))
    yield browser
    browser.close()


def _http(
    url: str, form: dict[str, str] | None = None, cookie: str | None = None
) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of a GET, or a POST of ``form``; redirects are not followed."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"cookie": cookie} if cookie else {}
    body = None
    if form is not None:
        body = urlencode(form)
        headers["content-type"] = "application/x-www-form-urlencoded"
    try:
        connection.request("GET" if form is None else "POST", parts.path, body, headers)
        response = connection.getresponse()
        text = response.read().decode()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text
    finally:
        connection.close()


def _session(headers: dict[str, str]) -> str:
    """The session cookie a response sets, as a request sends it back."""
    return headers["set-cookie"].split(";")[0]


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found[1]


def _http_sign_in(console: Console, name: str) -> tuple[str, str]:
    """Sign in without a browser: the session cookie and the CSRF token of its forms."""
    status, headers, html = _http(f"{console.url}/login")
    assert status == 200
    form = {"csrf": _csrf(html), "username": name, "password": console.passwords[name]}
    status, headers, _ = _http(f"{console.url}/login", form, cookie=_session(headers))
    assert (status, headers["location"]) == (303, "/")
    cookie = _session(headers)
    status, _, html = _http(f"{console.url}/", cookie=cookie)
    assert status == 200
    return cookie, _csrf(html)


def _sign_in(browser: Browser, console: Console, name: str) -> None:
    browser.goto(f"{console.url}/login")
    browser.fill("#username", name)
    browser.fill("#password", console.passwords[name])
    browser.submit("#sign-in")
    assert browser.text("#signed-in-as") == f"{name} ({ROLES[name]})"


def _search(browser: Browser, console: Console, typed: str) -> None:
    browser.goto(f"{console.url}/")
    browser.fill("#q", typed)
    browser.submit("#search")


def _golden(browser: Browser) -> dict[str, str]:
    """The golden record as shown: field -> value."""
    rows = [row.split("\t") for row in browser.texts("#golden-record tr")[1:]]
    return {cells[0]: cells[1] for cells in rows}


@pytest.fixture(scope="module")
def viewer_lookup(console: Console, browser: Browser, person: Person) -> Seen:
    """The viewer signs in and searches the person's email typed loosely: in upper case, with
    spaces around it."""
    _sign_in(browser, console, VIEWER)
    _search(browser, console, f"  {person.email.upper()}  ")
    seen = Seen(
        url=browser.url(),
        text=browser.text(),
        html=browser.html(),
        golden=_golden(browser),
        identifiers=len(browser.texts("tr.identifier")),
        events=len(browser.texts("tr.event")),
        timeline_heading=browser.text("#timeline h2"),
        deliveries=len(browser.texts("#deliveries tr")) - 1,
    )
    browser.screenshot(ARTIFACTS / "console-profile-viewer.png", full_page=True)
    return seen


def test_without_signing_in_pages_send_to_sign_in_and_forms_are_refused(
    console: Console, person: Person
) -> None:
    for path in (f"/customers/{person.customer_id}", "/audiences"):
        status, headers, body = _http(f"{console.url}{path}")
        assert (status, headers["location"]) == (303, "/login"), path
        assert person.customer_id not in body
        assert person.email.lower() not in body.lower()
    status, _, body = _http(f"{console.url}/search", {"q": person.email, "csrf": "guessed"})
    assert status == 401
    assert person.customer_id not in body
    # Signed in, a form carrying another token than the session's is refused...
    cookie, csrf = _http_sign_in(console, VIEWER)
    form = {"q": person.email, "csrf": f"{csrf}x"}
    assert _http(f"{console.url}/search", form, cookie=cookie)[0] == 403
    # ...and the same form with the session's token is answered.
    status, headers, _ = _http(f"{console.url}/search", {**form, "csrf": csrf}, cookie=cookie)
    assert (status, headers["location"]) == (303, f"/customers/{person.customer_id}")


def test_a_viewer_finds_a_customer_by_email_typed_loosely_and_sees_it_masked(
    viewer_lookup: Seen, console: Console, person: Person
) -> None:
    seen = viewer_lookup
    # The address holds the pseudonymous id only: the email went in the form's body.
    assert seen.url == f"{console.url}/customers/{person.customer_id}"
    assert person.email.lower() not in unquote(seen.url).lower()
    assert seen.identifiers == person.identifiers
    assert seen.events == min(TIMELINE_PAGE_SIZE, person.events)
    assert seen.timeline_heading == f"Timeline ({person.events:,} events)"
    # What each sync sent (the email among it) is shown, masked as well.
    assert seen.deliveries == person.deliveries
    assert seen.golden["email"] == mask(person.email)
    assert mask(person.email) in seen.text
    assert person.email.lower() not in seen.text.lower()
    assert person.email.lower() not in seen.html.lower()


def test_an_admin_sees_the_email_in_full_and_the_access_log_lists_both_lookups(
    viewer_lookup: Seen, console: Console, browser: Browser, person: Person
) -> None:
    browser.goto(f"{console.url}/")
    browser.submit("header form button")
    assert browser.url() == f"{console.url}/login"
    assert browser.text("#signed-in-as") == ""
    _sign_in(browser, console, ADMIN)
    _search(browser, console, person.email)
    assert browser.url() == f"{console.url}/customers/{person.customer_id}"
    assert _golden(browser)["email"] == person.email
    assert len(browser.texts("tr.identifier")) == person.identifiers
    browser.screenshot(ARTIFACTS / "console-profile-admin.png", full_page=True)

    browser.goto(f"{console.url}/access-log")
    rows = {tuple(row.split("\t")[1:]) for row in browser.texts("#access-log tr")[1:]}
    assert (VIEWER, "viewer", person.customer_id, "profile") in rows
    assert (ADMIN, "admin", person.customer_id, "profile") in rows


def test_an_audience_page_shows_its_size_and_the_overlap_form_what_two_audiences_share(
    console_warehouse: Warehouse, console: Console, browser: Browser
) -> None:
    names = [
        name
        for (name,) in console_warehouse.query(
            "select table_name from information_schema.tables where table_schema = 'audiences' "
            "and table_name <> 'audience_membership_history' order by 1"
        )
    ]
    assert len(names) >= 2
    sizes = {
        name: console_warehouse.query(f"select count(*) from audiences.{name}")[0][0]
        for name in names
    }
    shared = {
        (first, second): console_warehouse.query(
            f"select count(*) from (select customer_id from audiences.{first} "
            f"intersect select customer_id from audiences.{second}) as both_audiences"
        )[0][0]
        for first, second in combinations(names, 2)
    }
    # The pair sharing the most members, so the number checked is not a zero any page shows.
    (first, second), both = max(shared.items(), key=lambda item: (item[1], item[0]))
    assert both > 0
    _sign_in(browser, console, VIEWER)

    browser.goto(f"{console.url}/audiences/{first}")
    assert browser.text("h1") == first
    assert browser.text("#audience-size") == f"{sizes[first]:,}"
    browser.screenshot(ARTIFACTS / "console-audience.png", full_page=True)

    browser.goto(f"{console.url}/audiences")
    browser.fill("#first", first)
    browser.fill("#second", second)
    browser.submit("#compare")
    assert browser.url() == f"{console.url}/audiences?first={first}&second={second}"
    assert browser.text("#overlap-both") == f"{both:,}"
    browser.screenshot(ARTIFACTS / "console-overlap.png", full_page=True)


def test_the_sync_health_page_lists_every_sync_that_ran(
    console_warehouse: Warehouse, console: Console, browser: Browser
) -> None:
    runs = dict(
        console_warehouse.query(
            "select sync_name, count(*) from activation.sync_runs group by sync_name"
        )
    )
    assert len(runs) >= 2
    _sign_in(browser, console, VIEWER)
    browser.goto(f"{console.url}/syncs")
    # Per sync section: its name and the rows of its runs table (the header row left out).
    shown = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('section.sync')].map("
        "s => [s.id, s.querySelector('table').rows.length - 1]))"
    )
    assert shown == {f"sync-{name}": min(n, RUNS_SHOWN) for name, n in runs.items()}
    # The platform's figures, newest first, and the alert for the fall: 45% to 25%.
    alerts = browser.texts(".match-alert")
    assert alerts == ["match rate fell 20 points: 45% to 25% since the previous run"]
    reported = browser.texts(f"#sync-{REPORTED_SYNC} table.reports tr")
    assert len(reported) == 3 and "20 to 30%" in reported[1] and "41 to 50%" in reported[2]
    browser.screenshot(ARTIFACTS / "console-syncs.png", full_page=True)


def test_the_console_log_holds_no_searched_email(
    viewer_lookup: Seen, console: Console, person: Person
) -> None:
    # Last in the module: the log of every request above, the searches among them.
    log = console.log.read_text()
    assert "console on http://127.0.0.1:" in log
    assert person.email.lower() not in log.lower()
