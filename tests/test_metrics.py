"""Dice, IoU and pixel accuracy on masks whose confusion counts are known."""

import numpy as np
import pytest
import torch

from alnet_fast.train.metrics import confusion, dice, image_metrics, iou, pixel_accuracy, summarise

# 4 x 4 masks: TP = 3, FP = 1, FN = 2, TN = 10.
TRUTH = np.array([[1, 1, 1, 0],
                  [1, 1, 0, 0],
                  [0, 0, 0, 0],
                  [0, 0, 0, 0]], dtype=np.uint8)
PRED = np.array([[1, 1, 0, 1],
                 [1, 0, 0, 0],
                 [0, 0, 0, 0],
                 [0, 0, 0, 0]], dtype=np.uint8)


def test_confusion_counts():
    assert confusion(PRED, TRUTH) == (3, 1, 2, 10)


def test_known_values():
    assert dice(PRED, TRUTH) == pytest.approx(6 / 9)      # 2 TP / (2 TP + FP + FN)
    assert iou(PRED, TRUTH) == pytest.approx(3 / 6)       # TP / (TP + FP + FN)
    assert pixel_accuracy(PRED, TRUTH) == pytest.approx(13 / 16)


def test_accepts_bool_255_and_torch_masks():
    expected = image_metrics(PRED, TRUTH)
    assert image_metrics(PRED.astype(bool) * 255, torch.from_numpy(TRUTH).bool()) == expected


def test_perfect_and_disjoint_and_empty():
    assert dice(TRUTH, TRUTH) == 1.0 and iou(TRUTH, TRUTH) == 1.0
    assert dice(1 - TRUTH, TRUTH) == 0.0 and pixel_accuracy(1 - TRUTH, TRUTH) == 0.0
    empty = np.zeros((3, 3))
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0  # nothing to find, nothing found


def test_summary_mean_and_std():
    summary = summarise([TRUTH, 1 - TRUTH], [TRUTH, TRUTH])  # Dice 1 and 0
    assert summary.mean["dice"] == pytest.approx(0.5) and summary.std["dice"] == pytest.approx(0.5)
    assert [row["dice"] for row in summary.per_image] == [1.0, 0.0]
    assert "dice 0.5000 ± 0.5000" in summary.format()
    # Pooled counts: TP 5 + 0, FP 0 + 11, FN 0 + 5, TN 11 + 0 -> Dice 10 / 26, IoU 5 / 21, accuracy 16 / 32.
    assert summary.pooled == pytest.approx({"dice": 10 / 26, "iou": 5 / 21, "accuracy": 16 / 32})


def test_bad_input_errors():
    with pytest.raises(ValueError, match="differ in shape"):
        dice(PRED, TRUTH[:3])
    with pytest.raises(TypeError, match="dtype"):
        dice(np.array(["a"]), np.array(["b"]))
    with pytest.raises(ValueError, match="2 predictions for 1"):
        summarise([PRED, PRED], [TRUTH])
    with pytest.raises(ValueError, match="no images"):
        summarise([], [])
