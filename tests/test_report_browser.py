"""The report pages in a real headless Chromium: they load with no console error and no network request, every
plotly figure is drawn (its ``.main-svg`` exists in the DOM), and a full-page screenshot is kept under
``test-artifacts/``.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: fd 3 in, fd 4 out,
NUL-separated JSON), which needs nothing beyond the standard library.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_reports import Studies, make_studies

from reports.build import build_report, find_record
from reports.compare import build_comparison

CHROMIUM = Path(os.environ.get("CFTUNE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
#: The state of every plotly div, read from the live DOM.
FIGURES_JS = """JSON.stringify([...document.querySelectorAll('.plotly-graph-div')].map(d => ({
  id: d.id, svg: d.querySelectorAll('.main-svg').length, traces: (d.data || []).length})))"""

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"{CHROMIUM} not found: browser tests need Debian's chromium (apt-get install -y chromium)",
)


class DevTools:
    """A headless Chromium and a CDP session on one page."""

    def __init__(self, profile: Path, timeout: float = 30.0) -> None:
        self.timeout = timeout
        to_chrome, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome = os.pipe()

        def wire() -> None:  # in the child: our pipe ends become fds 3 and 4, as Chromium expects
            a = fcntl.fcntl(to_chrome, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_chrome, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.log = (profile / "chromium.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(CHROMIUM),
                *FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "--no-first-run",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            pass_fds=(3, 4),
            preexec_fn=wire,
        )
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=True)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise ConnectionError(f"Chromium exited (rc {self.proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False) -> Any:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._read(deadline))

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True
        )
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        out = []
        for e in self.events:
            p, m = e.get("params", {}), e.get("method")
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(
                    "console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"])
                )
            elif m == "Runtime.exceptionThrown":
                out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def screenshot(self, path: Path, width: int = 1280) -> None:
        """The whole page, not just the first screen."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        metrics = {"width": width, "height": min(height, 16000), "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics, session=True)
        time.sleep(0.5)  # responsive figures redraw at the new size
        shot = self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=True
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, ConnectionError, RuntimeError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self.log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    devtools = DevTools(tmp_path)
    try:
        yield devtools
    finally:
        devtools.close()


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Studies:
    return make_studies(tmp_path_factory.getbasetemp() / "report-studies")


def open_page(browser: DevTools, page: Path) -> list[dict[str, Any]]:
    """Load ``page`` and wait until every figure has drawn (or the timeout); returns the figures' state."""
    browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=True)
    browser.wait_for("Page.loadEventFired")
    deadline = time.monotonic() + 15
    while True:
        state = json.loads(browser.evaluate(FIGURES_JS))
        if (state and all(f["svg"] > 0 for f in state)) or time.monotonic() > deadline:
            return list(state)
        time.sleep(0.2)


def check_page(browser: DevTools, page: Path, screenshot: Path) -> None:
    state = open_page(browser, page)
    expected = page.read_text().count('class="plotly-graph-div"')
    assert expected > 0 and len(state) == expected, state
    assert [f["id"] for f in state if f["svg"] == 0 or f["traces"] == 0] == [], "figures not drawn"
    browser.screenshot(screenshot)
    assert screenshot.stat().st_size > 20_000
    assert browser.errors() == []
    remote = [u for u in browser.requests() if not u.startswith(("file:", "data:", "about:", "blob:"))]
    assert remote == [], "the page must need no network"


def test_study_report_renders_in_chromium(browser: DevTools, studies: Studies, tmp_path: Path) -> None:
    paths = build_report(
        find_record(studies.als, studies.tracking_uri),
        storage=studies.storage,
        out=tmp_path / "report.html",
        log_to_mlflow=False,
    )
    check_page(browser, paths.html, ARTIFACTS / "report.png")
    assert "SYNTHETIC DATA" in browser.evaluate("document.body.innerText")


def test_comparison_renders_in_chromium(browser: DevTools, studies: Studies, tmp_path: Path) -> None:
    out = build_comparison(tracking_uri=studies.tracking_uri, out=tmp_path / "compare.html")
    check_page(browser, out.html, ARTIFACTS / "compare.png")
