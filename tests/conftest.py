"""Shared test setup.

Without a CUDA device, Triton kernels run through the interpreter: TRITON_INTERPRET=1 must be set
before triton is first imported, so it is set here, at collection start.

CPU convs take the fixed kernel rule (ALNET_FAST_KERNEL_CHOICE=rule), not a timing: every run of the suite runs
the same kernels on every machine (the Winograd tests test Winograd). tests/test_kernel_choice.py measures;
``ALNET_FAST_KERNEL_CHOICE=measure pytest`` runs everything on measured choices.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("ALNET_FAST_KERNEL_CHOICE", "rule")

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is visible")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


from alnet_fast.backends.native.extension import ISA_LEVELS  # noqa: E402


def _supported_isas() -> list[str]:
    from alnet_fast.backends import native

    module = native.cpu_module()
    if module is None:
        return []
    detected = module.build_info()["isa_detected"]
    return list(ISA_LEVELS[: ISA_LEVELS.index(detected) + 1])


@pytest.fixture(params=_supported_isas())
def isa(request):
    """Runs the test with the native CPU kernels dispatched to one SIMD level (each one this CPU has), then
    restores the detected one."""
    from alnet_fast.backends import native

    module = native.cpu_module()
    detected = module.build_info()["isa_detected"]
    module.set_active_isa(request.param)
    yield request.param
    module.set_active_isa(detected)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small random one-channel AL-Net saved as a checkpoint, for the command-line and scale-out tests."""
    import alnet_fast

    config = alnet_fast.ALNetConfig(in_channels=1, widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1, 1),
                                    context_channels=16, decoder_channels=16)
    path = tmp_path_factory.mktemp("model") / "small.safetensors"
    alnet_fast.save(alnet_fast.ALNet(config).eval(), path)
    return path
