"""Progress and previews of a long run, paced for every ComfyUI: none lost to throttling, none flooding."""
from __future__ import annotations

import time
from typing import Callable, Optional

# Newer ComfyUI drops plain progress updates closer together than this (0.3.x sends every one).
MIN_GAP_S = 0.1


class ProgressReporter:
    """Feeds a ``comfy.utils.ProgressBar``.

    A preview goes out every ``preview_interval`` iterations and at the last one (ComfyUI always
    sends updates that carry a preview); plain progress at most every ``MIN_GAP_S`` seconds; the
    first and the last value always, so the bar starts at once and ends full."""

    def __init__(self, pbar, preview_interval: int, make_preview: Callable, clock: Callable[[], float] = time.monotonic):
        self.pbar = pbar
        self.preview_interval = preview_interval
        self.make_preview = make_preview
        self.clock = clock
        self.sent_value = 0
        self.sent_at: Optional[float] = None
        self.total: Optional[int] = None

    def step(self, iteration: int, total: int, image: Callable) -> None:
        """After each iteration; ``image()`` (the current image) is only called for a preview."""
        self.total = total
        last = iteration >= total
        preview_due = self.preview_interval > 0 and (iteration % self.preview_interval == 0 or last)
        now = self.clock()
        if not (preview_due or last or self.sent_at is None or now - self.sent_at >= MIN_GAP_S):
            return
        self.pbar.update_absolute(iteration, total, self.make_preview(image()) if preview_due else None)
        self.sent_value, self.sent_at = iteration, now

    def finish(self) -> None:
        """After a successful run: the bar ends full even if the run stopped short of its plan."""
        if self.total is not None and self.sent_value < self.total:
            self.pbar.update_absolute(self.total, self.total, None)
            self.sent_value = self.total
