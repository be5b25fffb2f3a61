"""Training losses against values computed by hand (see the comments for the arithmetic)."""

import math

import pytest
import torch

from alnet_fast.train.losses import (bce_dice_loss, branch_error, self_adjusting_loss, self_adjusting_weights,
                                     soft_dice_loss)

# Float64 throughout: the hand values are exact to ~1e-15, so 1e-9 only absorbs libm rounding.
TOL = 1e-9


def logits_of(probs):
    p = torch.tensor(probs, dtype=torch.float64)
    return torch.log(p / (1 - p)).reshape(1, 1, 2, 2)


TARGET = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64).reshape(1, 1, 2, 2)
MAIN = logits_of([0.8, 0.2, 0.6, 0.4])   # |p - g| = 0.2, 0.2, 0.4, 0.4
CLOSE = logits_of([0.9, 0.1, 0.9, 0.1])  # |p - g| = 0.1 everywhere

# Soft Dice with smoothing 1: sum(pg) = 0.8 + 0.6 = 1.4, sum(p) = 2.0, sum(g) = 2 -> (2.8 + 1) / (4 + 1) = 0.76.
MAIN_DICE_LOSS = 1 - 3.8 / 5
# BCE: -mean(ln 0.8, ln 0.8, ln 0.6, ln 0.6).
MAIN_BCE = -(math.log(0.8) + math.log(0.6)) / 2
# CLOSE: sum(pg) = 1.8, sum(p) = 2.0 -> Dice (3.6 + 1) / 5 = 0.92; BCE -ln 0.9.
CLOSE_LOSS = (1 - 4.6 / 5) - math.log(0.9)


def test_soft_dice_loss_matches_hand_value():
    assert soft_dice_loss(MAIN, TARGET).item() == pytest.approx(MAIN_DICE_LOSS, abs=TOL)


def test_soft_dice_loss_averages_per_image_not_per_batch():
    # Image 2 is CLOSE: the batch loss is the mean of the two per-image losses.
    batch = soft_dice_loss(torch.cat([MAIN, CLOSE]), torch.cat([TARGET, TARGET]))
    assert batch.item() == pytest.approx((MAIN_DICE_LOSS + (1 - 4.6 / 5)) / 2, abs=TOL)


def test_bce_dice_loss_is_eq4_sum():
    assert bce_dice_loss(MAIN, TARGET).item() == pytest.approx(MAIN_BCE + MAIN_DICE_LOSS, abs=TOL)


def test_empty_prediction_on_empty_target_is_nearly_free():
    logits = torch.full((1, 1, 4, 4), -30.0, dtype=torch.float64)
    assert soft_dice_loss(logits, torch.zeros_like(logits)).item() == pytest.approx(0.0, abs=1e-9)


def test_branch_error_is_mean_absolute_error():
    assert branch_error(MAIN, TARGET).item() == pytest.approx(0.3, abs=TOL)  # (0.2 + 0.2 + 0.4 + 0.4) / 4
    assert branch_error(CLOSE, TARGET).item() == pytest.approx(0.1, abs=TOL)


def test_self_adjusting_weights():
    w = self_adjusting_weights(torch.tensor([0.1, 0.3], dtype=torch.float64))
    assert w.tolist() == pytest.approx([0.25, 0.75], abs=TOL)
    assert self_adjusting_weights(torch.zeros(2)).tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match=">= 0"):
        self_adjusting_weights(torch.tensor([0.1, -0.1]))
    with pytest.raises(ValueError, match="1-D"):
        self_adjusting_weights(torch.zeros(0))


def test_self_adjusting_loss_matches_hand_value():
    # errors: low 0.3 (MAIN), context 0.1 (CLOSE) -> weights 0.75, 0.25; the worse branch weighs more.
    loss, weights = self_adjusting_loss(MAIN, {"low": MAIN, "context": CLOSE}, TARGET)
    assert weights == pytest.approx({"low": 0.75, "context": 0.25}, abs=TOL)
    main = MAIN_BCE + MAIN_DICE_LOSS
    assert loss.item() == pytest.approx(main + 0.75 * main + 0.25 * CLOSE_LOSS, abs=TOL)


def test_self_adjusting_weights_carry_no_gradient():
    main = MAIN.clone().requires_grad_()
    low = MAIN.clone().requires_grad_()
    loss, _ = self_adjusting_loss(main, {"low": low, "context": CLOSE}, TARGET)
    loss.backward()
    # d loss / d low = 0.75 * d L(low) / d low: the weight is a constant, not differentiated.
    ref = MAIN.clone().requires_grad_()
    (0.75 * bce_dice_loss(ref, TARGET)).backward()
    torch.testing.assert_close(low.grad, ref.grad, rtol=0, atol=1e-12)


def test_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        bce_dice_loss(MAIN, TARGET[..., :1])
    with pytest.raises(ValueError, match="at least one branch"):
        self_adjusting_loss(MAIN, {}, TARGET)
