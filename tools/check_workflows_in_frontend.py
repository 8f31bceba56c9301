#!/usr/bin/env python
"""Load every example workflow in ComfyUI's real frontend (headless Chromium) and report what it logs.

    python tools/check_workflows_in_frontend.py                      # bundled frontend
    python tools/check_workflows_in_frontend.py --front-end-root /tmp/fe/comfyui_frontend_package/static
    python tools/check_workflows_in_frontend.py --url http://127.0.0.1:8188   # a server already running

Starts the provisioned ComfyUI (tests/comfy/harness.py) with this pack unless --url is given,
opens the page in Chromium through the DevTools protocol, waits for the app, then for each
workflow calls the frontend's own ``app.loadGraphData(json)`` and collects the console
errors/warnings, uncaught exceptions and failed requests that follow.  A workflow is clean when
nothing was logged, every node type is registered, and the loaded graph keeps every node and
link.  It also reports which model files the frontend offers to download (the Missing Models
dialog of 1.3x, the details panel of 1.5x), then closes what opened.  Exit status 1 when any
workflow is not clean.  Needs Chromium (Debian: apt-get install
chromium) and aiohttp (a ComfyUI dependency); downloads nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "example_workflows"
SAMPLES = REPO / "assets" / "samples"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                  "--disable-dev-shm-usage", "--mute-audio", "--window-size=1280,800")
APP_READY_JS = "!!(window.app && window.app.graph && window.LiteGraph && window.app.loadGraphData)"
# Requests to other hosts (the Comfy Registry, release notes) fail on an offline machine; that
# says nothing about the workflow, so those are reported apart and never make a workflow unclean.
OFFLINE_ERRORS = ("net::ERR_NAME_NOT_RESOLVED", "net::ERR_INTERNET_DISCONNECTED", "net::ERR_CONNECTION_REFUSED",
                  "net::ERR_ADDRESS_UNREACHABLE", "net::ERR_PROXY_CONNECTION_FAILED")
# What the frontend logs when its probe of a model's download address (the file size it shows next to
# the Download button) cannot reach the other host: the same offline condition, so reported apart too.
OFFLINE_CONSEQUENCES = ("Error fetching file size: TypeError: Failed to fetch",)
# Warnings the frontend's own code logs about its own API (1.58's upload widget of the stock Load Video
# node reads input.link): not something a workflow file can cause or avoid, so reported, not counted.
# 1.58's splitter also warns when its side panel first opens at this window size (the missing-model
# details the check opens), whatever the workflow.
FRONTEND_OWN_WARNINGS = ("input.link is deprecated", "Invalid layout total size")
SETTLE_S = 0.5  # the frontend finishes some load work (node size, widget values) asynchronously
QUIET_S = 2.0   # the app logs its start-up (template lists, settings) after it is usable


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class WorkflowResult:
    name: str
    messages: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)  # failed requests to other hosts
    missing_types: list[str] = field(default_factory=list)
    nodes: tuple[int, int] = (0, 0)   # (in the file, after loading)
    links: tuple[int, int] = (0, 0)
    changed_links: list[str] = field(default_factory=list)  # what the frontend repaired silently
    downloads_offered: list[str] = field(default_factory=list)  # model files it offers to download

    @property
    def clean(self) -> bool:
        return (not self.messages and not self.missing_types and not self.changed_links
                and self.nodes[0] == self.nodes[1] and self.links[0] == self.links[1])

    def summary(self) -> str:
        offers = f"; offers to download {', '.join(self.downloads_offered)}" if self.downloads_offered else ""
        if self.clean:
            return f"{self.name}: clean ({self.nodes[1]} nodes, {self.links[1]} links{offers})"
        lines = [f"{self.name}: NOT clean (nodes {self.nodes[0]} -> {self.nodes[1]}, "
                 f"links {self.links[0]} -> {self.links[1]})"]
        lines += [f"    missing node type: {t}" for t in self.missing_types]
        lines += [f"    changed on load: {c}" for c in self.changed_links]
        lines += [f"    {m}" for m in self.messages]
        return "\n".join(lines)

    def offline_note(self) -> str:
        return "".join(f"\n    (offline, ignored) {m}" for m in self.offline)


@dataclass
class Report:
    frontend_version: str
    page_messages: list[str]
    workflows: list[WorkflowResult]

    @property
    def clean(self) -> bool:
        return all(w.clean for w in self.workflows)

    def text(self) -> str:
        lines = [f"frontend {self.frontend_version}"]
        lines += [f"  page load: {m.splitlines()[0]}" for m in self.page_messages]
        lines += [w.summary() + w.offline_note() for w in self.workflows]
        return "\n".join(lines)


class DevTools:
    """The few DevTools-protocol calls this check needs, over one page's websocket."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.events: list[str] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                text = _console_text(data["method"], data.get("params") or {})
                if text:
                    self.events.append(text)

    async def call(self, method: str, timeout: float = 60, **params) -> dict:
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result") or {}

    async def evaluate(self, expression: str, timeout: float = 60):
        result = await self.call("Runtime.evaluate", timeout=timeout, expression=expression,
                                 awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError((details.get("exception") or {}).get("description") or details.get("text"))
        return (result.get("result") or {}).get("value")

    def take_events(self) -> list[str]:
        events, self.events = self.events, []
        return events


def _console_text(method: str, params: dict) -> str | None:
    """One line for a console error/warning, an uncaught exception or a failed request; else None."""
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
        args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args") or [])
        return f"console.{params['type']}: {args}"
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails") or {}
        return f"uncaught: {(details.get('exception') or {}).get('description') or details.get('text')}"
    if method == "Log.entryAdded":
        entry = params.get("entry") or {}
        if entry.get("level") in ("error", "warning"):
            return f"log.{entry['level']}: {entry.get('text')} {entry.get('url') or ''}".rstrip()
    return None


def _is_offline_error(message: str, base_url: str) -> bool:
    return (any(e in message for e in OFFLINE_ERRORS) and base_url not in message
            or any(e in message for e in OFFLINE_CONSEQUENCES))


def declared_models(workflow: dict) -> list[str]:
    """The model files a workflow names with a download address: its ``models`` and its nodes'
    ``properties.models`` (the two places the frontend reads)."""
    entries = list(workflow.get("models") or [])
    for node in workflow.get("nodes") or []:
        entries += (node.get("properties") or {}).get("models") or []
    return sorted({e["name"] for e in entries if isinstance(e, dict) and e.get("name")})


def model_files(workflow: dict) -> list[str]:
    """Every model file the workflow names: declared ones and widget values that are model file names."""
    values = [v for node in workflow.get("nodes") or [] if isinstance(node.get("widgets_values"), list)
              for v in node["widgets_values"]]
    named = {v for v in values if isinstance(v, str) and v.lower().endswith(MODEL_EXTENSIONS)}
    return sorted(named | set(declared_models(workflow)))


def _link_records(links: list, nodes: list) -> set[tuple]:
    """Each link as (id, origin, output slot, target, input name, type), and each input's link.

    By input name, not slot: newer frontends order a node's inputs differently (sockets before
    widget inputs), which renumbers slots without changing any connection."""
    names = {n["id"]: [inp.get("name") for inp in n.get("inputs") or []] for n in nodes}

    def input_name(node_id, slot):
        ins = names.get(node_id) or []
        return ins[slot] if 0 <= slot < len(ins) else f"<no slot {slot}>"

    records = {("link", str(lk[0]), str(lk[1]), str(lk[2]), str(lk[3]), input_name(lk[3], lk[4]), str(lk[5]))
               for lk in links}
    records |= {("input", str(n["id"]), str(inp.get("name")), str(inp.get("link")))
                for n in nodes for inp in n.get("inputs") or []}
    return records


def _link_changes(workflow: dict, loaded: dict) -> list[str]:
    """Link records the frontend dropped or added while loading: its silent repairs."""
    before = _link_records(workflow.get("links") or [], workflow.get("nodes") or [])
    after = _link_records(loaded["links"], loaded["nodes"])
    return ([f"dropped {' '.join(r)}" for r in sorted(before - after)]
            + [f"added {' '.join(r)}" for r in sorted(after - before)])


def _load_js(workflow: dict, name: str) -> str:
    """Load through the app's own API and report what the loaded graph holds."""
    return f"""(async () => {{
        const data = {json.dumps(workflow)};
        await window.app.loadGraphData(data, true, true, {json.dumps(name)});
        const saved = window.app.graph.serialize();
        const known = window.LiteGraph.registered_node_types || {{}};
        const missing = [...new Set(data.nodes.map(n => n.type).filter(t => !(t in known)))];
        const nodes = saved.nodes.map(n => ({{id: n.id, inputs: (n.inputs || []).map(i => ({{name: i.name, link: i.link}}))}}));
        return {{nodes: nodes, links: saved.links, missing: missing}};
    }})()"""


# Which of ``names`` the page offers to download: 1.3x opens a Missing Models dialog with a Download
# button per file; 1.5x shows a toast whose details panel has them.  A button counts for a name when
# the name is in its label or in the row around it.  Both appear after the model folders load: polled.
OFFERS_JS = """(async (names, timeout_ms) => {
    const sleep = ms => new Promise(r => setTimeout(r, ms));
    const deadline = Date.now() + timeout_ms;
    const offered = new Set();
    while (names.length) {
        const details = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'View details');
        if (details) { details.click(); await sleep(500); }
        for (const b of document.querySelectorAll('button')) {
            const label = b.getAttribute('aria-label') || '';
            if (!/^Download\\b/.test(b.innerText.trim()) && !/^Download\\b/.test(label)) continue;
            let row = b;
            for (let i = 0; i < 3 && row; i++, row = row.parentElement) {
                const hits = names.filter(n => label.includes(n) || row.innerText.includes(n));
                if (hits.length) { hits.forEach(n => offered.add(n)); break; }
            }
        }
        if (offered.size === names.length || Date.now() > deadline) break;
        await sleep(250);
    }
    return [...offered].sort();
})(%s, %d)"""
OFFERS_WAIT_S = 6.0
MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf")

# The dialogs, toasts and panels one workflow opened, closed so that the next one starts clean.
CLOSE_JS = """(() => {
    document.querySelectorAll('.p-dialog-close-button, .p-toast-close-button, [aria-label="Close"]')
        .forEach(b => b.click());
    document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}));
})()"""


async def _wait_for_app(dt: DevTools, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await dt.evaluate(APP_READY_JS, timeout=10):
                return
        except RuntimeError:
            pass
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the ComfyUI app did not start in the page within {timeout:.0f} s")


async def _wait_until_quiet(dt: DevTools, quiet_s: float, timeout: float) -> None:
    """Until the page has logged nothing for ``quiet_s``: its start-up requests are done."""
    deadline = time.monotonic() + timeout
    seen, quiet_since = len(dt.events), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_s:
        await asyncio.sleep(0.25)
        if len(dt.events) != seen:
            seen, quiet_since = len(dt.events), time.monotonic()


async def _check_page(page_ws_url: str, base_url: str, paths: list[Path], timeout: float) -> Report:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(page_ws_url, max_msg_size=0) as ws:
            dt = DevTools(ws)
            for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                await dt.call(domain)
            await dt.call("Page.navigate", url=base_url + "/")
            await _wait_for_app(dt, timeout)
            await _wait_until_quiet(dt, QUIET_S, timeout)
            version = await dt.evaluate("window.__COMFYUI_FRONTEND_VERSION__ || 'unknown'")
            await dt.evaluate(CLOSE_JS)   # the template browser a first visit opens covers the page
            await asyncio.sleep(SETTLE_S)
            page_messages = dt.take_events()
            results = []
            for path in paths:
                workflow = json.loads(path.read_text())
                loaded = await dt.evaluate(_load_js(workflow, path.name), timeout=timeout)
                await asyncio.sleep(SETTLE_S)
                models = model_files(workflow)
                offered = await dt.evaluate(OFFERS_JS % (json.dumps(models), OFFERS_WAIT_S * 1000), timeout=timeout)
                await dt.evaluate(CLOSE_JS)
                if models:   # the missing-model dialog or panel takes a moment to close
                    await asyncio.sleep(SETTLE_S)
                messages = dt.take_events()
                offline = [m for m in messages if _is_offline_error(m, base_url)
                           or any(w in m for w in FRONTEND_OWN_WARNINGS)]
                results.append(WorkflowResult(
                    name=path.name, messages=[m for m in messages if m not in offline], offline=offline,
                    missing_types=loaded["missing"], changed_links=_link_changes(workflow, loaded),
                    downloads_offered=offered,
                    nodes=(len(workflow.get("nodes") or []), len(loaded["nodes"])),
                    links=(len(workflow.get("links") or []), len(loaded["links"]))))
            dt.reader.cancel()
            return Report(frontend_version=str(version), page_messages=page_messages, workflows=results)


def _devtools_page(chromium_port: int) -> str:
    """A new blank tab's websocket URL (the /json/new endpoint wants PUT in current Chromium)."""
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{chromium_port}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["webSocketDebuggerUrl"]


def _start_chromium(chromium: str, profile: Path, timeout: float) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                             "--remote-debugging-port=0", "about:blank"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"   # Chromium writes its chosen port here
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{chromium} exited with {proc.returncode} at start-up")
        if port_file.is_file() and port_file.read_text().strip():
            return proc, int(port_file.read_text().split()[0])
        time.sleep(0.2)
    proc.kill()
    raise TimeoutError(f"{chromium} did not open its DevTools port within {timeout:.0f} s")


def check_in_browser(base_url: str, paths: list[Path], chromium: str, timeout: float = 120) -> Report:
    """Open ``base_url`` in headless Chromium and load each workflow there."""
    profile = tempfile.mkdtemp(prefix="nst-chromium-")
    proc, port = _start_chromium(chromium, Path(profile), timeout=30)
    try:
        return asyncio.run(_check_page(_devtools_page(port), base_url.rstrip("/"), paths, timeout))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)  # Chromium's helpers may still be writing there


def _harness():
    """tests/comfy/harness.py (provisioning, the server subprocess), loaded once under its test name."""
    if "harness" in sys.modules:
        return sys.modules["harness"]
    spec = importlib.util.spec_from_file_location("harness", REPO / "tests" / "comfy" / "harness.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["harness"] = module
    spec.loader.exec_module(module)
    return module


def stage_inputs(paths: list[Path], input_dir: Path) -> None:
    """Put the bundled files the workflows' Load Video nodes name into the server's input folder, as a
    user is told to: the frontend previews them on load, and a missing one is a 404 in the console."""
    for path in paths:
        for node in json.loads(Path(path).read_text()).get("nodes", []):
            if node.get("type") == "LoadVideo":
                name = (node.get("widgets_values") or [None])[0]
                if name and (SAMPLES / name).is_file():
                    shutil.copy(SAMPLES / name, input_dir)


def check_with_own_server(paths: list[Path], chromium: str, front_end_root: str | None = None) -> Report:
    """Start the provisioned ComfyUI with this pack (optionally another frontend), check, stop it."""
    harness = _harness()
    harness.provision_comfyui()
    with tempfile.TemporaryDirectory(prefix="nst-frontend-check-") as base:
        layout = harness.make_layout(Path(base))
        extra = ["--front-end-root", front_end_root] if front_end_root else []
        io = layout.io_dirs("server")
        stage_inputs(paths, io.input)
        with harness.ComfyServer(layout, io, extra_args=extra) as server:
            return check_in_browser(server.base_url, paths, chromium)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workflows", nargs="*", type=Path, help="default: example_workflows/*.json")
    ap.add_argument("--url", help="an already running ComfyUI (with this pack) instead of starting one")
    ap.add_argument("--front-end-root", help="serve this frontend's static/ directory (ComfyUI's flag)")
    ap.add_argument("--chromium", default=os.environ.get("NST_CHROMIUM") or find_chromium())
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    if not args.chromium:
        print("error: no Chromium found; install it (Debian: apt-get install chromium) or pass --chromium",
              file=sys.stderr)
        return 2
    paths = args.workflows or sorted(WORKFLOWS.glob("*.json"))
    if args.url:
        report = check_in_browser(args.url, paths, args.chromium)
    else:
        report = check_with_own_server(paths, args.chromium, args.front_end_root)
    if args.json:
        print(json.dumps({"frontend": report.frontend_version, "page": report.page_messages,
                          "workflows": {w.name: {"clean": w.clean, "messages": w.messages,
                                                 "missing_types": w.missing_types,
                                                 "downloads_offered": w.downloads_offered,
                                                 "nodes": w.nodes, "links": w.links}
                                        for w in report.workflows}}, indent=2))
    else:
        print(report.text())
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
