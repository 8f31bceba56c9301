"""The command line's progress: a bar on a terminal, plain lines in a log."""
from __future__ import annotations

import sys
import time

from .options import StepInfo


class ProgressBar:
    """A bar redrawn in place on a terminal; piped or redirected (a log, CI), one plain line per
    scale, per tenth of the run or per 10 s, whichever comes first, instead of thousands of ``\\r``s."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.t0, self.last = stream, time.time(), 0.0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.size, self.frame, self.tenth = None, 0, 0

    def _due(self, info: StepInfo, now: float) -> bool:
        if info.iteration == info.total:
            return True
        if self.tty:
            return now - self.last >= 0.2
        tenth = 10 * info.iteration // max(info.total, 1)
        new_scale = info.size != self.size or info.frame != self.frame
        due = new_scale or tenth > self.tenth or now - self.last >= 10.0
        self.size, self.frame, self.tenth = info.size, info.frame, max(self.tenth, tenth)
        return due

    def __call__(self, info: StepInfo) -> None:
        now = time.time()
        if not self._due(info, now):
            return
        self.last = now
        frac = info.iteration / max(info.total, 1)
        l = info.losses
        rate = (now - self.t0) / info.iteration
        eta = rate * (info.total - info.iteration)
        frame = f" frame {info.frame + 1}/{info.n_frames}" if info.n_frames > 1 else ""
        text = (f"{info.iteration}/{info.total} {info.size[1]}×{info.size[0]}{frame} "
                f"loss {l['total']:.3g} (content {l['content']:.3g}, style {l['style']:.3g}) "
                f"{rate:.2f}s/it ETA {eta:.0f}s")
        if self.tty:
            self.stream.write(f"\r[{'#' * int(30 * frac):<30}] {text} ")
            if info.iteration == info.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
