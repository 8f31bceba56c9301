"""Cancel stops the Optimize node under both kinds of ComfyUI interrupt exception.

ComfyUI 0.3.75 raises ``InterruptProcessingException`` as an ``Exception``; newer releases make
it a ``BaseException`` so that ``except Exception`` in a node can no longer swallow a cancel.
Both are run here through ComfyUI's own executor, which catches the exception by that class.
"""
from __future__ import annotations

import pytest

import harness
from nst_prompts import basic_prompt


class NewerInterrupt(BaseException):
    """InterruptProcessingException as newer ComfyUI defines it."""


@pytest.fixture(params=["exception-like-0.3.75", "baseexception-like-newer"])
def interrupt_class(request, nst_pack, monkeypatch):
    import comfy.model_management as mm

    if request.param == "baseexception-like-newer":
        monkeypatch.setattr(mm, "InterruptProcessingException", NewerInterrupt)
    return mm.InterruptProcessingException


def _prompt(steps):
    prompt = basic_prompt(steps=steps, size=40, preview_interval=0, save=False)
    prompt["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}
    return prompt


def test_cancel_stops_optimize_and_the_next_prompt_runs_clean(nst_pack, interrupt_class, monkeypatch):
    import comfy.model_management as mm
    import comfy.utils

    original = comfy.utils.PROGRESS_BAR_HOOK

    def cancel_on_first_progress(value, total, preview, **kw):
        result = original(value, total, preview, **kw)
        mm.interrupt_current_processing(True)   # as a user pressing Cancel while the bar moves
        return result

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", cancel_on_first_progress)
    with pytest.raises(harness.ComfyExecutionError) as info:
        nst_pack.execute_prompt(_prompt(steps=500))
    assert info.value.event == "execution_interrupted" and info.value.details.get("node_id") == "6"

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", original)
    res = nst_pack.execute_prompt(_prompt(steps=2))
    assert res.node_outputs("6")[0][0].shape == (1, 30, 40, 3)
    vgg = res.node_outputs("3")[0][0]   # the cached model the cancelled run used, back on the CPU
    assert all(p.device.type == "cpu" and p.grad is None for p in vgg.parameters())
