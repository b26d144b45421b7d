"""A real headless Chromium driven over the DevTools protocol, on a pipe: no extra packages.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands from
file descriptor 3 and writes responses and events to descriptor 4, each
message JSON ending in a NUL byte. That is all a test needs to load a page,
hear its console errors, query its DOM and take a screenshot; no websocket
client, no Selenium, no Playwright (whose browser download cannot run here).

    with Chromium.start(executable) as browser:
        page = browser.open(Path("report.html").resolve().as_uri())
        page.evaluate("document.title")
        page.screenshot(Path("artifacts/report.png"))
        assert page.errors() == []
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The first Chromium on PATH (Debian's package installs ``chromium``)."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(Exception):
    """The browser answered a command with an error, or did not answer in time."""


@dataclass
class Chromium:
    process: subprocess.Popen[bytes]
    commands: int  # our end of its fd 3
    events: int  # our end of its fd 4
    profile: str
    timeout: float = 30.0
    _next_id: int = 0
    _buffer: bytes = b""
    #: every event received, in order: (sessionId or None, method, params)
    received: list[tuple[str | None, str, dict[str, Any]]] = field(default_factory=list)

    @staticmethod
    @contextlib.contextmanager
    def start(executable: str, timeout: float = 30.0) -> Iterator[Chromium]:
        to_browser_read, to_browser_write = os.pipe()
        from_browser_read, from_browser_write = os.pipe()
        profile = tempfile.mkdtemp(prefix="interlace-chromium-")

        def child_descriptors() -> None:
            # move both ends above 9 first: either may already be 3 or 4
            reading = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            writing = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        command = [
            executable,
            "--headless",
            "--no-sandbox",  # CI runs as root, where the sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=child_descriptors,  # noqa: PLW1509 (the test is single-threaded here)
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        browser = Chromium(process, to_browser_write, from_browser_read, profile, timeout)
        try:
            yield browser
        finally:
            browser.close()

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its answer; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.received.append(
                    (reply.get("sessionId"), reply["method"], reply.get("params", {}))
                )

    def wait_for(self, method: str, session: str | None, since: int = 0) -> dict[str, Any]:
        """The first event ``method`` of ``session`` received after the ``since``-th event."""
        deadline = time.monotonic() + self.timeout
        while True:
            for sid, name, params in self.received[since:]:
                if name == method and sid == session:
                    return params
            reply = self._read(deadline)
            if "method" in reply:
                self.received.append(
                    (reply.get("sessionId"), reply["method"], reply.get("params", {}))
                )

    def open(self, url: str, width: int = 1280, height: int = 900) -> Page:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(domain, session=session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        since = len(self.received)
        self.call("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session, since)
        return Page(self, session, width)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for descriptor in (self.commands, self.events):
            with contextlib.suppress(OSError):
                os.close(descriptor)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from the browser within {self.timeout} s")
            ready, _, _ = select.select([self.events], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.events, 1 << 16)
            if not chunk:
                raise BrowserError(f"the browser closed its pipe (exit {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed


@dataclass
class Page:
    browser: Chromium
    session: str
    width: int

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (returned by value); an exception fails."""
        result = self.browser.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            self.session,
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads the page reported so far."""
        found = []
        for session, method, params in self.browser.received:
            if session != self.session:
                continue
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                texts = [str(arg.get("value", arg.get("description"))) for arg in params["args"]]
                found.append(f"console.{params['type']}: {' '.join(texts)}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (not only the viewport) written to ``path``."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.browser.call(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": self.width,
                "height": min(height, 16000),
                "deviceScaleFactor": 1,
                "mobile": False,
            },
            self.session,
        )
        shot = self.browser.call("Page.captureScreenshot", {"format": "png"}, self.session)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
