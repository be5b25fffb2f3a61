"""Segmentation metrics on binary masks (the paper's Eq. 7-8): Dice, IoU, pixel accuracy.

Masks are numpy or torch arrays of the same shape [H, W] (any shape works); nonzero is foreground.
When prediction and truth are both empty, Dice and IoU are 1 (perfect agreement), not 0/0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

METRICS = ("dice", "iou", "accuracy")


def _as_bool(mask) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.dtype.kind not in "biuf":
        raise TypeError(f"a mask must hold numbers or booleans, got dtype {mask.dtype}")
    return mask != 0


def confusion(pred, truth) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) pixel counts of two masks of the same shape."""
    p, g = _as_bool(pred), _as_bool(truth)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} masks differ in shape")
    if p.size == 0:
        raise ValueError("empty masks")
    tp = int(np.count_nonzero(p & g))
    fp = int(np.count_nonzero(p & ~g))
    fn = int(np.count_nonzero(~p & g))
    return tp, fp, fn, p.size - tp - fp - fn


def metrics_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """{"dice", "iou", "accuracy"} from confusion counts."""
    errors = fp + fn
    return {"dice": 1.0 if tp + errors == 0 else 2 * tp / (2 * tp + errors),
            "iou": 1.0 if tp + errors == 0 else tp / (tp + errors),
            "accuracy": (tp + tn) / (tp + errors + tn)}


def dice(pred, truth) -> float:
    """2 TP / (2 TP + FP + FN)."""
    return metrics_from_counts(*confusion(pred, truth))["dice"]


def iou(pred, truth) -> float:
    """TP / (TP + FP + FN) (Jaccard)."""
    return metrics_from_counts(*confusion(pred, truth))["iou"]


def pixel_accuracy(pred, truth) -> float:
    """(TP + TN) / all pixels."""
    return metrics_from_counts(*confusion(pred, truth))["accuracy"]


def image_metrics(pred, truth) -> dict[str, float]:
    """{"dice", "iou", "accuracy"} for one image."""
    return metrics_from_counts(*confusion(pred, truth))


@dataclass(frozen=True)
class Summary:
    """Per-image metric values, their mean and (population) standard deviation, and ``pooled``: the metrics
    of all pixels of all images counted together (for the slices of one volume: the volume's Dice)."""

    per_image: list[dict[str, float]]
    mean: dict[str, float]
    std: dict[str, float]
    pooled: dict[str, float]

    def format(self) -> str:
        return ", ".join(f"{m} {self.mean[m]:.4f} ± {self.std[m]:.4f}" for m in METRICS)


def summarise(preds, truths) -> Summary:
    """Metrics of each (prediction, truth) pair and their mean ± std over the images."""
    preds, truths = list(preds), list(truths)
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predictions for {len(truths)} ground-truth masks")
    if not preds:
        raise ValueError("no images to evaluate")
    counts = np.array([confusion(p, g) for p, g in zip(preds, truths)], dtype=np.int64)
    per_image = [metrics_from_counts(*row) for row in counts.tolist()]
    values = {m: np.array([r[m] for r in per_image]) for m in METRICS}
    return Summary(per_image, {m: float(v.mean()) for m, v in values.items()},
                   {m: float(v.std()) for m, v in values.items()}, metrics_from_counts(*counts.sum(0).tolist()))
