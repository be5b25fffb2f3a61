"""Folding: the single-branch model reproduces the multi-branch model in eval mode."""

import copy

import pytest
import torch

from alnet_fast import ALNetConfig, reparameterize
from alnet_fast.reparam import fold_repvgg_block
from alnet_fast.model import RepVGGBlock
from alnet_fast.testing import randomize_batchnorm, random_alnet


def assert_fp32_parity(out: torch.Tensor, ref: torch.Tensor) -> None:
    # fp32, folded vs three summed branches: only the accumulation order differs (22 conv layers deep);
    # the bound max|diff| <= 1e-5 * max|ref| + 1e-6 leaves ~100x room over the observed error.
    bound = 1e-5 * ref.abs().max().item() + 1e-6
    assert (out - ref).abs().max().item() <= bound


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 97, 131), (3, 3, 32, 160), (1, 3, 45, 37)])
def test_folded_matches_multibranch(shape):
    model = random_alnet(seed=sum(shape))
    folded = reparameterize(model)
    x = torch.randn(shape)
    with torch.no_grad():
        assert_fp32_parity(folded(x), model(x))


def test_folded_matches_multibranch_gray_multiclass():
    model = random_alnet(ALNetConfig(in_channels=1, num_classes=4, widths=(16, 16, 32, 64, 128),
                                     depths=(1, 2, 2, 3, 1), context_channels=32, decoder_channels=32), seed=3)
    x = torch.randn(2, 1, 70, 50)
    with torch.no_grad():
        assert_fp32_parity(reparameterize(model)(x), model(x))


@pytest.mark.parametrize("cin,cout,stride", [(8, 8, 1), (8, 8, 2), (8, 16, 1), (3, 16, 2)])
def test_block_folding_in_float64(cin, cout, stride):
    block = randomize_batchnorm(RepVGGBlock(cin, cout, stride)).eval().double()
    weight, bias = fold_repvgg_block(block)
    x = torch.randn(2, cin, 11, 9, dtype=torch.float64)
    with torch.no_grad():
        ref = block(x)
        out = torch.relu(torch.nn.functional.conv2d(x, weight, bias, stride=stride, padding=1))
    # float64 end to end: only rounding of a ~100-term sum separates the two.
    assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_refuses_training_mode_and_leaves_model_untouched():
    model = random_alnet(seed=1)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="training mode"):
        reparameterize(copy.deepcopy(model).train())
    reparameterize(model)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_rejects_non_alnet():
    with pytest.raises(TypeError, match="ALNet"):
        reparameterize(torch.nn.Conv2d(3, 3, 3))


def test_folded_dtype():
    folded = reparameterize(random_alnet(seed=2), dtype=torch.float16)
    assert {p.dtype for p in folded.parameters()} == {torch.float16}
