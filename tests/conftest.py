"""Shared test setup.

Without a CUDA device, Triton kernels run through the interpreter: TRITON_INTERPRET=1 must be set
before triton is first imported, so it is set here, at collection start.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is visible")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
