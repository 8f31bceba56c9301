"""Progress and previews of a long run, paced for every ComfyUI: none lost to throttling, none flooding."""
from __future__ import annotations

import time
from typing import Callable, Optional

# Newer ComfyUI drops plain progress updates closer together than this (0.3.x sends every one).
MIN_GAP_S = 0.1
# The text under the bar (step, scale, loss) changes at most this often: readable, and reading the
# loss waits for the GPU.
TEXT_GAP_S = 0.5


def describe(info) -> str:
    """One line on where a run is (an nst_core StepInfo): step, frame, scale, size and loss."""
    h, w = info.size
    parts = [f"step {info.iteration}/{info.total}"]
    if info.n_frames > 1:
        parts.append(f"frame {info.frame + 1}/{info.n_frames}")
    if info.n_scales > 1:
        parts.append(f"scale {info.scale + 1}/{info.n_scales}")
    parts.append(f"{w}×{h} px")
    total = info.loss_tensors.get("total")
    if total is not None:
        parts.append(f"loss {float(total):.3g}")
    return " · ".join(parts)


def send_to_node(text: str) -> None:
    """Show ``text`` on the running node, where this ComfyUI has progress text (0.3.x and later)."""
    try:
        from comfy_execution.utils import get_executing_context
        from server import PromptServer
    except ImportError:
        return
    server, context = getattr(PromptServer, "instance", None), get_executing_context()
    if server is not None and context is not None and hasattr(server, "send_progress_text"):
        server.send_progress_text(text, context.node_id)


class ProgressReporter:
    """Feeds a ``comfy.utils.ProgressBar``, and the node's progress text.

    A preview goes out every ``preview_interval`` iterations and at the last one (ComfyUI always
    sends updates that carry a preview); plain progress at most every ``MIN_GAP_S`` seconds; the
    first and the last value always, so the bar starts at once and ends full.  Text goes out with
    the first and the last step and at most every ``TEXT_GAP_S`` seconds in between."""

    def __init__(self, pbar, preview_interval: int, make_preview: Callable, clock: Callable[[], float] = time.monotonic,
                 send_text: Callable[[str], None] = send_to_node):
        self.pbar = pbar
        self.preview_interval = preview_interval
        self.make_preview = make_preview
        self.clock = clock
        self.send_text = send_text
        self.sent_value = 0
        self.sent_at: Optional[float] = None
        self.text_at: Optional[float] = None
        self.total: Optional[int] = None

    def step(self, iteration: int, total: int, image: Callable, text: Optional[Callable[[], str]] = None) -> None:
        """After each iteration; ``image()`` (the current image) is only called for a preview and
        ``text()`` (a line for the node, see :func:`describe`) only when it is shown."""
        self.total = total
        last = iteration >= total
        now = self.clock()
        if text is not None and (last or self.text_at is None or now - self.text_at >= TEXT_GAP_S):
            self.send_text(text())
            self.text_at = now
        preview_due = self.preview_interval > 0 and (iteration % self.preview_interval == 0 or last)
        if not (preview_due or last or self.sent_at is None or now - self.sent_at >= MIN_GAP_S):
            return
        self.pbar.update_absolute(iteration, total, self.make_preview(image()) if preview_due else None)
        self.sent_value, self.sent_at = iteration, now

    def finish(self) -> None:
        """After a successful run: the bar ends full even if the run stopped short of its plan."""
        if self.total is not None and self.sent_value < self.total:
            self.pbar.update_absolute(self.total, self.total, None)
            self.sent_value = self.total
