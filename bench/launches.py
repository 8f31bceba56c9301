#!/usr/bin/env python
"""How many kernels does one optimisation step launch, and in which phase?

Counted with the torch profiler over a few steps of the real loop (whole image, Gram, L-BFGS)
after warm-up, next to a bare VGG19 forward to relu5_1 + backward to the image. On the CPU an
"op" is a leaf aten operator that does work (views, empty tensors and other metadata are left
out): what would be one kernel launch on a GPU. On CUDA the profiler's own kernel records count.

    python bench/launches.py [--device cpu] [--size 96] [--precision fp32] [--steps 3] [--out FILE.md]

Phases are labelled by wrapping the objective's and the optimiser's methods in this process only
(``record_function``); nst_core itself carries no profiling code.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, git_commit, machine, md_table  # noqa: E402

import torch  # noqa: E402
from torch.autograd import DeviceType  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

# Operators that launch no kernel: views, metadata, allocation without a fill.
NO_KERNEL = {
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::view", "aten::reshape", "aten::_reshape_alias",
    "aten::as_strided", "aten::t", "aten::transpose", "aten::permute", "aten::expand", "aten::detach", "aten::detach_",
    "aten::alias", "aten::unsqueeze", "aten::squeeze", "aten::select", "aten::slice", "aten::_unsafe_view",
    "aten::lift_fresh", "aten::resize_", "aten::flatten", "aten::diagonal", "aten::narrow", "aten::unflatten",
    "aten::view_as", "aten::expand_as", "aten::numpy_T", "aten::set_", "aten::requires_grad_", "aten::unbind",
    "aten::split", "aten::chunk", "aten::contiguous", "aten::result_type", "aten::_has_compatible_shallow_copy_type",
    "aten::is_nonzero", "aten::resolve_conj", "aten::resolve_neg", "aten::_to_copy_noop", "aten::to", "aten::type_as",
    "aten::zeros_like_meta", "aten::_conj", "aten::conj", "aten::real", "aten::view_as_real", "aten::view_as_complex",
    "aten::_nested_tensor_from_mask", "aten::matrix_H", "aten::mT", "aten::adjoint", "aten::movedim", "aten::moveaxis",
    "aten::swapaxes", "aten::_neg_view", "aten::_conj_physical_noop", "detach", "detach_",
}
PHASES = ("pixel terms", "vgg forward", "style sums", "style closed form", "content", "finish terms",
          "objective (rest)", "backward", "gradient injection", "l-bfgs", "log")


@contextlib.contextmanager
def patched(obj, name, phase):
    """``obj.name`` wrapped in a profiler range ``phase:<phase>`` for the duration."""
    original, own = getattr(obj, name), name in vars(obj)

    def wrapper(*a, **k):
        with torch.profiler.record_function("phase:" + phase):
            return original(*a, **k)
    setattr(obj, name, wrapper)
    try:
        yield
    finally:
        setattr(obj, name, original) if own else delattr(obj, name)


def objective(model, size: int, precision: str, device):
    """The default whole-image objective (one scale) on the bundled pair, as stylize builds it."""
    import nst_core as nc
    from nst_core import runtime, style_stats, transfer
    from nst_core.job import Job
    content = nc.resize_long(nc.load_image(ROOT / "assets/samples/tubingen.jpg"), size).to(device)
    style = nc.resize_long(nc.load_image(ROOT / "assets/samples/starry_night.jpg"), size).to(device)
    opts = nc.Options(precision=precision, size=size, start_size=0)
    net = runtime.runtime_model(model, device, opts)
    job = Job(net, nc.ContentTarget(content), [nc.StyleTarget(style)], nc.LossWeights(), opts,
              runtime.memory_format_for(device, opts.channels_last), style_stats.statistic("gram"), None)
    return transfer.objective_at(job, content, 0), content, opts


def leaf_work(events, device):
    """(phase, count) per operator that launches work: on CUDA the kernels the profiler saw it
    launch; on the CPU each aten operator called from Python or an autograd node (not from inside
    another operator), views and allocations left out."""
    for e in events:
        if e.device_type != DeviceType.CPU or not e.name.startswith("aten::") or nested(e):
            continue
        if device.type == "cuda":
            n = sum(len(d.kernels) for d in descendants(e))
        else:
            n = int(e.name not in NO_KERNEL)
        if n:
            yield phase_of(e), n


def nested(e) -> bool:
    p = e.cpu_parent
    while p is not None:
        if p.name.startswith("aten::"):
            return True
        p = p.cpu_parent
    return False


def descendants(e):
    yield e
    for c in e.cpu_children:
        yield from descendants(c)


def phase_of(e) -> str:
    p = e.cpu_parent
    while p is not None:
        if p.name.startswith("phase:"):
            return p.name[6:]
        p = p.cpu_parent
    return "outside the phases (CUDA: autograd's device thread)"


def profile(fn, device, steps: int) -> Counter:
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(steps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    counts = Counter()
    for phase, n in leaf_work(prof.events(), device):
        counts[phase] += n
    return Counter({k: v / steps for k, v in counts.items()})


def loop_counts(model, size, precision, device, steps, warm=3) -> Counter:
    """Launches per step of the real loop, by phase."""
    from nst_core import loop, objective as objmod
    obj, content, opts = objective(model, size, precision, device)
    run = loop.RunState(opts, warm + steps, loop.LossLog(warm + steps, device))
    one = loop.Step(obj.evaluate, content, run)
    opt, log_target, log_name = one.opt, run.log, "write"

    def step():
        one()
        run.report(one.x, one.names, content)
    with torch.enable_grad():
        for _ in range(warm):
            step()
    wraps = [(obj, "evaluate", "objective (rest)"), (obj, "pixel", "pixel terms"), (obj, "features", "vgg forward"), (obj, "block_sums", "style sums"),
             (obj, "style_from_sums", "style closed form"), (obj, "content_value", "content"),
             (obj, "backward", "backward"), (obj, "add_layer_gradient", "gradient injection"),
             (objmod, "finish_terms", "finish terms"), (opt, "step", "l-bfgs"), (log_target, log_name, "log")]
    with contextlib.ExitStack() as stack, torch.enable_grad():
        for target, name, phase in wraps:
            if hasattr(target, name):
                stack.enter_context(patched(target, name, phase))
        return profile(step, device, steps)


def bare_counts(model, size, precision, device, steps) -> Counter:
    from nst_core import runtime
    obj, content, opts = objective(model, size, precision, device)
    net = runtime.runtime_model(model, device, opts)
    fmt = runtime.memory_format_for(device, opts.channels_last)
    x = content.clone().requires_grad_(True)

    def step():
        with torch.profiler.record_function("phase:bare"):
            y = net(x if fmt is None else x.contiguous(memory_format=fmt), ["relu5_1"])["relu5_1"]
            torch.autograd.grad(y.float().sum(), x)
    with torch.enable_grad():
        for _ in range(2):
            step()
        return profile(step, device, steps)


def measure(device="cpu", size=96, precision="fp32", steps=3) -> dict:
    import nst_core as nc
    device = torch.device(device)
    return measure_with(nc.load_vgg(device=device), device, size, precision, steps)


def measure_with(model, device, size: int, precision: str, steps: int = 3) -> dict:
    """Launches per step by phase of our loop and of the bare pass, with this model."""
    ours = loop_counts(model, size, precision, device, steps)
    bare = bare_counts(model, size, precision, device, steps)
    return {"ours": dict(ours), "ours_total": sum(ours.values()), "bare_total": sum(bare.values()),
            "outside_vgg": sum(ours.values()) - sum(bare.values())}


aten = torch.ops.aten
# Operations that read device data on the host or copy host data to the device: each a sync on CUDA.
HOST_READS = {aten._local_scalar_dense.default, aten.lift_fresh.default, aten.lift_fresh_copy.default,
              aten.nonzero.default, aten.masked_select.default, aten.unique_dim.default, aten._unique2.default,
              aten.unique_consecutive.default, aten.repeat_interleave.Tensor}


class HostReads(TorchDispatchMode):
    """While ``armed``, records every operation (at the dispatcher, below autograd) that reads the
    device from the host: what ``torch.cuda.set_sync_debug_mode`` catches on CUDA, on any device."""

    def __init__(self):
        super().__init__()
        self.armed, self.found = False, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.armed:
            index = [t for t in torch.utils._pytree.tree_leaves(args[1:2]) if isinstance(t, torch.Tensor)]
            if func in HOST_READS or (func is aten.index.Tensor and any(t.dtype == torch.bool for t in index)):
                self.found.append(str(func))
        return func(*args, **kwargs)


def _order(phase: str) -> int:
    return PHASES.index(phase) if phase in PHASES else len(PHASES)


def report(r: dict, title: str) -> str:
    rows = [[p, f"{n:g}"] for p, n in sorted(r["ours"].items(), key=lambda pn: _order(pn[0]))]
    rows += [["**total per step**", f"**{r['ours_total']:g}**"], ["bare VGG forward+backward", f"{r['bare_total']:g}"],
             ["outside the bare pass", f"{r['outside_vgg']:g}"]]
    return f"### {title}\n\n" + md_table(["phase", "launches per step"], rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--label", default="", help="a heading for this count (e.g. before / after)")
    p.add_argument("--out", default="", help="append the table to this markdown file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    r = measure(args.device, args.size, args.precision, args.steps)
    title = (f"{args.label}: " if args.label else "") + (f"{args.device}, {args.precision}, {args.size} px, "
                                                         f"commit {git_commit()}")
    text = report(r, title) + f"\n{machine()}\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
