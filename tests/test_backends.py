"""Backend registry and the shared argument checks of the op table."""

import pytest
import torch

from alnet_fast import BackendUnavailable
from alnet_fast.backends import OP_NAMES, OpTable, get_backend, select_backend
from alnet_fast.backends.torch_ops import TorchOps


def test_auto_on_cpu_picks_a_backend_and_says_why():
    ops, why = select_backend("auto", "cpu")
    assert isinstance(ops, OpTable) and why.startswith(ops.name) and "auto on cpu" in why


def test_explicit_backend_that_cannot_run_says_why():
    with pytest.raises(BackendUnavailable, match="unknown backend 'nope'"):
        get_backend("nope", "cpu")
    with pytest.raises(BackendUnavailable, match="not on 'meta'"):
        get_backend("torch", "meta")


def test_every_op_is_overridden_by_the_torch_backend():
    for name in OP_NAMES:
        assert getattr(TorchOps, f"_{name}") is not getattr(OpTable, f"_{name}"), name


@pytest.mark.parametrize("call,error,match", [
    (lambda o: o.conv3x3_bias_relu(torch.zeros(3, 8, 8), torch.zeros(4, 3, 3, 3), torch.zeros(4)),
     ValueError, "rank 4"),
    (lambda o: o.conv3x3_bias_relu(torch.zeros(1, 3, 8, 8, dtype=torch.float64), torch.zeros(4, 3, 3, 3),
                                   torch.zeros(4)), TypeError, "float64"),
    (lambda o: o.conv3x3_bias_relu(torch.zeros(1, 3, 8, 8), torch.zeros(4, 3, 5, 5), torch.zeros(4)),
     ValueError, "3x3"),
    (lambda o: o.conv3x3_bias_relu(torch.zeros(1, 5, 8, 8), torch.zeros(4, 3, 3, 3), torch.zeros(4)),
     ValueError, "input channels"),
    (lambda o: o.conv3x3_bias_relu(torch.zeros(1, 3, 8, 8), torch.zeros(4, 3, 3, 3), torch.zeros(5)),
     ValueError, "bias"),
    (lambda o: o.conv3x3_bias_relu(torch.zeros(1, 3, 8, 8), torch.zeros(4, 3, 3, 3), torch.zeros(4), stride=3),
     ValueError, "stride"),
    (lambda o: o.conv3x3_bias_relu(torch.zeros(1, 3, 8, 8), torch.zeros(4, 3, 3, 3, device="meta"),
                                   torch.zeros(4)), ValueError, "different devices"),
    (lambda o: o.conv1x1_bias_relu(torch.zeros(1, 3, 8, 8), torch.zeros(4, 3, 3, 3), torch.zeros(4)),
     ValueError, "1x1"),
    (lambda o: o.lraspp_gate(torch.zeros(1, 3, 8, 8), torch.zeros(4, 3, 1, 1), torch.zeros(4),
                             torch.zeros(5, 3, 1, 1), torch.zeros(5)), ValueError, "must match"),
    (lambda o: o.upsample_add(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 8, 8)), ValueError, "channels"),
    (lambda o: o.resize_bilinear(torch.zeros(1, 3, 4, 4), (0, 5)), ValueError, "positive"),
    (lambda o: o.conv3x3_bias_relu(torch.zeros(1, 3, 0, 8), torch.zeros(4, 3, 3, 3), torch.zeros(4)),
     ValueError, "empty"),
])
def test_bad_op_arguments_raise_typed_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(TorchOps())
