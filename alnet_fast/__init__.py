"""alnet_fast: AL-Net medical image segmentation, folded and run on fast kernels.

    import alnet_fast
    seg = alnet_fast.load("model.safetensors")   # folds, picks a backend for the device
    mask = seg.segment("slice.png")              # uint8 [H, W]
"""

from . import ops, train
from .api import load
from .backends import backend_names
from .checkpoint import bundled_models, read_checkpoint, save
from .config import ALNetConfig
from .errors import BackendUnavailable, CheckpointError, ImageReadError
from .graph import FoldedALNet, count_parameters
from .model import ALNet
from .modality import ModalityMismatchWarning, check_input
from .backends.native.extension import build_info
from .reparam import reparameterize
from .segment import Segmenter

__version__ = "0.1.0"

__all__ = ["ALNet", "ALNetConfig", "BackendUnavailable", "CheckpointError", "FoldedALNet", "ImageReadError",
           "ModalityMismatchWarning", "Segmenter", "__version__", "backend_names", "build_info", "bundled_models",
           "check_input", "count_parameters", "load", "ops", "read_checkpoint", "reparameterize", "save", "train"]
