"""Load a page in headless Chromium and ask it, over the DevTools protocol, which images
loaded and what errors it logged. The protocol runs over a pipe (--remote-debugging-pipe:
commands on the child's fd 3, replies on its fd 4), so no port and no client library."""

import json
import os
import select
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]
IMAGES = (
    "JSON.stringify(Array.from(document.images, image => ({src: image.getAttribute('src'), "
    "complete: image.complete, width: image.naturalWidth})))"
)


@dataclass
class Page:
    images: list[dict[str, Any]]  # src, complete, width (naturalWidth: 0 when it did not load)
    errors: list[str] = field(default_factory=list)  # failed loads, console errors, exceptions


class DevTools:
    def __init__(self, profile: Path, timeout: float) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()

        def pipes_to_fds_3_and_4() -> None:
            os.dup2(commands_read, 3)
            os.dup2(replies_write, 4)

        assert CHROMIUM is not None
        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=pipes_to_fds_3_and_4,
        )
        os.close(commands_read)
        os.close(replies_write)
        self.timeout = timeout
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its reply; events that arrive meanwhile are kept."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        reply = self.wait(lambda m: m.get("id") == self.next_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait(self, wanted: Any) -> dict[str, Any]:
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                message = json.loads(raw)
                if wanted(message):
                    return message
                if "method" in message:
                    self.events.append(message)
            ready, _, _ = select.select([self._replies], [], [], self.timeout)
            chunk = os.read(self._replies, 1 << 16) if ready else b""
            if not chunk:
                raise TimeoutError("Chromium did not answer")
            self.buffer += chunk

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        finally:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            os.close(self._commands)
            os.close(self._replies)


def load(page: Path, profile: Path, timeout: float = 30) -> Page:
    """Open `page` (a file) in a fresh headless Chromium and report on it after its load event."""
    tools = DevTools(profile, timeout)
    try:
        target = tools.send("Target.createTarget", url="about:blank")["targetId"]
        session = tools.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            tools.send(f"{domain}.enable", session)
        tools.send("Page.navigate", session, url=page.resolve().as_uri())
        if not any(e["method"] == "Page.loadEventFired" for e in tools.events):
            tools.wait(lambda m: m.get("method") == "Page.loadEventFired")
        result = tools.send("Runtime.evaluate", session, expression=IMAGES, returnByValue=True)
        errors = []
        for event in tools.events:
            params = event.get("params", {})
            if event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
            elif event["method"] == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"]["text"])
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] == "error":
                errors.append(str(params["args"]))
        return Page(json.loads(result["result"]["value"]), errors)
    finally:
        tools.close()
