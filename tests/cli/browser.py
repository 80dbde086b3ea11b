"""A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages ending in NUL on file descriptors 3 and 4), standard library only. Enough to
load a page, evaluate JavaScript, type, and take a screenshot."""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess

TIMEOUT = 120  # seconds without a message from the browser before a test fails
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"


def _high(fd):
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """``with Browser(profile_dir) as b: b.open(url); b.eval("document.title")``."""

    def __init__(self, profile, width=1280, height=800):
        to_browser_r, self._out = os.pipe()
        self._in, from_browser_w = os.pipe()
        # Above 10, so that moving them to 3 and 4 in the child cannot clobber one another.
        to_browser_r, from_browser_w = _high(to_browser_r), _high(from_browser_w)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", "--remote-debugging-pipe",
             f"--window-size={width},{height}", "about:blank"],
            pass_fds=(3, 4), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: (os.dup2(to_browser_r, 3), os.dup2(from_browser_w, 4)),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer, self._next_id, self.events = b"", 0, []
        targets = self._call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self._call("Target.attachToTarget", targetId=page["targetId"],
                                  flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _send(self, message):
        os.write(self._out, json.dumps(message).encode() + b"\0")

    def _receive(self):
        while b"\0" not in self._buffer:
            if not select.select([self._in], [], [], TIMEOUT)[0]:
                raise TimeoutError(f"chromium sent nothing for {TIMEOUT} s")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _call(self, method, session=None, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._send(message)
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def call(self, method, **params):
        """One DevTools command on the page; its result."""
        return self._call(method, self.session, **params)

    def open(self, url):
        """Navigate and wait for the load event (the page's scripts have run). A new
        document each time, even when only the #fragment differs."""
        if url.split("#")[0] == (self.eval("location.href") or "").split("#")[0]:
            self.open("about:blank")
        self.events = [e for e in self.events if e.get("method") == "Runtime.exceptionThrown"]
        self.call("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._receive())

    def errors(self):
        """Uncaught JavaScript exceptions reported so far (their descriptions)."""
        return [e["params"]["exceptionDetails"].get("exception", {}).get("description", str(e))
                for e in self.events if e.get("method") == "Runtime.exceptionThrown"]

    def eval(self, expression):
        """The value of a JavaScript expression (JSON-able), evaluated in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def type(self, text):
        """Type ``text`` into the focused element, as a keyboard would (input events fire)."""
        self.call("Input.insertText", text=text)

    def screenshot(self, path):
        """Save a PNG of the viewport to ``path``."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self):
        try:
            self._call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._in)
        os.close(self._out)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
