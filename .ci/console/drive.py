"""Drives the operator console in headless Chromium over the DevTools
protocol, against a running `tasker dev` with API keys on.

    drive.py BASE_URL ADMIN_TOKEN DEVTOOLS_PORT SCREENSHOT_DIR

Submits real tasks over the API (some complete, one fails, some wait in a
paused queue), then, through the page only (mouse clicks and key presses):
gives the token, checks the tasks table lists the submitted ids and the
queues table the paused queue, opens a task, cancels a pending task, retries
the failed one, cancels every match of a filter after the confirmation, and
pauses a queue; each action is then checked through the API. Then a task
submitted through the API must appear with no click (the page refreshes by
itself), and with more tasks than a page holds, "n" and "p" page through. Screenshots
of the main views go to SCREENSHOT_DIR. Fails on any script error or
Content-Security-Policy report.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websocket  # websocket-client

PATIENCE = 20.0


def fail(message: str) -> None:
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


class Api:
    """The service's API, as a client that is not the page sees it."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            fail(f"{method} {path}: {err.code} {err.read().decode(errors='replace')}")

    def submit(self, task: dict[str, Any]) -> str:
        return str(self.call("POST", "/run-task", task)["task_uuid"])

    def status(self, task_id: str) -> str:
        return str(self.call("GET", f"/tasks/{task_id}")["status"])

    def queue(self, name: str) -> dict[str, Any]:
        queues = self.call("GET", "/queues")["queues"]
        return next(q for q in queues if q["name"] == name)


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, port: int) -> None:
        url = self._page_socket(port)
        # No Origin header: Chromium refuses DevTools sockets from web origins.
        self.socket = websocket.create_connection(url, timeout=PATIENCE, suppress_origin=True)
        self.next_id = 0
        self.problems: list[str] = []
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1200, "height": 800, "deviceScaleFactor": 1, "mobile": False},
        )

    @staticmethod
    def _page_socket(port: int) -> str:
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            except OSError:
                pass
            time.sleep(0.2)
        fail(f"no Chromium page on DevTools port {port}")
        return ""

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    fail(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self._note(message)

    def _note(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            described = details.get("exception", {}).get("description") or details.get("text")
            self.problems.append(f"script error: {described}")
        elif method == "Log.entryAdded":
            text = params.get("entry", {}).get("text", "")
            if "Content Security Policy" in text or "Refused to" in text:
                self.problems.append(f"policy: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = params.get("args", [])
            self.problems.append(
                "console.error: "
                + " ".join(str(a.get("value", a.get("description"))) for a in args)
            )

    def js(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            fail(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        text = self.js("document.body.innerText.slice(0, 3000)")
        fail(f"timed out waiting for {what}; the page shows:\n{text}")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'", "the page to load")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = self.wait_for(
            f"""(() => {{
              const e = document.querySelector({json.dumps(selector)});
              if (!e || e.disabled) return null;
              e.scrollIntoView({{block: "center"}});
              const r = e.getBoundingClientRect();
              return r.width && r.height ? {{x: r.x + r.width / 2, y: r.y + r.height / 2}} : null;
            }})()""",
            f"{selector} to be clickable",
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    def key(self, key: str, code: int, text: str = "") -> None:
        params: dict[str, Any] = {"key": key, "code": key, "windowsVirtualKeyCode": code}
        if text:
            params["text"] = text
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", **params})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **params})

    def type(self, text: str) -> None:
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path: Path) -> None:
        self.js("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        shot = self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(shot["data"]))
        print(f"  screenshot {path} ({path.stat().st_size // 1024} KiB)")


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    fail(f"timed out waiting for {what}")


def submit_tasks(api: Api) -> dict[str, list[str]]:
    """Tasks of every kind the console shows: done, failed, waiting."""
    api.call("POST", "/queues/llm/pause")
    done = [api.submit({"task_name": "sum", "a": i, "b": i * 10}) for i in range(1, 4)]
    done.append(
        api.submit({"task_name": "file_hash", "content": "hello console", "algorithm": "sha256"})
    )
    failed = [api.submit({"task_name": "sum", "a": 9223372036854775807, "b": 1})]
    waiting = [api.submit({"task_name": "query_llm", "prompt": f"question {i}"}) for i in range(3)]
    for task_id in done:
        eventually(lambda t=task_id: api.status(t) == "completed", f"task {task_id} to complete")
    eventually(lambda: api.status(failed[0]) == "failed", "the overflowing sum to fail")
    for task_id in waiting:
        if api.status(task_id) != "pending":
            fail(f"task {task_id} in the paused queue is {api.status(task_id)}, not pending")
    return {"done": done, "failed": failed, "waiting": waiting}


def row(task_id: str) -> str:
    return f'#tasks tr[data-task="{task_id}"]'


# The row of the task whose id is in the JS variable `id`.
row_js = "'#tasks tr[data-task=\"' + id + '\"]'"


def text_of(selector: str) -> str:
    """JS: the text of the element, or undefined when there is none."""
    return f"document.querySelector({json.dumps(selector)})?.textContent"


def disabled(element_id: str) -> str:
    return f"document.getElementById({json.dumps(element_id)}).disabled"


def main() -> None:
    base, token, port, shots = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    shots.mkdir(parents=True, exist_ok=True)
    api = Api(base, token)
    tasks = submit_tasks(api)
    everything = tasks["done"] + tasks["failed"] + tasks["waiting"]
    print(f"submitted {len(everything)} tasks; llm paused with {len(tasks['waiting'])} waiting")

    page = Page(port)
    page.goto(base + "/console")
    print("the page asks for a token (the API answered 401)")
    page.wait_for("!document.getElementById('token-panel').hidden", "the token prompt")
    page.click("#token-input")
    page.type(token)
    page.key("Enter", 13, "\r")
    page.wait_for(
        f"{json.dumps(everything)}.every((id) => document.querySelector({row_js}))",
        "every submitted task in the tasks table",
    )
    page.wait_for(
        text_of('#queues tr[data-queue="llm"]') + ".includes('paused')",
        "the llm queue shown paused",
    )
    if page.js("sessionStorage.getItem('tasker.console.token')") != token:
        fail("the token is not kept in session storage")
    first = page.js("document.querySelector('#tasks tbody tr').dataset.task")
    if first != tasks["waiting"][-1]:
        fail(f"the newest task is not first: {first}")
    print(f"the tasks table lists all {len(everything)} ids, newest first; llm is paused")
    page.screenshot(shots / "overview.png")

    # A task's detail, opened with a click, closed with Esc.
    hashed = tasks["done"][-1]
    page.click(f"{row(hashed)} a")
    page.wait_for(
        text_of('#detail-fields [data-field="task_output"]') + ".includes('digest')",
        "the detail's output",
    )
    # Beside the task: its parameters and queue, from its submission.
    page.wait_for(
        text_of('#detail-fields [data-field="task_parameters"]') + ".includes('hello console')",
        "the detail's parameters",
    )
    page.wait_for(
        text_of('#detail-fields [data-field="queue"]') + ".length > 0",
        "the detail's queue",
    )
    if not page.js(f"{disabled('detail-cancel')} && {disabled('detail-retry')}"):
        fail("a completed task can be neither cancelled nor retried, but a button is enabled")
    page.screenshot(shots / "detail.png")
    page.key("Escape", 27)
    page.wait_for("!document.getElementById('detail').open", "Esc to close the detail")
    print("a completed task's detail shows its output, parameters and queue; Esc closes it")

    # Cancel one pending task from its detail.
    victim = tasks["waiting"][0]
    page.click(f"{row(victim)} a")
    page.click("#detail-cancel")
    page.wait_for(
        "document.getElementById('detail').dataset.status === 'cancelled'",
        "the detail to show the task cancelled",
    )
    if api.status(victim) != "cancelled":
        fail(f"the API says task {victim} is {api.status(victim)} after Cancel was clicked")
    page.key("Escape", 27)
    print(f"Cancel in the detail cancelled {victim} (checked through the API)")

    # Retry the failed task from its detail: it runs (and fails) again.
    broken = tasks["failed"][0]
    page.wait_for("!document.getElementById('detail').open", "Esc to close the detail")
    page.click(f"{row(broken)} a")
    page.click("#detail-retry")
    page.wait_for(text_of("#notice") + ".includes('is pending again')", "the retry's answer")
    eventually(
        lambda: api.call("GET", f"/tasks/{broken}")["attempts"] >= 2,
        f"task {broken} to run again after Retry",
    )
    page.key("Escape", 27)
    print(f"Retry in the detail ran {broken} again (checked through the API)")

    # Filter with the keyboard: "/" focuses the filter; then cancel every match.
    page.key("/", 191, "/")
    if page.js("document.activeElement.id") != "f-task_name":
        fail("'/' does not focus the filter")
    page.type("query_llm")
    page.key("Enter", 13, "\r")
    page.wait_for(
        f"!document.querySelector('{row(tasks['done'][0])}')"
        " && location.hash.includes('task_name=query_llm')",
        "the filter to apply",
    )
    page.click("#bulk-cancel")
    page.wait_for("document.getElementById('confirm').open", "the confirmation")
    said = page.js("document.getElementById('confirm-text').textContent")
    if "task name query_llm" not in said:
        fail(f"the confirmation does not say what it acts on: {said}")
    page.screenshot(shots / "confirm.png")
    page.click("#confirm-yes")
    page.wait_for(
        # Not the notice of the single cancel before, which may still show.
        r"/^\d+ tasks? cancelled\.$/.test(document.getElementById('notice').textContent)",
        "the bulk cancel's answer",
    )
    left = [t for t in tasks["waiting"] if api.status(t) != "cancelled"]
    if left:
        fail(f"after Cancel all matching, these are not cancelled: {left}")
    print("'Cancel all matching' with task name query_llm cancelled every one")
    print(f"  (checked through the API), after saying: {said}")

    # Pause a queue from the queues table.
    page.click('#queues button[data-queue="default"]')
    page.wait_for(
        text_of('#queues tr[data-queue="default"]') + ".includes('paused')",
        "default shown paused",
    )
    if not api.queue("default")["paused"]:
        fail("the API says queue default is not paused after Pause was clicked")
    api.call("POST", "/queues/default/resume")
    print("Pause on the default queue paused it (checked through the API)")

    # Refreshing by itself: a task submitted elsewhere appears with no click.
    page.click("#clear")
    page.wait_for(
        f"!!document.querySelector('{row(tasks['done'][0])}') && !location.hash.includes('task_name')",
        "the unfiltered list after Clear",
    )
    fresh = api.submit({"task_name": "sum", "a": 100, "b": 1})
    page.wait_for(f"!!document.querySelector('{row(fresh)}')", "a new task to appear by itself")
    print(f"task {fresh}, submitted through the API, appeared without a click")

    # Paging: more tasks than a page holds; "n" shows older ones, "p" newer.
    more = api.call(
        "POST", "/run-tasks", {"tasks": [{"task_name": "sum", "a": i, "b": 0} for i in range(60)]}
    )["task_uuids"]
    page.key("r", 82, "r")
    page.wait_for(
        f"!!document.querySelector('{row(more[-1])}') && !document.getElementById('next').disabled",
        "a full first page with an older one after it",
    )
    shown = page.js("document.querySelectorAll('#tasks tbody tr').length")
    oldest = tasks["done"][0]
    if page.js(f"!!document.querySelector('{row(oldest)}')"):
        fail(f"the first page of {shown} rows already shows the oldest task")
    page.key("n", 78, "n")
    page.wait_for(
        f"!!document.querySelector('{row(oldest)}')"
        " && document.getElementById('page').textContent.includes('2')",
        "the oldest task on page 2",
    )
    if page.js(f"!!document.querySelector('{row(more[-1])}')"):
        fail("page 2 still shows the newest task")
    page.key("p", 80, "p")
    page.wait_for(
        f"!!document.querySelector('{row(more[-1])}')"
        " && document.getElementById('prev').disabled",
        "page 1 again",
    )
    print(f"paging: {shown} rows on page 1, the oldest task on page 2 ('n'), back with 'p'")

    if page.problems:
        fail("the page reported:\n  " + "\n  ".join(page.problems))
    print("no script error, no Content-Security-Policy report")


if __name__ == "__main__":
    main()
