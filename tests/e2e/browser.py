"""Debian's chromium, headless, driven through the DevTools protocol: a websocket, no browser
download and no driver. What the browser tests share (tests/e2e/test_ui.py, test_console.py).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

CHROMIUM = os.environ.get("TESSERA_CHROMIUM", "/usr/bin/chromium")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5):
    """``predicate()`` once it is truthy, polling every ``interval`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Browser:
    """One headless chromium tab, spoken to over the DevTools protocol."""

    def __init__(self, binary: str, profile: Path) -> None:
        active_port = profile / "DevToolsActivePort"
        active_port.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "--window-size=1600,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_until(active_port.exists, 30, "chromium to open its DevTools port")
            port = wait_until(lambda: active_port.read_text().split("\n")[0], 10, "its port number")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
                pages = [t for t in json.load(response) if t["type"] == "page"]
            self.socket = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, legacy=True)
        except BaseException:
            self.process.kill()
            raise
        self.next_id = 0
        # Pages loaded in the tab, counted from the Page.loadEventFired events once `load` has
        # turned the Page domain's events on.
        self.loads = 0
        self.page_events = False

    def _receive(self, timeout: float) -> dict:
        message = json.loads(self.socket.recv(timeout=timeout))
        if message.get("method") == "Page.loadEventFired":
            self.loads += 1
        return message

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = self._receive(timeout=60)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def load(self, action: Callable[[], Any], timeout: float = 30) -> None:
        """Run ``action`` (a navigation, a click, a form submitted) and return once the page it
        leads to has loaded, redirects followed."""
        if not self.page_events:
            self.send("Page.enable")
            self.page_events = True
        before = self.loads
        action()
        deadline = time.monotonic() + timeout
        while self.loads == before:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                self._receive(timeout=remaining)
            except TimeoutError:
                raise AssertionError(f"no page loaded within {timeout:.0f}s") from None

    def goto(self, url: str, timeout: float = 30) -> None:
        """Navigate to ``url`` and wait for the page to load."""

        def navigate() -> None:
            failed = self.send("Page.navigate", url=url).get("errorText")
            if failed:
                raise AssertionError(f"{url}: {failed}")

        self.load(navigate, timeout)

    def fill(self, selector: str, value: str) -> None:
        """Set the value of the input or select ``selector``."""
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" if (!e) return false; e.value = {json.dumps(value)}; return true; }})()"
        )
        assert found, f"no {selector} on {self.url()}"

    def submit(self, selector: str, timeout: float = 30) -> None:
        """Click the button ``selector`` of a form and wait for the page the form leads to."""

        def click() -> None:
            found = self.evaluate(
                f"(() => {{ const b = document.querySelector({json.dumps(selector)});"
                " if (!b) return false; b.click(); return true; })()"
            )
            assert found, f"no {selector} on {self.url()}"

        self.load(click, timeout)

    def url(self) -> str:
        return self.evaluate("location.href")

    def text(self, selector: str | None = None) -> str:
        """The text a user sees: of the whole page, or of the first element ``selector`` ('' if
        there is none)."""
        if selector is None:
            return self.evaluate("document.body ? document.body.innerText : ''") or ""
        return (
            self.evaluate(
                f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                " return e ? e.innerText : ''; })()"
            )
            or ""
        )

    def texts(self, selector: str) -> list[str]:
        """The text of every element ``selector``, in page order."""
        return self.evaluate(
            f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.innerText)"
        )

    def html(self) -> str:
        return self.evaluate("document.documentElement.outerHTML") or ""

    def wait_for_text(self, texts: list[str], timeout: float) -> str:
        return wait_until(lambda: all(t in self.text() for t in texts) and self.text(), timeout,
                          f"page text {texts}; page shows: {self.text()[:500]!r}")  # fmt: skip

    def click_button(self, label: str) -> bool:
        """Click the first enabled button whose text starts with ``label``; False if none."""
        return bool(
            self.evaluate(
                "(() => { const b = [...document.querySelectorAll('button')].find("
                f"b => b.innerText.trim().startsWith({json.dumps(label)}) && !b.disabled);"
                " if (b) { b.click(); return true; } return false; })()"
            )
        )

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        """A PNG of the window, or of the whole page however long it is."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                              "scale": 1}  # fmt: skip
            params["captureBeyondViewport"] = True
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", **params)["data"]))

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def launch(profile: Path) -> Browser:
    """A headless chromium with its profile in ``profile``; the test is skipped without one
    (failed under CI, which must run it)."""
    if not Path(CHROMIUM).exists():
        reason = f"no chromium at {CHROMIUM}: `make chromium` installs Debian's package"
        if _in_ci():
            pytest.fail(f"CI requires the browser tests to run: {reason}")
        pytest.skip(reason)
    return Browser(CHROMIUM, profile)
