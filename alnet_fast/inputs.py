"""Input coercion: anything a user may pass -> normalised float32 tensors [C, H, W] in the config's channels."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import ALNetConfig
from .io import pil_to_array, read_image

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's "L" conversion


def split_batch(img) -> tuple[list, bool]:
    """(items, batched): a list/tuple or an [N, C, H, W] tensor is a batch of N items; anything else is one."""
    if isinstance(img, (list, tuple)):
        if len(img) == 0:
            raise ValueError("empty list of images")
        return list(img), True
    if isinstance(img, torch.Tensor) and img.dim() == 4:
        if img.shape[0] == 0:
            raise ValueError("empty batch: tensor of shape " + str(tuple(img.shape)))
        return list(img.unbind(0)), True
    return [img], False


def to_chw(item) -> tuple[torch.Tensor, float]:
    """One image as a float32 CPU tensor [C, H, W] of raw values, and the maximum of its original dtype.

    Accepts a path, a PIL image, a numpy [H, W] or [H, W, C] array, or a torch [H, W] or [C, H, W] tensor.
    """
    if isinstance(item, (str, os.PathLike)):
        item = read_image(Path(item))
    elif isinstance(item, Image.Image):
        item = pil_to_array(item)
    if isinstance(item, np.ndarray):
        dtype_max, is_integer_source = _dtype_max(item.dtype), item.dtype.kind in "uib"
        if item.ndim == 2:
            item = item[:, :, None]
        elif item.ndim != 3:
            raise ValueError(f"numpy image must be [H, W] or [H, W, C], got shape {item.shape}")
        if item.shape[-1] > 4:
            raise ValueError(f"numpy image [H, W, C] has C={item.shape[-1]} channels; expected 1 to 4 "
                             "(a channels-first array? pass a torch tensor [C, H, W])")
        tensor = torch.from_numpy(np.ascontiguousarray(item, dtype=np.float32)).permute(2, 0, 1)
    elif isinstance(item, torch.Tensor):
        if item.dim() not in (2, 3):
            raise ValueError(f"tensor image must be [H, W], [C, H, W] or [N, C, H, W], got shape "
                             f"{tuple(item.shape)}")
        dtype_max, is_integer_source = _dtype_max(item.dtype), not item.dtype.is_floating_point
        tensor = item.detach().to("cpu", torch.float32)
        tensor = tensor[None] if tensor.dim() == 2 else tensor
    else:
        raise TypeError(f"unsupported image type {type(item).__name__}; pass a path, PIL image, numpy array "
                        "or torch tensor (or a list of these)")
    if tensor.numel() == 0:
        raise ValueError(f"empty image of shape {tuple(tensor.shape)} (C, H, W)")
    if not is_integer_source and not all_finite(tensor):  # integers are finite in float32
        raise ValueError("image contains NaN or Inf values")
    return tensor, dtype_max


def all_finite(x: torch.Tensor) -> bool:
    """Whether no value of x is NaN or +-Inf: min and max propagate NaN and reach any infinity, so one reduction
    without a mask the size of the image tells."""
    lo, hi = torch.aminmax(x)
    return bool(torch.isfinite(lo) and torch.isfinite(hi))


def _dtype_max(dtype) -> float:
    """The value that maps to 1.0 under "dtype" scaling; TypeError for dtypes that are not images."""
    if isinstance(dtype, torch.dtype):
        if dtype.is_complex or dtype in (torch.bool,) or not (dtype.is_floating_point or _is_int(dtype)):
            raise TypeError(f"unsupported image dtype {dtype}")
        return 1.0 if dtype.is_floating_point else float(torch.iinfo(dtype).max)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return 1.0
    if dtype.kind in "ui":
        return float(np.iinfo(dtype).max)
    if dtype.kind == "f":
        return 1.0
    raise TypeError(f"unsupported image dtype {dtype}; expected unsigned/signed integers, bool or floats")


def _is_int(dtype: torch.dtype) -> bool:
    try:
        torch.iinfo(dtype)
        return True
    except TypeError:
        return False


def adapt_channels(x: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Gray <-> RGB and alpha dropping to reach the model's channels. x: [C, H, W] -> [in_channels, H, W]."""
    c = x.shape[0]
    if c in (2, 4) and c != in_channels:  # LA -> L, RGBA -> RGB: drop alpha
        x, c = x[:-1], c - 1
    if c == in_channels:
        return x
    if c == 3 and in_channels == 1:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype)
        return (x * weights[:, None, None]).sum(0, keepdim=True)
    if c == 1 and in_channels == 3:
        return x.expand(3, -1, -1)
    raise ValueError(f"image has {c} channels; the model expects {in_channels}")


STATISTICS_SAMPLE = 1 << 22  # values the minmax/percentile statistics are computed on, at most


def statistics_stride(channels: int, h: int, w: int) -> int:
    """Row and column stride of the sample scaling statistics come from: 1 up to STATISTICS_SAMPLE values,
    so that a regular grid of about that many pixels is used beyond (alnet_fast.wsi reads the same grid)."""
    return max(1, math.ceil(math.sqrt(channels * h * w / STATISTICS_SAMPLE)))


def scaling_bounds(x: torch.Tensor, dtype_max: float, config: ALNetConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw values that map to 0 and 1 under config.scaling, from x [C, H, W] (model channels) or a
    strided sample of it: (0, dtype max), the sample's min..max, or its ``percentiles``."""
    if config.scaling == "dtype":
        return torch.tensor(0.0), torch.tensor(float(dtype_max))
    if config.scaling == "minmax":
        return x.min(), x.max()
    q = torch.tensor([p / 100.0 for p in config.percentiles], dtype=torch.float64)
    lo, hi = quantiles(x, q).float()
    return lo, hi


def quantiles(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``torch.quantile(x.reshape(-1).double(), q)`` bit for bit (linear interpolation between the two order
    statistics around rank q * (n - 1)), found by selection (np.partition, O(n)) instead of torch's full sort,
    which took most of an image's preprocessing. x: finite CPU float values, any shape; q: [Q] float64 in [0, 1]
    -> [Q] float64."""
    values = x.detach().reshape(-1).numpy()
    ranks = q * (values.size - 1)
    below, above = ranks.floor().long(), ranks.ceil().long()
    kth = np.unique(torch.cat([below, above]).numpy())
    ordered = np.partition(values, kth)  # ordered[k] is the k-th smallest for every k in kth
    values_below = torch.from_numpy(ordered[below.numpy()]).double()
    values_above = torch.from_numpy(ordered[above.numpy()]).double()
    return values_below.lerp(values_above, ranks - below)


def normalise(x: torch.Tensor, dtype_max: float, config: ALNetConfig,
              bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Raw [C, H, W] -> the network's input [in_channels, H, W]: channel adaptation, scaling to about [0, 1]
    (between ``bounds``, by default those of the image's own statistics sample), then mean/std."""
    x = adapt_channels(x, config.in_channels)
    if bounds is None:
        stride = statistics_stride(*x.shape)
        bounds = scaling_bounds(x[:, ::stride, ::stride], dtype_max, config)
    lo, hi = bounds
    x = (x - lo).div_(torch.clamp(hi - lo, min=1e-12))  # one new tensor, then in place: one image-sized copy
    if config.scaling == "percentile":
        x.clamp_(0.0, 1.0)
    mean = torch.tensor(config.mean, dtype=torch.float32).expand(config.in_channels)
    std = torch.tensor(config.std, dtype=torch.float32).expand(config.in_channels)
    return x.sub_(mean[:, None, None]).div_(std[:, None, None])


def prepare_image(item, config: ALNetConfig) -> torch.Tensor:
    """Any single image -> normalised float32 [in_channels, H, W] on CPU."""
    tensor, dtype_max = to_chw(item)
    return normalise(tensor, dtype_max, config)
