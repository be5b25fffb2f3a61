"""Checkpoints: safetensors with the config and a format version in the metadata; validated loading.

No code from a checkpoint is ever executed: safetensors holds only tensors and strings, and
``.pt``/``.pth`` files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import ALNetConfig
from .errors import CheckpointError
from .graph import FoldedALNet
from .atomic import atomic_path
from .model import ALNet

FORMAT_NAME = "alnet_fast"
FORMAT_VERSION = 1
KINDS = ("multibranch", "folded")
BUNDLED_DIR = Path(__file__).parent / "weights"


@dataclass
class Checkpoint:
    """What a checkpoint file holds: which model (kind), its config, its tensors and free-form metadata."""

    kind: str
    config: ALNetConfig
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, str]


def model_kind(model: torch.nn.Module) -> str:
    if isinstance(model, ALNet):
        return "multibranch"
    if isinstance(model, FoldedALNet):
        return "folded"
    raise TypeError(f"expected an alnet_fast.ALNet or FoldedALNet, got {type(model).__name__}")


def save(model: ALNet | FoldedALNet, path: str | os.PathLike, metadata: dict[str, str] | None = None,
         dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` to ``path`` as safetensors, atomically (a temporary file renamed into place).

    metadata: extra string key/values stored beside the config (e.g. measured test Dice).
    dtype: store floating tensors in this dtype (e.g. torch.float16 to halve the file); loading casts back.
    """
    kind = model_kind(model)
    path = Path(path)
    extra = {str(k): str(v) for k, v in (metadata or {}).items()}
    reserved = {"format", "format_version", "kind", "config"} & set(extra)
    if reserved:
        raise ValueError(f"metadata keys {sorted(reserved)} are reserved")
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value.contiguous()
    header = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION), "kind": kind,
              "config": model.config.to_json(), **extra}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=header)
    return path



def bundled_models() -> list[str]:
    """Names of the checkpoints shipped inside the package (``load(name)`` accepts them)."""
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.safetensors"))


def require_model(source: str) -> None:
    """FileNotFoundError (one line) unless ``source`` is a checkpoint file or a bundled model's name."""
    if not Path(source).is_file() and source not in bundled_models():
        hint = f"bundled models: {', '.join(bundled_models())}" if bundled_models() else "no model is bundled"
        raise FileNotFoundError(f"model {source!r} is neither a checkpoint file nor a bundled model "
                                f"({hint}); pass --model PATH")


def resolve_path(source: str | os.PathLike) -> Path:
    """A checkpoint path, or the path of a bundled model given by name; FileNotFoundError otherwise."""
    path = Path(source)
    if path.is_file():
        return path
    if isinstance(source, str) and source in bundled_models():
        return BUNDLED_DIR / f"{source}.safetensors"
    if path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} is not a file")
    hint = f"; bundled models: {bundled_models()}" if bundled_models() else ""
    raise FileNotFoundError(f"checkpoint {str(source)!r} not found{hint}")


def read_checkpoint(source: str | os.PathLike, config: ALNetConfig | None = None) -> Checkpoint:
    """Read and validate a checkpoint file (safetensors, or a .pt/.pth state_dict) without building a model."""
    path = resolve_path(source)
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        raise CheckpointError(f"{path}: file is empty or truncated ({len(head)} bytes)")
    # safetensors: a little-endian u64 header length, then the JSON header; checked first, since the length's
    # low byte may be 0x80, the first byte of a pickle
    if head[8:9] != b"{" and (head[:4] == b"PK\x03\x04" or head[:1] == b"\x80"):
        ckpt = _read_torch(path, config)
    else:
        ckpt = _read_safetensors(path, config)
    validate_state_dict(ckpt, path)
    return ckpt


def _read_safetensors(path: Path, config: ALNetConfig | None) -> Checkpoint:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            state = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}") from exc
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: safetensors metadata lacks format={FORMAT_NAME!r}; "
                              "not an alnet_fast checkpoint")
    version = metadata.get("format_version", "")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: unsupported checkpoint format version {version!r} "
                              f"(this alnet_fast reads version {FORMAT_VERSION})")
    kind = metadata.get("kind")
    if kind not in KINDS:
        raise CheckpointError(f"{path}: unknown checkpoint kind {kind!r}; expected one of {KINDS}")
    try:
        stored = ALNetConfig.from_json(metadata["config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: missing or invalid config in metadata: {exc}") from exc
    if config is not None and config != stored:
        raise CheckpointError(f"{path}: config mismatch: the checkpoint was saved with {stored}, "
                              f"but {config} was given")
    extra = {k: v for k, v in metadata.items() if k not in ("format", "format_version", "kind", "config")}
    return Checkpoint(kind, stored, state, extra)


def _read_torch(path: Path, config: ALNetConfig | None) -> Checkpoint:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refusing to load: the pickle references objects that would "
                              f"execute code (only tensors and plain containers are allowed): {exc}") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable torch file (truncated or corrupt?): {exc}") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
    stored = None
    if "state_dict" in obj:
        stored_cfg = obj.get("config")
        try:
            stored = ALNetConfig.from_dict(stored_cfg) if stored_cfg is not None else None
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: invalid config in checkpoint: {exc}") from exc
        obj = obj["state_dict"]
    if stored is not None and config is not None and stored != config:
        raise CheckpointError(f"{path}: config mismatch: the checkpoint was saved with {stored}, "
                              f"but {config} was given")
    config = config or stored
    if config is None:
        raise CheckpointError(f"{path}: a plain state_dict carries no config; pass config=ALNetConfig(...)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state_dict entries that are not named tensors: {bad[:5]}")
    kind = "folded" if any(k.startswith("stages.") for k in obj) else "multibranch"
    return Checkpoint(kind, config, dict(obj), {})


def reference_state(kind: str, config: ALNetConfig) -> dict[str, torch.Tensor]:
    """The state_dict an empty model of ``kind`` and ``config`` has (names and shapes to validate against)."""
    model = ALNet(config) if kind == "multibranch" else FoldedALNet.empty(config)
    return model.state_dict()


def validate_state_dict(ckpt: Checkpoint, path: Path | str) -> None:
    """Raise CheckpointError naming any unknown or missing key, wrong shape, dtype or non-finite value."""
    expected = reference_state(ckpt.kind, ckpt.config)
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(ckpt.state_dict) - optional)
    unknown = sorted(set(ckpt.state_dict) - set(expected))
    if missing or unknown:
        raise CheckpointError(f"{path}: {ckpt.kind} checkpoint does not match its config: "
                              f"missing keys {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                              f"unknown keys {unknown[:8]}{'...' if len(unknown) > 8 else ''}")
    for key, value in ckpt.state_dict.items():
        ref = expected[key]
        if value.shape != ref.shape:
            raise CheckpointError(f"{path}: wrong shape for {key!r}: {tuple(value.shape)}, "
                                  f"the config implies {tuple(ref.shape)}")
        if ref.is_floating_point():
            if not value.is_floating_point():
                raise CheckpointError(f"{path}: {key!r} has dtype {value.dtype}, expected a floating dtype")
            if not torch.isfinite(value).all():
                raise CheckpointError(f"{path}: {key!r} contains NaN or Inf")


def build_model(ckpt: Checkpoint) -> ALNet | FoldedALNet:
    """The eval-mode float32 model a validated checkpoint describes."""
    model = ALNet(ckpt.config) if ckpt.kind == "multibranch" else FoldedALNet.empty(ckpt.config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    model.load_state_dict(state, strict=False)
    return model.eval()


def load_model(source: str | os.PathLike, config: ALNetConfig | None = None) -> ALNet | FoldedALNet:
    """Read, validate and build the model stored in ``source`` (path or bundled name)."""
    return build_model(read_checkpoint(source, config))
