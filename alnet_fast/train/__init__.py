"""Training AL-Net: losses, metrics, augmentation, real data sets and the resumable training loop.

``alnet_fast.train`` is this package and is also callable: ``alnet_fast.train(...)`` is
``alnet_fast.train.train(...)`` (see trainer.train). Being callable, rather than shadowed by a function
of the same name, keeps ``import alnet_fast.train.metrics`` and friends working.
"""

import sys
import types

from .augment import Augmentation
from .datasets import DATASET_CONFIGS, DATASET_MODALITIES, bundled_sample, load_dataset
from .heads import AuxiliaryHeads
from .losses import bce_dice_loss, self_adjusting_loss, soft_dice_loss
from .metrics import Summary, image_metrics, summarise
from .trainer import TrainResult, TrainSettings, train

__all__ = ["Augmentation", "AuxiliaryHeads", "DATASET_CONFIGS", "DATASET_MODALITIES", "Summary", "TrainResult", "TrainSettings",
           "bce_dice_loss", "bundled_sample", "image_metrics", "load_dataset", "self_adjusting_loss",
           "soft_dice_loss", "summarise", "train"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
