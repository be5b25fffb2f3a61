"""Paired image/mask augmentation: geometric (crop, zoom, flips, diagonal flip, translation, context cut)
and intensity (gamma, brightness/contrast, Gaussian noise, Gaussian blur) transforms.

Every random choice comes from an explicit ``torch.Generator``, so a seed fixes the whole stream.
image: [C, H, W] float, mask: [1, H, W] float; both get exactly the same geometric transform, and the
intensity transforms touch the image only. Each transform has a probability (0 disables it) and a range.
Intensity transforms work on the crop mapped to [0, 1] by its own min..max and map back afterwards, and
clip to that range: they are independent of the model's normalisation (mean/std), and the result stays
within the input's values, as percentile scaling at inference keeps a network's input in a fixed range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    """Which transforms to draw. ``*_p`` is a probability per crop, ranges are (low, high).

    Geometric: each flip with probability 1/2, a shift of up to ``max_shift`` pixels; ``scale``: zoom by a
    factor drawn log-uniformly in ``scale_range`` (> 1 magnifies: a smaller window is resized up to the
    crop); ``context``: keep a random window of ``context_range`` times the crop side and blank the rest
    (image to 0, the normalised mid-grey the network's zero padding also shows; mask to background).
    Intensity: ``gamma`` u -> u ** g; ``contrast`` (u - mean) * c + mean, then ``brightness`` u + b;
    ``noise`` adds N(0, s^2) with s a fraction of the crop's range drawn in ``noise_range``, then maps the
    noisy crop's ``noise_rescale`` percentiles to its clean range (clipping outside): inference's percentile
    scaling does the same to a noisy image (its background rises, its contrast shrinks), which noise added
    after scaling and clipped would never show (None: clip only, for ``"dtype"`` scaling); ``blur``
    a Gaussian of sigma in ``blur_range`` pixels.
    """

    hflip: bool = True
    vflip: bool = True
    diagonal: bool = True
    max_shift: int = 16
    scale_p: float = 0.3
    scale_range: tuple[float, float] = (0.6, 2.2)
    context_p: float = 0.1
    context_range: tuple[float, float] = (0.35, 0.8)
    gamma_p: float = 0.3
    gamma_range: tuple[float, float] = (0.6, 1.6)
    contrast_p: float = 0.15
    contrast_range: tuple[float, float] = (0.7, 1.3)
    brightness_p: float = 0.15
    brightness_range: tuple[float, float] = (-0.15, 0.15)
    noise_p: float = 0.2
    noise_range: tuple[float, float] = (0.0, 0.12)
    blur_p: float = 0.1
    blur_range: tuple[float, float] = (0.5, 1.5)
    noise_rescale: tuple[float, float] | None = (1.0, 99.8)

    def __post_init__(self) -> None:
        for name in ("scale", "context", "gamma", "contrast", "brightness", "noise", "blur"):
            p, (lo, hi) = getattr(self, f"{name}_p"), getattr(self, f"{name}_range")
            object.__setattr__(self, f"{name}_range", (float(lo), float(hi)))
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}_p must be in [0, 1], got {p}")
            if not lo <= hi:
                raise ValueError(f"{name}_range must be (low, high) with low <= high, got {(lo, hi)}")
        positive = {"scale": self.scale_range, "gamma": self.gamma_range, "contrast": self.contrast_range}
        for name, (lo, _) in positive.items():
            if lo <= 0:
                raise ValueError(f"{name}_range must be > 0, got {getattr(self, f'{name}_range')}")
        if not (0 < self.context_range[0] and self.context_range[1] <= 1):
            raise ValueError(f"context_range must lie in (0, 1], got {self.context_range}")
        if self.noise_rescale is not None:
            object.__setattr__(self, "noise_rescale", tuple(float(v) for v in self.noise_rescale))
            lo, hi = self.noise_rescale
            if not 0 <= lo < hi <= 100:
                raise ValueError(f"noise_rescale must be percentiles (lo, hi), 0 <= lo < hi <= 100, got {(lo, hi)}")
        if self.noise_range[0] < 0 or self.blur_range[0] < 0:
            raise ValueError(f"noise_range and blur_range must be >= 0, got {self.noise_range}, {self.blur_range}")

    @classmethod
    def geometric(cls, **kwargs) -> "Augmentation":
        """Flips, diagonal flip and shifts only (the recipe of the first bundled models)."""
        off = {f"{name}_p": 0.0 for name in ("scale", "context", "gamma", "contrast", "brightness", "noise", "blur")}
        return cls(**{**off, **kwargs})


def _randint(high: int, gen: torch.Generator) -> int:
    """Uniform integer in [0, high]."""
    return int(torch.randint(0, high + 1, (1,), generator=gen))


def _uniform(low: float, high: float, gen: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _coin(gen: torch.Generator, p: float = 0.5) -> bool:
    """True with probability p; p = 0 draws nothing, so a disabled transform leaves the stream unchanged."""
    return p > 0 and bool(torch.rand((), generator=gen) < p)


def pad_to_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect-pad (replicate when too small to reflect) the bottom/right of x [C, H, W] to at least size x size."""
    ph, pw = max(0, size - x.shape[-2]), max(0, size - x.shape[-1])
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x[None], (0, pw, 0, ph), mode=mode)[0]


def random_crop(image: torch.Tensor, mask: torch.Tensor, size: int, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """A size x size window at a uniform position (images smaller than size are padded first)."""
    image, mask = pad_to_size(image, size), pad_to_size(mask, size)
    top = _randint(image.shape[-2] - size, gen)
    left = _randint(image.shape[-1] - size, gen)
    return image[:, top:top + size, left:left + size], mask[:, top:top + size, left:left + size]


def resize_pair(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear (antialiased) resize of image [C, h, w] and mask [1, h, w] to size (H, W); the mask is resampled
    the same way and thresholded at 1/2, so its boundary moves exactly with the image's."""
    def resize(x):
        return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    return resize(image), (resize(mask) > 0.5).to(mask.dtype)


def scaled_crop(image: torch.Tensor, mask: torch.Tensor, size: int, zoom: float, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """A random window of side round(size / zoom) resized to size x size: zoom > 1 magnifies the content."""
    window = max(1, round(size / zoom))
    image, mask = random_crop(image, mask, window, gen)
    return (image, mask) if window == size else resize_pair(image, mask, (size, size))


def cut_context(image: torch.Tensor, mask: torch.Tensor, top: int, left: int, h: int, w: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the window [top:top+h, left:left+w] of both tensors and set everything else to 0."""
    keep = torch.zeros_like(mask[:1])
    keep[:, top:top + h, left:left + w] = 1
    return image * keep, mask * keep


def translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift x [C, H, W] by (dy, dx) pixels, filling the exposed border by reflection. Same shape out."""
    h, w = x.shape[-2:]
    py, px = min(abs(dy), h - 1), min(abs(dx), w - 1)
    padded = F.pad(x[None], (px, px, py, py), mode="reflect")[0]
    top, left = py - max(-py, min(py, dy)), px - max(-px, min(px, dx))
    return padded[:, top:top + h, left:left + w]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of x [C, H, W] (kernel radius ceil(3 sigma), reflected borders)."""
    radius = min(math.ceil(3 * sigma), x.shape[-1] - 1, x.shape[-2] - 1)
    if sigma <= 0 or radius < 1:
        return x
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[0]
    y = F.pad(x[None], (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(y, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y[0]


def augment_intensity(image: torch.Tensor, gen: torch.Generator, aug: Augmentation) -> torch.Tensor:
    """Gamma, contrast, brightness, noise and blur (each drawn with its probability) on image [C, H, W]."""
    lo, hi = image.min(), image.max()
    span = hi - lo
    if span <= 0:
        return image
    u = (image - lo) / span
    if _coin(gen, aug.gamma_p):
        u = u.pow(_uniform(*aug.gamma_range, gen))
    if _coin(gen, aug.contrast_p):
        mean = u.mean()
        u = (u - mean) * _uniform(*aug.contrast_range, gen) + mean
    if _coin(gen, aug.brightness_p):
        u = u + _uniform(*aug.brightness_range, gen)
    if _coin(gen, aug.noise_p):
        u = u + _uniform(*aug.noise_range, gen) * torch.randn(u.shape, generator=gen, dtype=u.dtype)
        if aug.noise_rescale is not None:
            q = torch.quantile(u.flatten(), torch.tensor(aug.noise_rescale, dtype=u.dtype) / 100)
            u = (u - q[0]) / torch.clamp(q[1] - q[0], min=1e-12)
    if _coin(gen, aug.blur_p):
        u = gaussian_blur(u, _uniform(*aug.blur_range, gen))
    return u.clamp(0.0, 1.0) * span + lo


def augmented_crop(image: torch.Tensor, mask: torch.Tensor, size: int, gen: torch.Generator,
                   aug: Augmentation = Augmentation()) -> tuple[torch.Tensor, torch.Tensor]:
    """One training crop of a whole (image [C, H, W], mask [1, H, W]): a size x size window, zoomed with
    probability ``scale_p``, then ``augment``. -> ([C, size, size], [1, size, size])."""
    if _coin(gen, aug.scale_p):
        low, high = (math.log(v) for v in aug.scale_range)
        image, mask = scaled_crop(image, mask, size, math.exp(_uniform(low, high, gen)), gen)
    else:
        image, mask = random_crop(image, mask, size, gen)
    return augment(image, mask, gen, aug)


def augment(image: torch.Tensor, mask: torch.Tensor, gen: torch.Generator, aug: Augmentation = Augmentation()
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw flips, a diagonal flip (square inputs only), a shift, a context cut and the intensity
    transforms; the geometric ones go to both tensors, the intensity ones to the image only."""
    dims = []
    if aug.hflip and _coin(gen):
        dims.append(-1)
    if aug.vflip and _coin(gen):
        dims.append(-2)
    if dims:
        image, mask = image.flip(dims), mask.flip(dims)
    if aug.diagonal and image.shape[-1] == image.shape[-2] and _coin(gen):
        image, mask = image.transpose(-1, -2), mask.transpose(-1, -2)
    if aug.max_shift > 0:
        dy = _randint(2 * aug.max_shift, gen) - aug.max_shift
        dx = _randint(2 * aug.max_shift, gen) - aug.max_shift
        image, mask = translate(image, dy, dx), translate(mask, dy, dx)
    image = augment_intensity(image, gen, aug)
    if _coin(gen, aug.context_p):
        height, width = image.shape[-2:]
        h = max(1, round(height * _uniform(*aug.context_range, gen)))
        w = max(1, round(width * _uniform(*aug.context_range, gen)))
        image, mask = cut_context(image, mask, _randint(height - h, gen), _randint(width - w, gen), h, w)
    return image.contiguous(), mask.contiguous()
