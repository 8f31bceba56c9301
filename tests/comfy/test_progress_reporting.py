"""The Optimize node's progress and previews hold under ComfyUI 0.3.75's ProgressBar and under newer ones.

ComfyUI after 0.3.75 throttles ``ProgressBar.update_absolute``: an update is passed on only when it
carries a preview, is the first or reaches the total, or comes at least 100 ms and 0.5% after the
last one passed on.  ``throttled_update_absolute`` below states that rule (written from the newer
source's behaviour, not copied) so both behaviours run here against the real ProgressBar class of
the provisioned ComfyUI 0.3.75.
"""
from __future__ import annotations

import importlib.util
import time

import pytest

from nst_prompts import REPO, basic_prompt

NEWER_MIN_INTERVAL_S, NEWER_MIN_PERCENT = 0.1, 0.5


def throttled_update_absolute(self, value, total=None, preview=None):
    """ProgressBar.update_absolute as newer ComfyUI behaves."""
    if total is not None:
        self.total = total
    value = min(value, self.total)
    self.current = value
    if self.hook is None:
        return
    now = time.perf_counter()
    last_value = getattr(self, "_last_sent_value", -1)
    forced = preview is not None or last_value < 0 or value >= self.total
    changed = (value - max(0, last_value)) / self.total * 100 if self.total > 0 else 100
    if forced or (now - getattr(self, "_last_update_time", 0.0) >= NEWER_MIN_INTERVAL_S
                  and changed >= NEWER_MIN_PERCENT):
        self.hook(self.current, self.total, preview, node_id=self.node_id)
        self._last_update_time, self._last_sent_value = now, value


@pytest.fixture(params=["comfyui-0.3.75", "throttled-like-newer"])
def progress_bar(request, nst_pack, monkeypatch):
    """ComfyUI's ProgressBar class, as shipped or with the newer throttling."""
    import comfy.utils

    if request.param == "throttled-like-newer":
        monkeypatch.setattr(comfy.utils.ProgressBar, "update_absolute", throttled_update_absolute)
    return comfy.utils.ProgressBar


@pytest.fixture
def sent(nst_pack, monkeypatch):
    """(value, total, has_preview) of every update that reached ComfyUI's global progress hook."""
    import comfy.utils

    calls, original = [], comfy.utils.PROGRESS_BAR_HOOK

    def recording_hook(value, total, preview, **kw):
        calls.append((value, total, preview is not None))
        return original(value, total, preview, **kw)

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", recording_hook)
    return calls


def _node_texts(res, node_id: str) -> list[str]:
    """The progress texts ComfyUI sent for a node (binary TEXT messages: node id, then UTF-8)."""
    import struct

    import harness

    frames = [harness.decode_binary_frame(struct.pack(">I", event) + data) for event, data in res.messages
              if event == 3]
    return [f.text for f in frames if f.node_id == node_id]


def _progress_module():
    spec = importlib.util.spec_from_file_location("nst_nodes_progress", REPO / "nodes" / "progress.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeClock:
    """Iterations that take a fixed time each, without waiting for them."""

    def __init__(self, step_s: float):
        self.t, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        self.t += self.step_s
        return self.t


def _assert_well_formed(calls, total, preview_interval):
    values = [v for v, _, _ in calls]
    assert values == sorted(set(values)), f"progress went backwards or repeated: {values}"
    assert values[0] == 1 and values[-1] == total and all(t == total for _, t, _ in calls)
    expected = [] if preview_interval == 0 else sorted(
        set(range(preview_interval, total + 1, preview_interval)) | {total})
    assert [v for v, _, p in calls if p] == expected


# Two real runs (each takes seconds on a CPU); the reporter's own tests below cover every combination.
@pytest.mark.parametrize("progress_bar, preview_interval", [("comfyui-0.3.75", 3), ("throttled-like-newer", 0)],
                         indirect=["progress_bar"])
def test_optimize_progress_ends_at_the_total_with_previews_on_their_interval(nst_pack, progress_bar, sent,
                                                                            preview_interval):
    steps = 7
    prompt = basic_prompt(steps=steps, size=40, preview_interval=preview_interval, save=False)
    res = nst_pack.execute_prompt(prompt | {"9": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}})
    _assert_well_formed(sent, steps, preview_interval)
    assert len(res.previews) == len([c for c in sent if c[2]])
    assert [p["value"] for p in res.progress if p["node"] == "6"][-1] == steps
    texts = _node_texts(res, "6")   # the progress text under the node's bar
    assert texts and texts[0].startswith("step 1/7 · ") and texts[-1].startswith(f"step {steps}/{steps} · 40×")
    assert all(" px · loss " in t for t in texts)


@pytest.mark.parametrize("preview_interval", [0, 50])
def test_a_fast_run_sends_about_ten_updates_a_second_not_one_per_iteration(progress_bar, sent, preview_interval):
    progress = _progress_module()
    total, step_s = 2000, 0.001   # 2 s of 1 ms iterations
    reporter = progress.ProgressReporter(progress_bar(total), preview_interval, lambda image: ("JPEG", image, 8),
                                         clock=FakeClock(step_s))
    for i in range(1, total + 1):
        reporter.step(i, total, lambda: "image")
    reporter.finish()
    _assert_well_formed(sent, total, preview_interval)
    plain = [c for c in sent if not c[2]]
    assert len(plain) <= total * step_s / progress.MIN_GAP_S + 2


def test_a_run_that_stops_short_still_ends_with_a_full_bar(progress_bar, sent):
    reporter = _progress_module().ProgressReporter(progress_bar(10), 0, lambda image: None, clock=FakeClock(0.001))
    for i in range(1, 8):   # the run's plan said 10; it ended after 7
        reporter.step(i, 10, lambda: None)
    reporter.finish()
    assert [v for v, _, _ in sent] == [1, 10]


def test_progress_text_at_most_twice_a_second_and_at_the_last_step(progress_bar, sent):
    progress = _progress_module()
    texts, total, step_s = [], 2000, 0.001   # 2 s of 1 ms iterations
    reporter = progress.ProgressReporter(progress_bar(total), 0, lambda image: None, clock=FakeClock(step_s),
                                         send_text=texts.append)
    for i in range(1, total + 1):
        reporter.step(i, total, lambda: None, lambda i=i: f"step {i}")
    assert texts[0] == "step 1" and texts[-1] == f"step {total}"
    assert len(texts) <= total * step_s / progress.TEXT_GAP_S + 2


def test_the_text_says_step_frame_scale_size_and_loss(nst_pack):
    import torch

    from nst_core.options import StepInfo

    describe = _progress_module().describe
    one = StepInfo(5, 100, 0, 1, (48, 64), 0, 1, {"content": torch.tensor(2.0), "total": torch.tensor(123456.0)},
                   lambda: None)
    assert describe(one) == "step 5/100 · 64×48 px · loss 1.23e+05"
    video = StepInfo(70, 300, 1, 2, (96, 128), 2, 12, {"total": torch.tensor(0.5)}, lambda: None)
    assert describe(video) == "step 70/300 · frame 3/12 · scale 2/2 · 128×96 px · loss 0.5"
