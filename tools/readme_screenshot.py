#!/usr/bin/env python
"""Screenshot an example workflow in ComfyUI's real frontend, after running it, for the README.

    python tools/readme_screenshot.py                       # basic_style_transfer -> assets/readme/workflow.png
    python tools/readme_screenshot.py --steps 40            # a quicker run
    python tools/readme_screenshot.py --no-run              # only the loaded graph

Starts the provisioned ComfyUI with this pack (as tools/check_workflows_in_frontend.py does),
loads the workflow with ``app.loadGraphData``, optionally overrides the Optimize node's steps,
queues it from the page (so the nodes show their results), fits the view and saves a PNG
through ``Page.captureScreenshot``, palette-quantised to keep the repository small.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import io
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1400, 800


def _check_tool():
    spec = importlib.util.spec_from_file_location("check_workflows_in_frontend",
                                                  REPO / "tools" / "check_workflows_in_frontend.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cw = _check_tool()
# The page must be laid out at the screenshot's size, not the checker's.
cw.CHROMIUM_FLAGS = tuple(f"--window-size={WIDTH},{HEIGHT}" if f.startswith("--window-size") else f
                          for f in cw.CHROMIUM_FLAGS)


def _load_js(workflow: dict, name: str, steps: int | None) -> str:
    return f"""(async () => {{
        await window.app.loadGraphData({json.dumps(workflow)}, true, true, {json.dumps(name)});
        const steps = {json.dumps(steps)};
        for (const node of window.app.graph._nodes) {{
            const w = (node.widgets || []).find(w => w.name === 'steps');
            if (steps !== null && w) {{ w.value = steps; node.onWidgetChanged?.('steps', steps); }}
        }}
        return window.app.graph._nodes.length;
    }})()"""


QUEUE_JS = """(async () => {
    const before = new Set(Object.keys(await (await fetch('/api/history')).json()));
    await window.app.queuePrompt(0, 1);
    return [...before];
})()"""

HISTORY_JS = """(async () => {
    const h = await (await fetch('/api/history')).json();
    return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.status]));
})()"""

# Fit every node (titles included) into the part of the window no toolbar covers: the frontend's
# own FitView leaves wide margins and ignores the floating Run bar and canvas menu.
FIT_JS = """(() => {
    const c = window.app.canvas, nodes = window.app.graph._nodes;
    c.deselectAll?.();
    const rects = nodes.map(n => n.boundingRect);
    const x0 = Math.min(...rects.map(r => r[0])), y0 = Math.min(...rects.map(r => r[1]));
    const x1 = Math.max(...rects.map(r => r[0] + r[2])), y1 = Math.max(...rects.map(r => r[1] + r[3]));
    const box = c.canvas.getBoundingClientRect();
    const free = {left: 70, top: 100, right: %d - 10, bottom: %d - 60};
    const scale = Math.min((free.right - free.left) / (x1 - x0), (free.bottom - free.top) / (y1 - y0));
    const cx = (free.left + free.right) / 2 - box.left, cy = (free.top + free.bottom) / 2 - box.top;
    c.ds.scale = scale;
    c.ds.offset[0] = cx / scale - (x0 + x1) / 2;
    c.ds.offset[1] = cy / scale - (y0 + y1) / 2;
    c.setDirty(true, true);
    return {scale: scale, box: [box.left, box.top, box.width, box.height], bounds: [x0, y0, x1, y1]};
})()""" % (WIDTH, HEIGHT)

# A first-run user would see the template browser, the minimap, the canvas statistics and the
# "Nodes 2.0" banner over the graph; the README shows the graph alone.
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False, "Comfy.Graph.CanvasInfo": False}
BEFORE_PAGE_JS = "localStorage.setItem('vueNodesBannerDismissed', 'true');"

# Dialogs, toasts and popovers that would cover the graph; the graph is all the README needs.
CLOSE_OVERLAYS_JS = """(() => {
    document.querySelectorAll('.p-dialog-close-button, .p-toast-close-button').forEach(b => b.click());
    return document.querySelectorAll('.p-dialog, .p-toast-message').length;
})()"""


async def _wait_for_run(dt, before: list[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = await dt.evaluate(HISTORY_JS)
        new = {k: v for k, v in history.items() if k not in before}
        if new and all((v or {}).get("completed") or (v or {}).get("status_str") == "error" for v in new.values()):
            return new
        await asyncio.sleep(2)
    raise TimeoutError(f"the workflow did not finish within {timeout:.0f} s")


async def _shoot(page_ws_url: str, base_url: str, path: Path, steps: int | None, run: bool,
                 run_timeout: float) -> tuple[bytes, list[str]]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(page_ws_url, max_msg_size=0) as ws:
            dt = cw.DevTools(ws)
            for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                await dt.call(domain)
            await dt.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                          deviceScaleFactor=1, mobile=False)
            await dt.call("Page.addScriptToEvaluateOnNewDocument", source=BEFORE_PAGE_JS)
            await dt.call("Page.navigate", url=base_url + "/")
            await cw._wait_for_app(dt, 120)
            await cw._wait_until_quiet(dt, cw.QUIET_S, 120)
            dt.take_events()
            await dt.evaluate(_load_js(json.loads(path.read_text()), path.name, steps))
            await asyncio.sleep(cw.SETTLE_S)
            if run:
                before = await dt.evaluate(QUEUE_JS)
                status = await _wait_for_run(dt, before, run_timeout)
                failed = [k for k, v in status.items() if (v or {}).get("status_str") == "error"]
                if failed:
                    raise RuntimeError(f"the workflow failed: {json.dumps(status[failed[0]])[-2000:]}")
                await asyncio.sleep(3)  # the frontend loads the output images after the run ends
            await dt.evaluate(CLOSE_OVERLAYS_JS)
            print(f"view: {await dt.evaluate(FIT_JS)}", file=sys.stderr)
            await asyncio.sleep(1.5)
            shot = await dt.call("Page.captureScreenshot", format="png")
            events = dt.take_events()
            dt.reader.cancel()
            return base64.b64decode(shot["data"]), events


def _small_png(png: bytes, colors: int) -> bytes:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, format="PNG", optimize=True)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workflow", nargs="?", type=Path, default=REPO / "example_workflows" / "basic_style_transfer.json")
    ap.add_argument("-o", "--output", type=Path, default=REPO / "assets" / "readme" / "workflow.png")
    ap.add_argument("--steps", type=int, help="override the Optimize node's steps (a quicker run)")
    ap.add_argument("--no-run", action="store_true", help="screenshot the loaded graph without running it")
    ap.add_argument("--run-timeout", type=float, default=900)
    ap.add_argument("--colors", type=int, default=256, help="palette size of the saved PNG")
    args = ap.parse_args(argv)
    chromium = cw.find_chromium()
    if not chromium:
        print("error: no Chromium found; install it (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    harness = cw._harness()
    harness.provision_comfyui()
    with tempfile.TemporaryDirectory(prefix="nst-shot-") as base:
        layout = harness.make_layout(Path(base))
        with harness.ComfyServer(layout, layout.io_dirs("server")) as server:
            server.post("/settings", SETTINGS)
            with tempfile.TemporaryDirectory(prefix="nst-chromium-") as profile:
                proc, port = cw._start_chromium(chromium, Path(profile), timeout=30)
                try:
                    png, events = asyncio.run(_shoot(cw._devtools_page(port), server.base_url, args.workflow,
                                                     args.steps, not args.no_run, args.run_timeout))
                finally:
                    proc.terminate()
                    proc.wait(timeout=10)
    for e in events:
        print(f"page: {e}", file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(_small_png(png, args.colors))
    print(f"{args.output}: {args.output.stat().st_size // 1024} KB (raw capture {len(png) // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
