"""A real browser for the HTML tests: headless Chromium over the DevTools protocol, and a bridge
that serves one worker of a harness System over real HTTP.

The protocol runs on a pipe (``--remote-debugging-pipe``: fd 3 in, fd 4 out, JSON messages ended
by NUL), so no websocket client and no extra package are needed. The driver is synchronous (it is
run in a thread, ``asyncio.to_thread``), while the bridge hands each HTTP request to the test's
event loop (``run_coroutine_threadsafe``), where the System lives.

Every page records what went wrong in it (uncaught exceptions, console errors, CSP violations):
``Page.problems``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import shutil
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# The flags of the dashboard probe: no network of its own, no first-run UI, a fresh profile.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_IN_FD, _OUT_FD = 3, 4
_HIGH_FD = 100


class BrowserError(Exception):
    """The browser answered an error, died, or a wait timed out."""


def chromium_binary() -> str | None:
    """The Chromium binary, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless Chromium process; ``open`` gives pages. Use as a context manager."""

    def __init__(self, binary: str, profile: Path, *, timeout_s: float = 20.0) -> None:
        self._binary = binary
        self._profile = profile
        self.timeout_s = timeout_s
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Chromium:
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        def wire_fds() -> None:  # in the child: the pipe ends become fds 3 and 4
            a = os.dup2(to_browser_r, _HIGH_FD)
            b = os.dup2(from_browser_w, _HIGH_FD + 1)
            os.dup2(a, _IN_FD)
            os.dup2(b, _OUT_FD)

        self._proc = subprocess.Popen(
            [self._binary, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-pipe"],
            preexec_fn=wire_fds,  # the child only moves fds before exec
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._write_fd = to_browser_w
        self._read_fd = from_browser_r
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        with suppress(BrowserError, OSError):
            self.call("Browser.close")
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        os.close(self._write_fd)
        os.close(self._read_fd)
        self._proc = None

    # -- protocol ------------------------------------------------------------------------

    def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its answer (events met meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write_fd, json.dumps(message).encode("utf-8") + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            for reply in self._drain(deadline):
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise BrowserError(f"{method}: {reply['error']}")
                    result: dict[str, Any] = reply.get("result", {})
                    return result
                self._events.append(reply)

    def _drain(self, deadline: float) -> list[dict[str, Any]]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BrowserError("no answer from Chromium in time")
        ready, _, _ = select.select([self._read_fd], [], [], left)
        if not ready:
            raise BrowserError("no answer from Chromium in time")
        chunk = os.read(self._read_fd, 1 << 16)
        if not chunk:
            raise BrowserError("Chromium closed the pipe")
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in messages]

    def events(self, session: str) -> list[dict[str, Any]]:
        """Events received so far for ``session``."""
        return [e for e in self._events if e.get("sessionId") == session]

    # -- pages ---------------------------------------------------------------------------

    def open(self, url: str) -> Page:
        """A new tab showing ``url``, once its load event fired."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=session)
        page = Page(self, session)
        page.goto(url)
        return page


class Page:
    """One tab: navigate, evaluate JavaScript, wait for conditions, read the accessibility tree."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self._browser = browser
        self._session = session

    def _call(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._browser.call(method, params, session=self._session)

    def goto(self, url: str) -> None:
        """Navigate and wait until the document is complete."""
        self._call("Page.navigate", {"url": url})
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` (promises awaited); page exceptions raise."""
        result = self._call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout_s: float = 10.0) -> Any:
        """Poll ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression}")
            time.sleep(0.05)

    def html(self) -> str:
        """The live DOM, serialized."""
        return str(self.evaluate("document.documentElement.outerHTML"))

    def pixels(self, selector: str) -> list[list[tuple[int, int, int]]]:
        """The RGB pixels Chromium painted for the first element matching ``selector``
        (rows of the element's box, at scale 1)."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + scrollY, "
            "width: r.width, height: r.height}; })()"
        )
        shot = self._call(
            "Page.captureScreenshot",
            {"format": "png", "clip": {**box, "scale": 1}, "captureBeyondViewport": True},
        )
        return decode_png(base64.b64decode(shot["data"]))

    def set_files(self, selector: str, paths: list[str]) -> None:
        """Choose ``paths`` in the file input matching ``selector`` (as a user would)."""
        root = self._call("DOM.getDocument")["root"]["nodeId"]
        node = self._call("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        self._call("DOM.setFileInputFiles", {"nodeId": node, "files": paths})

    def ax_nodes(self) -> list[dict[str, Any]]:
        """The accessibility tree as Chromium computes it (role and name per node)."""
        nodes: list[dict[str, Any]] = self._call("Accessibility.getFullAXTree")["nodes"]
        return nodes

    @property
    def problems(self) -> list[str]:
        """Uncaught exceptions, console errors and browser log errors (CSP violations) so far."""
        out = []
        for event in self._browser.events(self._session):
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                out.append(f"console.error: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(f"log: {params['entry'].get('text')}")
        return out


def decode_png(data: bytes) -> list[list[tuple[int, int, int]]]:
    """Rows of RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour})")
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows: list[list[tuple[int, int, int]]] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, up_left = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                line[i] = (line[i] + pred) & 0xFF
        rows.append([(line[x], line[x + 1], line[x + 2]) for x in range(0, stride, bpp)])
        prev = line
    return rows


@contextmanager
def serve_worker(system: Any, worker: str, loop: asyncio.AbstractEventLoop) -> Iterator[str]:
    """Serve ``worker`` of the harness ``system`` at http://127.0.0.1:<port>/; yields the base URL.

    Each request is run on ``loop`` (the test's, free while the browser thread works) and answered
    with the worker's status, headers and body as they are.
    """

    class Bridge(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            for hop in ("host", "connection", "content-length"):
                headers.pop(hop, None)

            async def call() -> tuple[int, list[tuple[str, str]], bytes]:
                resp = await system.fetch(
                    worker, self.path, method=self.command, headers=headers, body=body
                )
                if self.command == "POST" and self.path.endswith("/warm"):
                    await system.deliver()  # what Warm now queued runs at once, as on Cloudflare
                return resp.status, list(resp.headers.items()), await resp.bytes()

            status, answered, payload = asyncio.run_coroutine_threadsafe(call(), loop).result(30)
            self.send_response(status)
            for name, value in answered:
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_PUT = _forward

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Bridge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def in_chromium(
    system: Any,
    worker: str,
    profile: Path,
    scenario: Callable[[Chromium, str], T],
    *,
    binary: str,
) -> T:
    """Run ``scenario(browser, base_url)`` in a thread, with ``worker`` served at base_url."""
    loop = asyncio.get_running_loop()

    def work(base: str) -> T:
        with Chromium(binary, profile) as browser:
            return scenario(browser, base)

    with serve_worker(system, worker, loop) as base:
        return await asyncio.to_thread(work, base)
