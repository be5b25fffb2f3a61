"""ALNetConfig: every architectural and input-normalisation choice, serialised into every checkpoint."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

SCALINGS = ("dtype", "minmax", "percentile")
PLANES = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class ALNetConfig:
    """Hyper-parameters of AL-Net and of the input normalisation it was trained with.

    Defaults give the paper's network: a RepVGG-A1-style encoder at half width
    (widths (32, 32, 64, 128, 640), depths (1, 2, 4, 14, 1)), a Lite R-ASPP context module of
    ``context_channels`` and an A-Decoder of ``decoder_channels``; about 3.35 M folded parameters.

    Input normalisation (applied by the Segmenter and the trainer alike):
      1. scale to [0, 1]: ``"dtype"`` divides by the dtype's maximum (uint8 255, uint16 65535, floats
         as they are); ``"minmax"`` maps each image's min..max to 0..1; ``"percentile"`` maps each
         image's ``percentiles`` to 0..1 and clips (robust for microscopy and MR);
      2. ``(x - mean[c]) / std[c]`` per channel.

    ``plane``: the anatomical plane of the 2-D slices the model was trained on ("axial", "coronal",
    "sagittal"; None when unknown or not a volume model). Volumes are turned so that their slices are
    taken in that plane (alnet_fast.orientation).
    """

    in_channels: int = 3
    num_classes: int = 1
    widths: tuple[int, ...] = (32, 32, 64, 128, 640)
    depths: tuple[int, ...] = (1, 2, 4, 14, 1)
    context_channels: int = 128
    decoder_channels: int = 128
    scaling: str = "percentile"
    percentiles: tuple[float, float] = (1.0, 99.8)
    mean: tuple[float, ...] = field(default=(0.5,))
    std: tuple[float, ...] = field(default=(0.25,))
    plane: str | None = None

    def __post_init__(self) -> None:
        for name in ("widths", "depths", "percentiles", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check(self.in_channels >= 1, "in_channels must be >= 1", self.in_channels)
        _check(self.num_classes >= 1, "num_classes must be >= 1", self.num_classes)
        _check(len(self.widths) == 5 and len(self.depths) == 5, "widths and depths need 5 stages",
               (self.widths, self.depths))
        _check(all(w >= 1 for w in self.widths) and all(d >= 1 for d in self.depths),
               "widths and depths must be positive", (self.widths, self.depths))
        _check(self.context_channels >= 1 and self.decoder_channels >= 1,
               "context_channels and decoder_channels must be >= 1",
               (self.context_channels, self.decoder_channels))
        _check(self.scaling in SCALINGS, f"scaling must be one of {SCALINGS}", self.scaling)
        lo, hi = self.percentiles if len(self.percentiles) == 2 else (1, 0)
        _check(0 <= lo < hi <= 100, "percentiles must be (lo, hi) with 0 <= lo < hi <= 100",
               self.percentiles)
        for name in ("mean", "std"):
            values = getattr(self, name)
            _check(len(values) in (1, self.in_channels),
                   f"{name} needs 1 or in_channels={self.in_channels} values", values)
        _check(all(s > 0 for s in self.std), "std values must be > 0", self.std)
        _check(self.plane is None or self.plane in PLANES, f"plane must be None or one of {PLANES}", self.plane)

    @property
    def output_stride(self) -> int:
        """Total downsampling of the encoder: inputs padded to a multiple of this run exactly."""
        return 2 ** len(self.widths)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ALNetConfig":
        if not isinstance(data, dict):
            raise TypeError(f"config must be a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; known fields are {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "ALNetConfig":
        return cls.from_dict(json.loads(text))


def _check(condition: bool, message: str, value: Any) -> None:
    if not condition:
        raise ValueError(f"invalid ALNetConfig: {message} (got {value!r})")
