"""The benchmark workload: the model, real inputs at the paper's sizes, and the reference logits."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

import alnet_fast
from alnet_fast.checkpoint import load_model
from alnet_fast.graph import count_parameters
from alnet_fast.inputs import prepare_image
from alnet_fast.outputs import pad_to_multiple
from alnet_fast.testing import random_alnet

# (H, W): the paper's two input sizes. Inputs are padded to multiples of 32 exactly as the Segmenter
# pads them (605x700 runs as 608x704), so every entry, peers included, computes the same function.
SIZES = {"512x512": (512, 512), "605x700": (605, 700)}
BATCHES = (1, 8)
BENCH_MODEL = "nuclei"  # the bundled real model; a random default model stands in when it is absent


def _bundled_sample() -> np.ndarray | None:
    from alnet_fast.io import read_image

    samples = sorted((alnet_fast.checkpoint.BUNDLED_DIR.parent / "data").glob("*.tif"))
    return read_image(samples[0]) if samples else None


@lru_cache(maxsize=None)
def bench_model() -> alnet_fast.ALNet:
    """The multi-branch model every entry runs (folded by each entry as its path requires)."""
    if BENCH_MODEL in alnet_fast.bundled_models():
        return load_model(BENCH_MODEL)
    return random_alnet(alnet_fast.ALNetConfig(in_channels=1))


@lru_cache(maxsize=None)
def bench_input(size: str, batch: int) -> torch.Tensor:
    """A real image (the bundled sample), normalised, resized and padded as the Segmenter does.
    -> [batch, C, H', W'] with H', W' the size rounded up to a multiple of 32."""
    model = bench_model()
    sample = _bundled_sample()
    if sample is None:
        sample = np.random.default_rng(0).integers(0, 65535, (512, 512), dtype=np.uint16)
    x = prepare_image(sample, model.config)[None]
    x = F.interpolate(x, size=SIZES[size], mode="bilinear", align_corners=False)
    x = pad_to_multiple(x, model.config.output_stride)
    return x.repeat(batch, 1, 1, 1).contiguous()


@lru_cache(maxsize=None)
def reference_logits(size: str, batch: int) -> torch.Tensor:
    """The multi-branch training model's fp32 logits: what every entry is checked against."""
    with torch.inference_mode():
        return bench_model()(bench_input(size, 1)).repeat(batch, 1, 1, 1)


def model_stats() -> dict:
    model = bench_model()
    folded = alnet_fast.reparameterize(model)
    return {"params_folded": count_parameters(folded), "params_multibranch": count_parameters(model),
            "gflop_512": 12.96 if model.config.widths == (32, 32, 64, 128, 640) else None,
            "weights": BENCH_MODEL if BENCH_MODEL in alnet_fast.bundled_models() else "random"}
