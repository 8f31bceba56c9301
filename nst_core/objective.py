"""The objective at one scale: content, style and pixel terms, and its gradient.

The network runs once per evaluation. The loss terms of every tapped layer are evaluated on the
detached features, and their gradients are added to that layer's gradient inside the backward pass
(a hook per layer; the deepest layer seeds the backward), so autograd never differentiates the
C×N products itself and no full-size gradient is made per term. The same pieces serve a whole
image (:meth:`Objective.evaluate`) and the exact tiled evaluation of ``tiling.py``: a
``blocks.Block`` says which positions of the image a pass over a crop accounts for.
"""
from __future__ import annotations

import functools
import operator
from typing import Dict, List, Optional, Tuple

import torch

from .blocks import Block, whole
from .losses import EPS, as_matrix, resize_mask, stacked_terms, sum_sq
from .seamless import circular_padding
from .style_stats import SlicedW, add_moment_gradient, moment_sums
from .terms import ContentTerm, PixelTerms, StyleTerm
from .vgg import layer_stride


class Objective:
    """Content + style + pixel terms for one image at one scale."""

    def __init__(self, job, hw, content: ContentTerm, styles: List[StyleTerm], pixel: PixelTerms):
        """``job`` (``job.Job``) gives the model, its memory format, the statistic and the weights."""
        model = job.model
        self.model, self.hw, self.memory_format, self.stat = model, tuple(hw), job.memory_format, job.stat
        c_layers, self.c_targets, c_weight, c_mask = content.layers, content.targets, content.weight, content.mask
        self.c_layers = c_layers
        self.styles, self.style_weight, self.pixel = styles, job.weights.style_weight(), pixel
        self.periodic = job.opts.seamless       # the image wraps around: seamless.py
        self.layers = sorted(set(c_layers) | {n for t in styles for n in t.layers}, key=lambda n: model.index[n])
        self.deepest = self.layers[-1]
        self.c_masks = {n: None if c_mask is None else resize_mask(c_mask, self.layer_hw(n)) for n in c_layers}
        # Content term of a layer: scale · Σ m·(F − T)², normalised by the target's mean square and
        # the (masked) number of positions, so the weight means the same at any size.
        self.c_scale = {}
        for n, a in c_layers.items():
            t = self.c_targets[n]
            m = self.c_masks[n]
            count = t.numel() * (1.0 if m is None else float(m.mean()))
            self.c_scale[n] = c_weight * a / ((float(sum_sq(t)) / t.numel() + EPS) * max(count, EPS))
        # Style views: per (term, layer) the mask at the layer's size and its total weight.
        self.views = {}
        for i, term in enumerate(styles):
            for n in term.layers:
                m = None if term.mask is None else resize_mask(term.mask, self.layer_hw(n))
                mass = float(m.sum()) if m is not None else float(self.layer_hw(n)[0] * self.layer_hw(n)[1])
                if mass > 0:
                    self.views[(i, n)] = (m, mass)
        # Gram: each view's target and factors, and its weight in the total (one dot product).
        if hasattr(self.stat, "view_constants"):
            self.gram_views = {(i, n): self.stat.view_constants(styles[i].targets[n], mass,
                                                                self.style_weight * styles[i].weight * styles[i].layers[n])
                               for (i, n), (_, mass) in self.views.items()}
            self.gram_coef = torch.tensor([v.coef for v in self.gram_views.values()], dtype=torch.float32,
                                          device=model.mean.device)

    def layer_hw(self, name: str) -> Tuple[int, int]:
        s = layer_stride(name)
        return max(self.hw[0] // s, 1), max(self.hw[1] // s, 1)

    def features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.memory_format is not None:
            x = x.contiguous(memory_format=self.memory_format)
        with circular_padding(self.model, self.periodic):
            return self.model(x, self.layers)

    # -- pieces per block ------------------------------------------------------------------------

    def _weights(self, mask: Optional[torch.Tensor], block: Block, stride: int) -> Optional[torch.Tensor]:
        return None if mask is None else mask[block.glob(stride)].reshape(-1)

    def block_sums(self, feats, block: Block) -> Dict[tuple, Dict[str, torch.Tensor]]:
        """Moment sums of the block's positions for every style view (moment statistics only)."""
        out = {}
        for (i, n), (m, _) in self.views.items():
            w = self._weights(m, block, layer_stride(n))
            out[(i, n)] = moment_sums(block.core_of(feats[n], n), w, self.stat.needs, mass=False)
        return out

    def style_from_sums(self, sums) -> Tuple[torch.Tensor, Dict[tuple, Dict[str, torch.Tensor]]]:
        """The style term from the whole image's moment sums, and its gradient per sum."""
        if hasattr(self.stat, "view_constants"):
            return self._style_closed_form(sums)
        leaves = {key: {k: v.detach().requires_grad_(True) for k, v in s.items() if k != "mass"}
                  for key, s in sums.items()}
        total = torch.zeros((), device=next(iter(next(iter(sums.values())).values())).device) if sums else torch.zeros(())
        for (i, n), leaf in leaves.items():
            term = self.styles[i]
            mass = self.views[(i, n)][1]
            e = {k: v / mass for k, v in leaf.items()}
            total = total + term.weight * term.layers[n] * self.stat.distance(self.stat.stat(e), term.targets[n])
        style = self.style_weight * total
        flat = [v for leaf in leaves.values() for v in leaf.values()]
        # allow_unused: a statistic that differs per layer may leave some sums of a layer unused.
        grads = torch.autograd.grad(style, flat, allow_unused=True) if flat and style.requires_grad \
            else [None] * len(flat)
        it = iter(grads)
        dsums = {key: {k: g for k in leaf if (g := next(it)) is not None} for key, leaf in leaves.items()}
        return style.detach(), dsums

    def _style_closed_form(self, sums):
        """:meth:`style_from_sums` for the Gram statistic: per view a subtraction and a dot product,
        then one dot product with the views' factors for the total."""
        if not sums:
            return torch.zeros(()), {}
        assert list(sums) == list(self.gram_views), "moment sums in the views' order"
        errors = torch.empty(len(sums), device=self.gram_coef.device)
        dsums = {key: self.stat.squared_error(s, self.gram_views[key], errors[k]) for k, (key, s) in enumerate(sums.items())}
        return torch.dot(errors, self.gram_coef), dsums

    def sliced_style(self, feats, block: Block) -> Tuple[torch.Tensor, Dict[tuple, torch.Tensor]]:
        """The sliced Wasserstein style term of a whole image and its gradient per view."""
        total, grads = torch.zeros((), device=feats[self.deepest].device), {}
        for (i, n), (m, _) in self.views.items():
            term = self.styles[i]
            loss, g = self.stat.loss_and_gradient(feats[n], m, term.targets[n])
            scale = self.style_weight * term.weight * term.layers[n]
            total = total + scale * loss
            if g is not None:
                grads[(i, n)] = g.mul_(scale)
        return total, grads

    def content_value(self, feats, block: Block) -> torch.Tensor:
        total = None
        for n in self.c_layers:
            d, m = self._content_diff(block.core_of(feats[n], n).detach(), block, n)
            value = self.c_scale[n] * (sum_sq(d) if m is None else (d.float().pow(2) * m).sum())
            total = value if total is None else total + value
        return total if total is not None else torch.zeros((), device=feats[self.deepest].device)

    def _content_diff(self, f: torch.Tensor, block: Block, name: str):
        """``(F − T, mask)`` over the block's core, ``f`` being the core's features."""
        s = layer_stride(name)
        t = self.c_targets[name] if block.is_whole() else self.c_targets[name][(...,) + block.glob(s)]
        m = self.c_masks[name]
        m = None if m is None else m[block.glob(s)].reshape(1, 1, *f.shape[-2:]).to(f.dtype)
        return f - t.to(f.dtype), m

    def add_layer_gradient(self, name: str, grad: torch.Tensor, f: torch.Tensor, block: Block, dsums,
                           direct) -> None:
        """``grad`` += the gradient of every term of layer ``name`` over the block's core, whose
        features ``f`` have ``grad``'s shape and layout."""
        s = layer_stride(name)
        if name in self.c_layers:
            d, m = self._content_diff(f, block, name)
            scale = 2.0 * self.c_scale[name]
            grad.add_(d, alpha=scale) if m is None else grad.addcmul_(d, m, value=scale)
        for (i, n), ds in dsums.items():
            if n == name:
                add_moment_gradient(grad, f, self._weights(self.views[(i, n)][0], block, s), ds)
        for (i, n), g in direct.items():
            if n == name:
                grad.add_(g.to(grad.dtype))

    def backward(self, feats, block: Block, dsums, direct, extra: Optional[torch.Tensor] = None) -> None:
        """Run the backward pass of one evaluation: every tapped layer's gradient gets its terms'
        (hooks on all but the deepest layer, which seeds the pass); ``extra`` (a scalar of the same
        graph, e.g. the pixel terms) is differentiated in the same pass."""
        for n in self.layers[:-1]:
            feats[n].register_hook(self._hook(n, feats, block, dsums, direct))
        seed = torch.zeros_like(feats[self.deepest])
        self._add_to(seed, self.deepest, feats, block, dsums, direct)
        outs, grads = [feats[self.deepest]], [seed]
        if extra is not None:
            outs.append(extra)
            grads.append(torch.ones_like(extra))
        torch.autograd.backward(outs, grads)
        feats.clear()   # the hooks hold this dict: emptied, the activations are freed now, not by the GC

    def _add_to(self, grad, name, feats, block, dsums, direct) -> None:
        f = block.core_of(feats[name], name).detach()
        if block.is_whole():
            self.add_layer_gradient(name, grad, f.contiguous(memory_format=_format_of(grad)), block, dsums, direct)
            return
        fmt = _format_of(grad)
        part = torch.zeros_like(f, memory_format=fmt)
        self.add_layer_gradient(name, part, f.contiguous(memory_format=fmt), block, dsums, direct)
        grad[(...,) + block.local(layer_stride(name))] += part

    def _hook(self, name, feats, block, dsums, direct):
        fmt, dtype = _format_of(feats[name]), feats[name].dtype

        def hook(grad: torch.Tensor) -> torch.Tensor:
            # The engine's own buffer (a convolution's backward output) is added to in place; anything
            # unusual (another layout or dtype, a view) gets a fresh copy.
            own = grad.dtype == dtype and grad.is_contiguous(memory_format=fmt) and grad._base is None
            out = grad if own else grad.to(dtype).clone(memory_format=fmt)
            self._add_to(out, name, feats, block, dsums, direct)
            return out if own else out.to(grad.dtype)
        return hook

    # -- a whole image ---------------------------------------------------------------------------

    def evaluate(self, x: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The gradient at ``x`` and the loss terms (detached scalars)."""
        x = x.detach().requires_grad_(True)
        pixel = self.pixel(x)
        feats = self.features(x)
        block = whole(self.hw)
        if isinstance(self.stat, SlicedW):
            style, direct, dsums = *self.sliced_style(feats, block), {}
        else:
            (style, dsums), direct = self.style_from_sums(self.block_sums(feats, block)), {}
        content = self.content_value(feats, block)
        self.backward(feats, block, dsums, direct, extra=functools.reduce(operator.add, pixel.values()))
        return x.grad, finish_terms(content, style, pixel)


def finish_terms(content, style, pixel) -> Dict[str, torch.Tensor]:
    terms = {"content": content.detach(), "style": style.detach()}
    terms.update({k: v.detach() for k, v in pixel.items()})
    return stacked_terms(terms)


def _format_of(t: torch.Tensor):
    nhwc = as_matrix(t)[1]
    return torch.channels_last if nhwc else torch.contiguous_format
