"""The face check's stand-in for torchvision's batched non-maximum suppression (bench/faces.py)."""
import sys

import torch

from testlib import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import faces  # noqa: E402


def _iou(a, b):
    lo, hi = torch.maximum(a[:2], b[:2]), torch.minimum(a[2:], b[2:])
    inter = float((hi - lo).clamp_min(0).prod())
    area = lambda x: float((x[2:] - x[:2]).prod())  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_nms_keeps_the_best_of_overlapping_boxes_and_every_separate_one():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9.0]])
    scores = torch.tensor([0.8, 0.9, 0.5, 0.7])
    assert faces.nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert faces.nms(boxes, scores, 0.95).tolist() == [1, 0, 3, 2]


def test_batched_nms_suppresses_only_within_a_group():
    torch.manual_seed(0)
    xy = torch.rand(40, 2) * 50
    boxes = torch.cat([xy, xy + 10 + torch.rand(40, 2) * 20], 1)
    scores, groups = torch.rand(40), torch.randint(0, 3, (40,))
    keep = faces.batched_nms(boxes, scores, groups, 0.4)
    # brute force: greedy per group, best first
    want = []
    for g in range(3):
        kept = []
        for i in sorted((i for i in range(40) if groups[i] == g), key=lambda i: -float(scores[i])):
            if all(_iou(boxes[i], boxes[k]) <= 0.4 for k in kept):
                kept.append(i)
        want += kept
    assert sorted(keep.tolist()) == sorted(want)
