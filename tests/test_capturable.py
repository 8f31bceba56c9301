"""The optimisation step can be replayed as a CUDA graph: proven on the CPU.

A CUDA graph replays the kernels recorded from one step with the same arguments and buffers, and a
host sync inside it is an error. So after its first step a step must (1) take no number from the
device (no ``.item()``, no data-dependent shapes, no tensor made from host data), (2) run the same
operations with the same non-tensor arguments every time, and (3) read only tensors that outlive
it or that it made itself (state rebound from one step to the next would be read stale). Each is
checked at the dispatcher, below autograd, where every operation a step runs passes.
"""
import gc
import logging
import warnings

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import nst_core
from nst_core import graph, loop, style_stats, transfer
from nst_core.job import Job
from nst_core.schedule import plan_scales

aten = torch.ops.aten
# Operations that read device data on the host or copy host data to the device.
HOST_READS = {aten._local_scalar_dense.default, aten.lift_fresh.default, aten.lift_fresh_copy.default,
              aten.nonzero.default, aten.masked_select.default, aten.unique_dim.default,
              aten._unique2.default, aten.unique_consecutive.default, aten.repeat_interleave.Tensor}


def _tensors(tree):
    return [t for t in torch.utils._pytree.tree_leaves(tree) if isinstance(t, torch.Tensor)]


class HostReads(TorchDispatchMode):
    """Records every operation that would make a CUDA stream wait for the host, while armed."""

    def __init__(self):
        super().__init__()
        self.armed, self.found = False, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.armed:
            bool_index = func is aten.index.Tensor and any(t.dtype == torch.bool for t in _tensors(args[1]))
            if func in HOST_READS or bool_index:
                self.found.append(str(func))
        return func(*args, **kwargs)


def _content_style(size):
    from testlib import sample_image
    return sample_image("tubingen.jpg", size), sample_image("starry_night.jpg", size)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_loop_reads_nothing_back_from_the_device_after_the_first_step_of_a_scale(vgg, precision):
    """The default path (whole image, Gram, L-BFGS), two scales: from the second step of each scale
    on, not one operation reads the device from the host (on CUDA each would be a sync)."""
    content, style = _content_style(64)
    opts = nst_core.Options(size=64, start_size=45, steps=4, min_scale_steps=3, precision=precision)
    plan = plan_scales(tuple(content.shape[-2:]), opts)
    firsts = {sum(k for _, k in plan[:i]) for i in range(len(plan))}   # steps (0-based) that start a scale
    mode = HostReads()

    def callback(info):   # the next step is the 0-based `iteration`; after the last, the run ends
        mode.armed = info.iteration not in firsts and info.iteration < info.total
    with mode:
        result = nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)],
                                  nst_core.LossWeights(), opts, callback=callback)
    assert len(plan) == 2 and len(result.history["total"]) == sum(k for _, k in plan)
    assert mode.found == []


class StepRecorder(TorchDispatchMode):
    """Per step: the operations with their non-tensor arguments and tensor shapes, and every tensor
    read that was neither alive before the recording (``static``) nor made earlier in the same step."""

    def __init__(self, static):
        super().__init__()
        self.static = static
        self.steps = []

    def begin(self):
        self.steps.append({"ops": [], "stale": [], "made": set()})

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        step = self.steps[-1]
        for t in _tensors((args, kwargs)):
            ptr = _storage(t)
            if ptr and ptr not in self.static and ptr not in step["made"]:
                step["stale"].append(str(func))
        step["made"].update(_storage(t) for t in _tensors(out))
        plain = torch.utils._pytree.tree_map(
            lambda a: ("T", tuple(a.shape), a.dtype, a.stride()) if isinstance(a, torch.Tensor) else a, (args, kwargs))
        step["ops"].append((str(func), repr(plain)))
        return out


def _storage(t):
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return 0


def _live_storages():
    gc.collect()
    with warnings.catch_warnings():   # isinstance on every live object wakes torch's deprecated aliases
        warnings.simplefilter("ignore", FutureWarning)
        return {_storage(o) for o in gc.get_objects() if isinstance(o, torch.Tensor)} - {0}


def _step(vgg, content, style, opts):
    job = Job(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)], nst_core.LossWeights(),
              opts, torch.channels_last, style_stats.statistic(opts.style_loss), None)
    obj = transfer.objective_at(job, content, 0)
    run = loop.RunState(opts, 10, loop.LossLog(10, content.device))
    return loop.Step(obj.evaluate, content, run), run


@pytest.mark.parametrize("precondition", [True, False])
def test_a_step_replays_the_same_operations_on_buffers_that_outlive_it(vgg, precondition):
    """After the warm-up ``graph.py`` runs eagerly, three steps run the same operations with the same
    arguments, and read only tensors that were alive before them or that they made themselves."""
    content, style = _content_style(48)
    step, run = _step(vgg, content, style, nst_core.Options(precondition=precondition, history_size=2))
    for _ in range(graph.WARMUP):
        step()
    rec = StepRecorder(_live_storages())
    with rec:
        for _ in range(3):   # with 2 pairs of history the ring wraps within these steps
            rec.begin()
            step()
    first, *rest = rec.steps
    assert len(first["ops"]) > 100
    for later in rest:
        assert later["ops"] == first["ops"]
    assert [s["stale"] for s in rec.steps] == [[], [], []]


def test_the_log_keeps_each_term_of_each_row(vgg):
    """Rows with different terms (a later frame adds the temporal one): each term's list holds the
    rows that had it, in order; the callback's values are the row's."""
    log = loop.LossLog(2, torch.device("cpu"))
    rows = [{"content": 1.0, "style": 2.0, "total": 3.0}, {"content": 4.0, "style": 5.0, "temporal": 6.0, "total": 15.0},
            {"content": 7.0, "style": 8.0, "total": 15.0}]
    seen = []
    for r in rows:
        log.reserve(1)
        log.write({k: torch.tensor(v) for k, v in r.items()})
        seen.append({k: float(v) for k, v in log.mark(tuple(r)).items()})
    assert seen == rows
    assert log.as_lists() == {"content": [1.0, 4.0, 7.0], "style": [2.0, 5.0, 8.0], "total": [3.0, 15.0, 15.0],
                              "temporal": [6.0]}


def test_cuda_graphs_fall_back_to_eager_steps_with_one_message(vgg, caplog):
    """Where a graph cannot run (here: the CPU) ``cuda_graph="on"`` runs eagerly, says why once, and
    gives the eager result; an unknown setting is refused with the choices."""
    content, style = _content_style(48)

    def run(mode):
        opts = nst_core.Options(size=48, start_size=0, steps=3, cuda_graph=mode)
        return nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)],
                                nst_core.LossWeights(), opts)
    graph._told.clear()
    with caplog.at_level(logging.WARNING, logger="nst_core.graph"):
        on, again = run("on"), run("on")
    assert len(caplog.records) == 1 and "CUDA device" in caplog.records[0].message
    off = run("off")
    assert torch.equal(on.image, off.image) and torch.equal(again.image, off.image)
    with pytest.raises(nst_core.StylizeError, match="auto, on, off"):
        run("yes")
