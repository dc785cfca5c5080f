"""Headless Chromium, driven over the Chrome DevTools Protocol, for the UI test.

The protocol is JSON over one websocket, so the `websockets` package the
integration already uses is all it takes: no driver binary, no browser
download, and every call is a coroutine like the rest of the smoke test.
Chromium is Debian's, installed into the toolchain by scripts/setup.

Home Assistant's frontend is built from web components whose content sits in
shadow roots, out of reach of `document.querySelector`; `PAGE_HELPERS`
(installed into every page) walks them. A page is watched only through
conditions it evaluates itself (`Page.wait_for`), never by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass, field
import itertools
import json
from pathlib import Path
import re
import shutil
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

# A fresh profile and no background traffic: nothing but loopback may be reached here.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
# Debian's /usr/bin/chromium is a shell wrapper that reads /etc/chromium.d and
# prints shell errors inside a chroot; the binary behind it takes our flags as is.
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium")
DEVTOOLS_LINE = re.compile(rb"DevTools listening on (ws://\S+)")
# What an evaluation reports when its document went away under it.
NAVIGATED = re.compile(r"navigated or closed|context was destroyed|Cannot find context|__ra is not")
START_TIMEOUT = 30.0
# Longest wait for the page to reach a state (a dialog, a form, a result).
WAIT_TIMEOUT = 20.0

# Helpers every page gets as `window.__ra`, for finding elements through shadow roots.
PAGE_HELPERS = r"""
window.__ra = {
  // Every element under root, shadow roots included, in document order.
  *elements(root = document) {
    if (root.shadowRoot) yield* this.elements(root.shadowRoot);
    for (const child of root.children ?? []) {
      yield child;
      yield* this.elements(child);
    }
  },
  find(selector, root = document) {
    for (const el of this.elements(root)) if (el.matches(selector)) return el;
    return null;
  },
  findAll(selector, root = document) {
    return [...this.elements(root)].filter((el) => el.matches(selector));
  },
  // The text a user could read under root (shadow roots included).
  text(root = document) {
    const parts = [];
    const walk = (node) => {
      if (node.nodeType === Node.TEXT_NODE) { parts.push(node.textContent); return; }
      if (["STYLE", "SCRIPT", "TEMPLATE"].includes(node.nodeName)) return;
      if (node.shadowRoot) walk(node.shadowRoot);
      for (const child of node.childNodes) walk(child);
    };
    walk(root);
    return parts.join(" ").replace(/\s+/g, " ").trim();
  },
  // The first element matching selector whose text contains `text`.
  withText(selector, text, root = document) {
    return this.findAll(selector, root).find((el) => this.text(el).includes(text)) ?? null;
  },
  // Whether an animation (a dialog opening, a section unfolding) is under way;
  // endless ones (spinners) do not count.
  animating() {
    return document.getAnimations().some((animation) =>
      animation.playState === "running" &&
      animation.effect?.getComputedTiming().iterations !== Infinity);
  },
  // el's box once nothing moves (the box the same for a few frames, checked
  // once a frame, and no animation running); else null.
  settled(el) {
    if (!el) return null;
    const box = el.getBoundingClientRect();
    const where = [box.left, box.top, box.width, box.height].join();
    el.__raStill = where === el.__raBox ? (el.__raStill ?? 0) + 1 : 0;
    el.__raBox = where;
    if (el.__raStill < 3 || this.animating() || !box.width || !box.height) return null;
    return { x: box.left, y: box.top, width: box.width, height: box.height };
  },
  // Where a person would click el: the middle of its settled box, if nothing covers it.
  clickPoint(el) {
    el?.scrollIntoView({ block: "center" });
    const box = this.settled(el);
    if (!box) return null;
    const x = box.x + box.width / 2, y = box.y + box.height / 2;
    let hit = document.elementFromPoint(x, y);
    while (hit?.shadowRoot) {
      const inner = hit.shadowRoot.elementFromPoint(x, y);
      if (!inner || inner === hit) break;
      hit = inner;
    }
    // Up the tree as rendered: slotted content belongs where its slot is.
    for (let node = hit; node; node = node.assignedSlot ?? node.parentNode ?? node.host) {
      if (node === el) return { x, y };
    }
    return null;
  },
  // Resolves once predicate() returns something truthy (checked every frame);
  // an element found resolves as true (elements do not cross to Python).
  until(predicate, timeoutMs) {
    return new Promise((resolve, reject) => {
      const deadline = performance.now() + timeoutMs;
      const check = () => {
        let value;
        try { value = predicate(); } catch (err) { value = undefined; }
        if (value) resolve(value instanceof Node ? true : value);
        else if (performance.now() > deadline) reject(new Error("timed out: " + predicate));
        else requestAnimationFrame(check);
      };
      check();
    });
  },
};
"""


class BrowserError(Exception):
    """The browser or the page reported an error (a failed command, a script exception)."""


def chromium_binary() -> str:
    """The Chromium that scripts/setup installed."""
    for candidate in CHROMIUM_CANDIDATES:
        if found := shutil.which(candidate):
            return found
    raise BrowserError("Chromium is not installed: run scripts/setup")


@dataclass
class DevTools:
    """One websocket to the browser; pages talk over it through their session ids."""

    ws: ClientConnection
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start dispatching the browser's answers to their callers."""
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                future = self._pending.pop(message.get("id", -1), None)
                if future is not None and not future.done():
                    future.set_result(message)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(BrowserError("the DevTools connection closed"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """Call one DevTools method and return its result."""
        message_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        await self.ws.send(json.dumps(message))
        answer = await future
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    async def close(self) -> None:
        """Close the connection and stop reading."""
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


@dataclass
class Page:
    """One browser tab."""

    devtools: DevTools
    session_id: str

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a DevTools method on this tab."""
        return await self.devtools.send(method, params, self.session_id)

    async def evaluate(self, expression: str) -> Any:
        """Run JavaScript in the page (promises are awaited) and return its JSON value."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if details := result.get("exceptionDetails"):
            description = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{description}\n  in: {expression[:300]}")
        return result["result"].get("value")

    async def wait_for(self, predicate: str, timeout: float = WAIT_TIMEOUT) -> Any:  # noqa: ASYNC109
        """Wait until the JavaScript expression `predicate` is truthy; return its value.

        The page checks it every frame. A navigation meanwhile (a redirect, a
        login) ends that document's check, so it starts again in the next one.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining_ms = max(0, int((deadline - loop.time()) * 1000))
            try:
                return await self.evaluate(
                    f"window.__ra.until(() => ({predicate}), {remaining_ms})"
                )
            except BrowserError as err:
                if not NAVIGATED.search(str(err)) or loop.time() > deadline:
                    raise

    async def goto(self, url: str) -> None:
        """Open a URL in this tab."""
        await self.send("Page.navigate", {"url": url})

    async def click(self, element: str) -> None:
        """Click, as a mouse does, the element the JavaScript expression `element` finds."""
        point = await self.wait_for(f"__ra.clickPoint({element})")
        for event in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                {
                    "type": event,
                    "x": point["x"],
                    "y": point["y"],
                    "button": "left",
                    "clickCount": 1,
                },
            )

    async def type_into(self, element: str, text: str) -> None:
        """Focus the element `element` finds (an input), empty it and type `text`."""
        await self.wait_for(f"(() => {{ const el = {element}; if (el) el.focus(); return el; }})()")
        await self.evaluate(f"(() => {{ const el = {element}; el.select?.(); }})()")
        await self.send("Input.insertText", {"text": text})

    async def set_viewport(self, width: int, height: int) -> None:
        """Resize the page, e.g. tall enough for a whole dialog in one screenshot."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    async def screenshot(self, element: str | None = None) -> bytes:
        """A PNG of the viewport, or of the element `element` finds once it is still."""
        params: dict[str, Any] = {"format": "png"}
        if element is not None:
            box = await self.wait_for(f"__ra.settled({element})")
            params["clip"] = box | {"scale": 1}
        result = await self.send("Page.captureScreenshot", params)
        return base64.b64decode(result["data"])


@contextlib.asynccontextmanager
async def chromium(
    profile_dir: Path, log_path: Path, extra_flags: tuple[str, ...] = ()
) -> AsyncIterator[DevTools]:
    """A headless Chromium on a fresh profile; stopped, with its children, on exit.

    `extra_flags`: e.g. a fake microphone and camera (see tests/smoke/test_card.py).
    """
    process = await asyncio.create_subprocess_exec(
        chromium_binary(),
        *CHROMIUM_FLAGS,
        *extra_flags,
        f"--user-data-dir={profile_dir}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log = log_path.open("wb")
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not (match := DEVTOOLS_LINE.search(line := await process.stderr.readline())):
                log.write(line)
                if not line:
                    raise BrowserError(f"Chromium exited: see {log_path}")
        drain = asyncio.create_task(_copy(process.stderr, log))
        async with connect(match.group(1).decode(), max_size=None) as ws:
            devtools = DevTools(ws)
            devtools.start()
            try:
                yield devtools
            finally:
                await devtools.close()
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        if drain is not None:
            await drain
        log.close()


async def _copy(stream: asyncio.StreamReader, log: Any) -> None:
    while line := await stream.readline():
        log.write(line)


async def open_page(devtools: DevTools, width: int = 1280, height: int = 900) -> Page:
    """A new tab of the given size, with `PAGE_HELPERS` in every document it loads."""
    target = await devtools.send("Target.createTarget", {"url": "about:blank"})
    attached = await devtools.send(
        "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
    )
    page = Page(devtools, attached["sessionId"])
    await page.send("Page.enable")
    await page.send("Runtime.enable")
    await page.send("Page.addScriptToEvaluateOnNewDocument", {"source": PAGE_HELPERS})
    await page.set_viewport(width, height)
    return page
