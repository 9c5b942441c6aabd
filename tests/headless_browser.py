"""A real headless Chromium driven over the DevTools protocol, for the report tests.

Why the protocol over a pipe (--remote-debugging-pipe) rather than --screenshot or --dump-dom:
the tests must see console errors, every request the page makes, dialogs (alert) and the loaded
size of each image, which only the protocol reports; the pipe needs no port, no websocket and
no package beyond the standard library (Puppeteer's `pipe: true` mode works the same way).
Messages are JSON, one per NUL-terminated chunk, on file descriptors 3 (to Chromium) and 4 (from it).

Chromium is Debian's `chromium` (.ci/run installs it when missing); $MLCV_CHROMIUM names another.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--hide-scrollbars", "--remote-debugging-pipe"]

# Recorded in the page before its own scripts run: any dialog a hostile name could open.
_TRAP = "window.__dialogs = []; ['alert', 'confirm', 'prompt'].forEach(function (n) { window[n] = function (m) { window.__dialogs.push(n + ':' + m); }; });"

# What the page looks like once loaded: every image and inline SVG, loaded, with its size.
_INSPECT = """(() => {
  const pictures = Array.from(document.querySelectorAll('img, svg')).map(e => {
    const r = e.getBoundingClientRect();
    return {tag: e.tagName.toLowerCase(), complete: e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0),
            natural: e.tagName === 'IMG' ? [e.naturalWidth, e.naturalHeight] : null, box: [r.width, r.height],
            alt: e.getAttribute('alt')};
  });
  return {pictures: pictures, dialogs: window.__dialogs || null, title: document.title,
          text: document.body ? document.body.innerText : '',
          scripts: Array.from(document.scripts).map(s => s.src || 'inline'),
          height: document.documentElement.scrollHeight};
})()"""


def chromium_binary():
    """The Chromium to run: $MLCV_CHROMIUM, else chromium or chromium-browser on PATH; an error saying how to install it."""
    found = os.environ.get("MLCV_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("the report browser tests need Chromium: install it (apt-get install -y chromium; "
                           ".ci/run does this when it is missing) or set MLCV_CHROMIUM to its path")
    return found


class Browser:
    """One headless Chromium; ``load(path)`` opens a page and reports what happened."""

    def __init__(self, timeout=60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="mlcv-chromium-")
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def on_fds_3_and_4():  # dup first: a pipe end may already be 3 or 4
            a, b = os.dup(to_child), os.dup(from_child)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen([chromium_binary(), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     preexec_fn=on_fds_3_and_4, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_child)
        os.close(from_child)
        self._buffer, self._next_id, self.events = b"", 0, []

    # -- the protocol ---------------------------------------------------------------------

    def _send(self, method, params=None, session=None):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline):
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=None):
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method):
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._receive(deadline))

    # -- a page ---------------------------------------------------------------------------

    def load(self, path, width=1280, height=900):
        """Open ``path`` (file://) in a fresh tab: {"requests", "errors", "pictures", "dialogs", "screenshot" (PNG bytes), ...}."""
        url = Path(path).resolve().as_uri()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.events = []
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            self.call(method, session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        self.call("Page.addScriptToEvaluateOnNewDocument", {"source": _TRAP}, session)
        self.call("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired")
        page = self.call("Runtime.evaluate", {"expression": _INSPECT, "returnByValue": True, "awaitPromise": True}, session)["result"]["value"]
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False}, session)
        full = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                    "clip": {"x": 0, "y": 0, "width": width, "height": min(page["height"], 12000), "scale": 1}},
                         session)
        self.call("Target.closeTarget", {"targetId": target})
        page.update(url=url, screenshot=base64.b64decode(shot["data"]), full_screenshot=base64.b64decode(full["data"]),
                    requests=[e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"],
                    errors=_errors(self.events), opened_dialogs=[e["params"] for e in self.events if e.get("method") == "Page.javascriptDialogOpening"])
        return page

    def evaluate(self, path, expression):
        """The value of ``expression`` evaluated in ``path`` (file://) once its load event fired, in a fresh tab."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.events = []
        self.call("Page.enable", session=session)
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()}, session)
        self.wait_for("Page.loadEventFired")  # not document.readyState: about:blank is "complete" before the page commits
        got = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        self.call("Target.closeTarget", {"targetId": target})
        if "exceptionDetails" in got:
            raise AssertionError(f"the script failed in {path}: {got['exceptionDetails']}")
        return got["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._write, self._read):
            os.close(fd)
        self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def _errors(events):
    """Console errors, uncaught exceptions and browser log errors (a blocked fetch, a CSP violation)."""
    found = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append("exception: " + json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            found.append(f"console.{params['type']}: " + json.dumps(params.get("args"))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
            found.append("log: " + params["entry"].get("text", "")[:500])
    return found
