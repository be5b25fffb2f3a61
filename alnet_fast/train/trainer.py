"""The training loop: seeded, resumable, with validation and best-checkpoint saving.

Defaults follow the paper: Dice + BCE loss, Adam at lr 5e-3 decayed x0.95 per epoch, batch 4.
Files written to ``out_dir`` (each atomically, via a temporary file renamed into place):
  state.pt           everything needed to resume (weights, optimizer, scheduler, epoch, history)
  best.safetensors   the multi-branch model with the best validation Dice so far (alnet_fast.save)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checkpoint import load_model, save
from ..config import ALNetConfig
from ..inputs import prepare_image
from ..atomic import atomic_path
from ..model import ALNet
from ..outputs import pad_to_multiple
from .augment import Augmentation, augmented_crop
from .datasets import Sample
from .heads import AuxiliaryHeads
from .losses import bce_dice_loss, self_adjusting_loss
from .metrics import dice

LOSSES = ("bce_dice", "self_adjusting")
STATE_FILE = "state.pt"
BEST_FILE = "best.safetensors"


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one training run. An epoch is ``steps_per_epoch`` batches of random crops."""

    epochs: int = 40
    steps_per_epoch: int = 32
    batch_size: int = 4
    lr: float = 5e-3
    lr_decay: float = 0.95
    crop: int = 128
    loss: str = "bce_dice"
    seed: int = 0
    augmentation: Augmentation = field(default_factory=Augmentation)

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "batch_size", "crop"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or not 0 < self.lr_decay <= 1:
            raise ValueError(f"need lr > 0 and 0 < lr_decay <= 1, got lr={self.lr}, lr_decay={self.lr_decay}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")

    @classmethod
    def from_dict(cls, data: dict) -> "TrainSettings":
        """Inverse of dataclasses.asdict."""
        return cls(**{**data, "augmentation": Augmentation(**data["augmentation"])})

    def resume_conflicts(self, other: "TrainSettings") -> list[str]:
        """What differs between these settings (a saved run's) and ``other`` (a run that would continue it),
        as ``--flag saved -> other``; only ``epochs`` may change on resume."""
        saved, new = _flatten(dataclasses.asdict(self)), _flatten(dataclasses.asdict(other))
        return [f"--{name.replace('_', '-')} {saved[name]!r} -> {new[name]!r}" for name in saved
                if name != "epochs" and saved[name] != new.get(name)]


def _flatten(settings: dict) -> dict:
    """Nested settings (e.g. ``augmentation``) merged into one level: their fields are flags of their own."""
    flat = {}
    for name, value in settings.items():
        flat.update(_flatten(value) if isinstance(value, dict) else {name: value})
    return flat


@dataclass
class TrainResult:
    """Where the best model is, how good it was on validation, and the per-epoch history."""

    best_path: Path
    best_epoch: int
    best_val_dice: float
    history: list[dict[str, float]]


def to_tensors(samples: list[Sample], config: ALNetConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Raw (image, mask) pairs -> (normalised image [C, H, W], float mask [1, H, W]), normalised exactly as
    inference normalises (alnet_fast.inputs.prepare_image)."""
    if not samples:
        raise ValueError("no samples")
    tensors = []
    for image, mask in samples:
        x = prepare_image(image, config)
        m = torch.from_numpy(np.asarray(mask) != 0).float()[None]
        if m.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"mask {tuple(m.shape[-2:])} and image {tuple(x.shape[-2:])} differ in size")
        tensors.append((x, m))
    return tensors


def draw_batch(data: list[tuple[torch.Tensor, torch.Tensor]], settings: TrainSettings, gen: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """batch_size augmented crops, images picked in proportion to their area. -> ([B, C, s, s], [B, 1, s, s])."""
    areas = torch.tensor([float(x.shape[-2] * x.shape[-1]) for x, _ in data])
    images, masks = [], []
    for i in torch.multinomial(areas, settings.batch_size, replacement=True, generator=gen).tolist():
        x, m = augmented_crop(*data[i], settings.crop, gen, settings.augmentation)
        images.append(x)
        masks.append(m)
    return torch.stack(images), torch.stack(masks)


@torch.no_grad()
def predict_masks(model: ALNet, images: list[torch.Tensor]) -> list[np.ndarray]:
    """Boolean masks [H, W] from an eval-mode model, one normalised image [C, H, W] at a time."""
    masks = []
    for x in images:
        h, w = x.shape[-2:]
        logits = model(pad_to_multiple(x[None], model.config.output_stride))[0, 0, :h, :w]
        masks.append((logits > 0).numpy())
    return masks


def validation_dice(model: ALNet, data: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean per-image Dice of the thresholded prediction on validation images."""
    was_training = model.training
    model.eval()
    preds = predict_masks(model, [x for x, _ in data])
    model.train(was_training)
    return float(np.mean([dice(p, m[0].numpy()) for p, (_, m) in zip(preds, data)]))


def train_epoch(net: torch.nn.Module, optimizer: torch.optim.Optimizer, data: list[tuple[torch.Tensor, torch.Tensor]],
                settings: TrainSettings, gen: torch.Generator, desc: str, progress: bool) -> tuple[float, float]:
    """``settings.steps_per_epoch`` optimizer steps on batches drawn from ``gen``. -> (mean loss, mean batch Dice)."""
    net.train()
    losses, dices = [], []
    bar = tqdm(range(settings.steps_per_epoch), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        images, masks = draw_batch(data, settings, gen)
        if settings.loss == "self_adjusting":
            logits, branch_logits = net(images)
            loss, _ = self_adjusting_loss(logits, branch_logits, masks)
        else:
            logits = net(images)
            loss = bce_dice_loss(logits, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        dices.append(dice((logits.detach() > 0).numpy(), masks.numpy()))
        bar.set_postfix(loss=f"{losses[-1]:.4f}", dice=f"{dices[-1]:.3f}")
    return float(np.mean(losses)), float(np.mean(dices))


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The random stream of one epoch: depends only on (seed, epoch), so a resumed run draws the same crops."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def initial_weights(source: str | os.PathLike, config: ALNetConfig) -> dict[str, torch.Tensor]:
    """The fp32 state dict of a multi-branch checkpoint to fine-tune; ValueError when it is folded or its
    config is not ``config``."""
    start = load_model(source)
    if not isinstance(start, ALNet):
        raise ValueError(f"cannot fine-tune {str(source)!r}: it is a folded (inference) checkpoint; start from a "
                         "multi-branch (training) checkpoint")
    if start.config != config:
        raise ValueError(f"cannot fine-tune {str(source)!r}: its config {start.config} differs from the model's "
                         f"{config}")
    return {name: value.float() for name, value in start.state_dict().items()}


def matched_noise_rescale(settings: TrainSettings, config: ALNetConfig) -> TrainSettings:
    """settings whose noise augmentation re-scales a noisy crop as ``config``'s input scaling will re-scale a
    noisy image: between its percentiles ("percentile"), min..max ("minmax"), or not at all ("dtype")."""
    rescale = {"percentile": config.percentiles, "minmax": (0.0, 100.0), "dtype": None}[config.scaling]
    if settings.augmentation.noise_rescale == rescale:
        return settings
    return dataclasses.replace(settings, augmentation=dataclasses.replace(settings.augmentation, noise_rescale=rescale))


def check_resumable(state: dict, config: ALNetConfig, settings: TrainSettings, state_path: Path) -> None:
    """ValueError naming every setting (as its flag) and config field that differ from the saved run's."""
    saved_config = state["config"]
    conflicts = TrainSettings.from_dict(state["settings"]).resume_conflicts(settings)
    conflicts += [f"model config {key} {saved_config.get(key)!r} -> {value!r}"
                  for key, value in config.to_dict().items() if saved_config.get(key) != value]
    if conflicts:
        raise ValueError(f"cannot resume {str(state_path)!r}: it was written by a run with different settings "
                         f"({'; '.join(conflicts)}); only --epochs may change. Rerun with the saved values or "
                         "use another --out")


def _start_line(start: int, epochs: int, best_epoch: int, best_dice: float, state_path: Path) -> str:
    if start == 0:
        return f"starting at epoch 1 of {epochs}"
    where = f"from {state_path} (best so far: epoch {best_epoch}, val Dice {best_dice:.4f})"
    if start >= epochs:
        return f"nothing to train: {state_path} already finished epoch {start} of {epochs}; raise --epochs to go on"
    return f"resuming at epoch {start + 1} of {epochs} {where}"


def train(train_samples: list[Sample], val_samples: list[Sample], out_dir: str | os.PathLike,
          config: ALNetConfig | None = None, settings: TrainSettings | None = None, resume: bool | str = False,
          progress: bool = True, metadata: dict[str, str] | None = None,
          init: str | os.PathLike | None = None) -> TrainResult:
    """Train an ALNet on (image, mask) samples; keep the checkpoint with the best validation Dice.

    resume: True continues from ``out_dir/state.pt`` (FileNotFoundError if there is none; a run interrupted
    at any point resumes from its last finished epoch and ends with the same weights as an uninterrupted
    run); False starts a new run (FileExistsError if ``out_dir`` holds a state, which it would overwrite);
    "auto" continues if there is a state and starts otherwise.
    metadata: extra strings stored in best.safetensors (with ``val_dice`` and ``epoch``).
    init: start from this multi-branch checkpoint's weights (a path or a bundled model's name; its config must
    be ``config``) instead of a random initialisation: fine-tuning. Recorded as ``init`` in the metadata.
    """
    if resume not in (True, False, "auto"):
        raise ValueError(f"resume must be True, False or 'auto', got {resume!r}")
    config = config or ALNetConfig()
    settings = matched_noise_rescale(settings or TrainSettings(), config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_data, val_data = to_tensors(train_samples, config), to_tensors(val_samples, config)

    torch.manual_seed(settings.seed)
    model = ALNet(config)
    if init is not None:
        model.load_state_dict(initial_weights(init, config))
        metadata = {**(metadata or {}), "init": str(init)}
    net = AuxiliaryHeads(model) if settings.loss == "self_adjusting" else model
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=settings.lr_decay)
    start, best_epoch, best_dice, history = 0, -1, -1.0, []

    state_path, best_path = out_dir / STATE_FILE, out_dir / BEST_FILE
    if state_path.exists() and resume:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        check_resumable(state, config, settings, state_path)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, best_epoch, best_dice, history = (state["epoch"], state["best_epoch"], state["best_dice"],
                                                 state["history"])
    elif state_path.exists():
        raise FileExistsError(f"{str(out_dir)!r} holds the state of an earlier run ({STATE_FILE}); pass --resume "
                              "(resume=True) to continue it, or another --out to start a new run")
    elif resume is True:
        raise FileNotFoundError(f"nothing to resume: {str(state_path)!r} does not exist; drop --resume "
                                "to start a new run")
    if progress:
        tqdm.write(_start_line(start, settings.epochs, best_epoch, best_dice, state_path))

    for epoch in range(start, settings.epochs):
        desc = f"epoch {epoch + 1}/{settings.epochs}"
        loss, train_dice = train_epoch(net, optimizer, train_data, settings, _epoch_generator(settings.seed, epoch),
                                       desc, progress)
        scheduler.step()
        val_dice = validation_dice(model, val_data)
        history.append({"epoch": epoch + 1, "loss": loss, "train_dice": train_dice, "val_dice": val_dice})
        if val_dice > best_dice:
            best_epoch, best_dice = epoch + 1, val_dice
            model.eval()
            save(model, best_path, metadata={**(metadata or {}), "val_dice": f"{val_dice:.4f}",
                                             "epoch": str(epoch + 1)})
        if progress:
            tqdm.write(f"epoch {epoch + 1}/{settings.epochs}: loss {history[-1]['loss']:.4f}, "
                       f"train Dice {history[-1]['train_dice']:.4f}, val Dice {val_dice:.4f}"
                       f"{' (best)' if best_epoch == epoch + 1 else ''}")
        with atomic_path(state_path) as tmp:
            torch.save({"net": net.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "best_epoch": best_epoch,
                        "best_dice": best_dice, "history": history, "config": config.to_dict(),
                        "settings": dataclasses.asdict(settings)}, tmp)
    return TrainResult(best_path, best_epoch, best_dice, history)
