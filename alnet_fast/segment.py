"""Segmenter: images in, probabilities or masks out, through a bound model and backend."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from .backends.stamps import stamp
from .config import ALNetConfig
from .cuda_graphs import GraphedForward
from .graph import FoldedALNet, count_parameters
from .inputs import prepare_image, split_batch
from .outputs import logits_to_probs, pad_to_multiple, probs_to_mask
from .tiling import tiled_probs
from .tta import tta_probabilities


class Segmenter:
    """Runs a (folded or multi-branch) AL-Net on a device through an op table.

    ``predict(img)`` -> float32 probabilities [H, W] (one class) or [K, H, W]; ``segment(img)`` -> uint8
    mask [H, W]. A list, or a tensor [N, C, H, W], gives a list (resp. an array with a leading N).
    Images of any size are padded to a multiple of 32 and cropped back: outputs have the input's H x W.
    cuda_graphs: run the forward as CUDA graphs, one per input shape and dtype (alnet_fast.cuda_graphs).
    """

    def __init__(self, model: torch.nn.Module, ops, backend_reason: str, device: torch.device,
                 dtype: torch.dtype = torch.float32, batch_size: int = 4, cuda_graphs: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if cuda_graphs and device.type != "cuda":
            raise ValueError(f"cuda_graphs=True needs a CUDA device, not {device}")
        self.model, self.ops, self.backend_reason = model, ops, backend_reason
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self.graphs = (GraphedForward(self._forward, lambda: stamp(*model.parameters(), *model.buffers()))
                       if cuda_graphs else None)

    @property
    def config(self) -> ALNetConfig:
        return self.model.config

    @property
    def backend(self) -> str:
        return self.ops.name

    def __repr__(self) -> str:
        kind = "folded" if isinstance(self.model, FoldedALNet) else "multi-branch"
        return (f"Segmenter({kind}, {count_parameters(self.model) / 1e6:.2f} M params, backend={self.backend_reason}, "
                f"device={self.device}, dtype={self.dtype}, batch_size={self.batch_size}, "
                f"cuda_graphs={self.graphs is not None})")

    @torch.inference_mode()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Network logits for a normalised batch. x: [N, in_channels, H, W] -> float32 [N, K, H, W] on CPU."""
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.config.output_stride)
        x = x.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)
        out = self.graphs(x) if self.graphs is not None else self._forward(x)
        return out[..., :h, :w].float().cpu()  # a copy: a graph's output buffer is reused by its next replay

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops.run(self.model, x) if isinstance(self.model, FoldedALNet) else self.model(x)

    def _probabilities(self, images: list[torch.Tensor], tta: bool = False) -> list[np.ndarray]:
        """Normalised [C, H, W] images -> probability arrays, batched by padded size (tta: alnet_fast.tta)."""
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            groups[tuple(image.shape[-2:])].append(i)
        results: list[np.ndarray | None] = [None] * len(images)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                batch = torch.stack([images[i] for i in chunk])
                probs = tta_probabilities(self.logits, batch) if tta else logits_to_probs(self.logits(batch))
                for i, p in zip(chunk, probs.numpy()):
                    results[i] = p
        return results

    def predict(self, img, tile: int | None = None, overlap: float = 0.25, tta: bool = False):
        """Probabilities for an image or a batch (see the class docstring for accepted inputs).

        tile: run through overlapping ``tile`` x ``tile`` tiles blended by a linear ramp (alnet_fast.tiling),
        which bounds memory for large images; ``overlap`` is the fraction of a tile shared with its neighbour.
        tta: average the probabilities over the flips (and transposes of square images) in one batch
        (alnet_fast.tta); whole-image inference only.
        The one place that decides between whole-image and tiled inference: every caller comes through here.
        """
        if tta and tile is not None:
            raise ValueError("tta=True works on whole images only; pass tile=None")
        items, batched = split_batch(img)
        if tile is None:
            probs = self._probabilities([prepare_image(item, self.config) for item in items], tta)
        else:  # one image at a time: only one normalised copy of a large image is held
            probs = [tiled_probs(self, prepare_image(item, self.config), tile, overlap) for item in items]
        if not batched:
            return probs[0]
        return np.stack(probs) if isinstance(img, torch.Tensor) else probs

    def segment(self, img, tile: int | None = None, overlap: float = 0.25, tta: bool = False):
        """uint8 masks for an image or a batch: prob > 0.5 for one class, argmax otherwise (tile, tta: see
        predict)."""
        probs = self.predict(img, tile, overlap, tta)
        k = self.config.num_classes
        return [probs_to_mask(p, k) for p in probs] if isinstance(probs, list) else probs_to_mask(probs, k)
