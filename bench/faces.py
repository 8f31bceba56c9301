"""Faces in an image, for the quality benchmark: did a painting's face end up in a photo?

MTCNN (Zhang et al. 2016) from facenet-pytorch, whose weights ship in its wheel. A benchmark tool,
not a dependency of the pack; install it without its dependencies (they pin an old torch):

    pip install --no-deps facenet-pytorch==2.6.0

Its code imports torchvision for one operator, batched non-maximum suppression, which this CPU
torch's torchvision cannot load; :func:`batched_nms` below stands in for it during the import.

    python bench/faces.py IMAGE [IMAGE ...]      # prints the faces found in each image
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

MIN_FACE = 20          # px: MTCNN's own default smallest face
MIN_PROB = 0.95        # a face counts from this probability on (MTCNN's last stage keeps >= 0.7)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> torch.Tensor:
    """Indices of the boxes ``[N, 4]`` (x0, y0, x1, y1) kept by greedy suppression, best score first."""
    order = scores.argsort(descending=True)
    area = (boxes[:, 2] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 1]).clamp_min(0)
    keep = []
    while order.numel():
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        lo = torch.maximum(boxes[rest, :2], boxes[i, :2])
        hi = torch.minimum(boxes[rest, 2:], boxes[i, 2:])
        inter = (hi - lo).clamp_min(0).prod(1)
        overlap = inter / (area[rest] + area[i] - inter).clamp_min(1e-12)
        order = rest[overlap <= iou]
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou: float) -> torch.Tensor:
    """torchvision's batched_nms: suppression within each index only (boxes of other groups are
    shifted apart so they never overlap)."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    shift = idxs.to(boxes.dtype)[:, None] * (boxes.max() + 1)
    return nms(boxes + shift, scores, iou)


def _import_mtcnn():
    """facenet_pytorch's MTCNN class, imported with stand-ins for the torchvision pieces it names."""
    saved = {k: sys.modules.get(k) for k in ("torchvision", "torchvision.transforms",
                                             "torchvision.transforms.functional", "torchvision.ops",
                                             "torchvision.ops.boxes")}
    tv = types.ModuleType("torchvision")
    transforms, functional = types.ModuleType("torchvision.transforms"), types.ModuleType("torchvision.transforms.functional")
    functional.to_tensor = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32)).permute(2, 0, 1) / 255.0
    transforms.functional = functional
    ops, boxes = types.ModuleType("torchvision.ops"), types.ModuleType("torchvision.ops.boxes")
    boxes.batched_nms = batched_nms
    ops.boxes = boxes
    tv.transforms, tv.ops = transforms, ops
    sys.modules.update({"torchvision": tv, "torchvision.transforms": transforms,
                        "torchvision.transforms.functional": functional, "torchvision.ops": ops,
                        "torchvision.ops.boxes": boxes})
    try:
        from facenet_pytorch.models.mtcnn import MTCNN
    except ImportError as e:
        raise SystemExit(f"{e}: the face check needs `pip install --no-deps facenet-pytorch==2.6.0`") from e
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return MTCNN


class FaceDetector:
    """Faces of an RGB image: ``[(probability, (x0, y0, x1, y1)), ...]`` at or above ``min_prob``."""

    def __init__(self, min_prob: float = MIN_PROB, min_face: int = MIN_FACE):
        self.min_prob = min_prob
        self.mtcnn = _import_mtcnn()(keep_all=True, min_face_size=min_face, device="cpu")

    def __call__(self, image) -> List[Tuple[float, Tuple[float, float, float, float]]]:
        """``image``: a PIL image, a path, or an ``[1, 3, H, W]`` 0..1 tensor."""
        from PIL import Image
        if isinstance(image, (str, Path)):
            with Image.open(image) as im:
                image = im.convert("RGB")
        elif isinstance(image, torch.Tensor):
            arr = (image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
            image = Image.fromarray(arr)
        with torch.no_grad():
            boxes, probs = self.mtcnn.detect(image.convert("RGB"))
        if boxes is None:
            return []
        return [(float(p), tuple(float(v) for v in b)) for b, p in zip(boxes, probs) if p >= self.min_prob]

    def count(self, image) -> int:
        return len(self(image))


_DETECTOR: Optional[FaceDetector] = None


def detector() -> FaceDetector:
    global _DETECTOR
    if _DETECTOR is None:
        _DETECTOR = FaceDetector()
    return _DETECTOR


def main(argv=None) -> int:
    paths = (argv if argv is not None else sys.argv[1:])
    if not paths:
        print(__doc__)
        return 2
    det = detector()
    for p in paths:
        faces = det(p)
        print(f"{p}: {len(faces)} face(s)" + "".join(
            f"\n  p={prob:.3f} box=({', '.join(f'{v:.0f}' for v in box)})" for prob, box in faces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
