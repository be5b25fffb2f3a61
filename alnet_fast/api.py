"""``alnet_fast.load``: checkpoint or model in, ready-to-run Segmenter out."""

from __future__ import annotations

import copy
import os

import torch

from .backends import as_device, select_backend
from .backends.triton import check_input_precision
from .checkpoint import load_model
from .config import ALNetConfig
from .errors import BackendUnavailable
from .graph import FoldedALNet
from .model import ALNet
from .reparam import reparameterize
from .segment import Segmenter


# dtypes by the names the CLI and segment_dataset take; "auto" is default_dtype's choice for the device
DTYPES = {"auto": None, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """fp16 on CUDA (tensor cores), fp32 elsewhere."""
    return torch.float16 if device.type == "cuda" else torch.float32


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A torch dtype from a dtype or one of DTYPES' names; None for None or "auto" (the device's default)."""
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; known: {sorted(DTYPES)}")
        return DTYPES[dtype]
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype or one of {sorted(DTYPES)}, got {type(dtype).__name__}")
    return dtype


@torch.inference_mode(False)  # weights built under a caller's inference_mode would be inference tensors, whose
# lack of a version counter makes the native backend repack them on every call
def load(source: str | os.PathLike | ALNet | FoldedALNet, backend: str = "auto",
         device: str | torch.device | None = None, fold: bool = True, dtype: torch.dtype | str | None = None,
         config: ALNetConfig | None = None, batch_size: int = 4, cuda_graphs: bool | None = None,
         input_precision: str = "tf32") -> Segmenter:
    """A Segmenter for ``source``: a checkpoint path (safetensors, or .pt/.pth state_dict with ``config``),
    a bundled model's name, or an in-memory ALNet / FoldedALNet (never modified).

    fold: reparameterize a multi-branch model (default); ``fold=False`` runs the multi-branch model
    itself on PyTorch ops, the reference. backend: "auto", "torch", or another registered backend;
    one that cannot run on ``device`` raises BackendUnavailable with the reason.

    dtype: a torch dtype or its name ("float32", "float16", "bfloat16"); None or "auto" means fp16 on CUDA
    (tensor cores) and fp32 on CPU. input_precision: for fp32 on the
    Triton backend, "tf32" (default, tensor cores) or "ieee" (exact fp32). cuda_graphs: capture each
    input shape's forward as a CUDA graph and replay it; None means on for CUDA, False turns it off.
    """
    if isinstance(source, (ALNet, FoldedALNet)):
        if config is not None and config != source.config:
            raise ValueError(f"config {config} does not match the model's config {source.config}")
        model = copy.deepcopy(source).eval()
    elif isinstance(source, (str, os.PathLike)):
        model = load_model(source, config)
    else:
        raise TypeError(f"load expects a checkpoint path, a bundled model name or an ALNet, "
                        f"got {type(source).__name__}")
    check_input_precision(input_precision)
    device = as_device(device) if device is not None else default_device()
    dtype = as_dtype(dtype)
    dtype = dtype if dtype is not None else default_dtype(device)
    cuda_graphs = cuda_graphs if cuda_graphs is not None else device.type == "cuda"
    if isinstance(model, ALNet):
        if fold:
            model = reparameterize(model)
        elif backend not in ("auto", "torch"):
            raise BackendUnavailable(f"the multi-branch model (fold=False) runs on the torch backend only, "
                                     f"not {backend!r}")
        else:
            backend = "torch"
    ops, reason = select_backend(backend, device, dtype)
    if hasattr(ops, "input_precision"):  # the Triton backend's tl.dot precision for fp32
        ops.input_precision = input_precision
    model = ops.prepare(model.to(device=device, dtype=dtype))
    return Segmenter(model, ops, reason, device, dtype, batch_size, cuda_graphs)
