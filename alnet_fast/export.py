"""ONNX export of the folded graph, with dynamic batch, height and width.

The exported model maps a normalised image batch ``image: float32 [N, in_channels, H, W]`` to
``logits: float32 [N, num_classes, H, W]``: input scaling/normalisation and the padding of H and W to
multiples of 32 are not in the graph (the Segmenter does them; the config is stored in the model's
metadata under ``alnet_fast_config`` so a consumer can reproduce them).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import os
import warnings
from pathlib import Path

import torch

from .graph import FoldedALNet
from .atomic import atomic_path
from .model import ALNet
from .reparam import reparameterize

INPUT_NAME, OUTPUT_NAME = "image", "logits"
DEFAULT_OPSET = 18
# Without torchvision, the exporter warns once per torchvision op it cannot register: noise for this graph.
REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


def require_exporter() -> None:
    """ImportError naming the extra to install unless onnx and onnxscript (torch's ONNX exporter) import."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"ONNX export needs {' and '.join(missing)}, which the base install does not carry: "
                          "pip install 'alnet_fast[export]'")


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's torchvision-registration warnings and torch's internal pytree deprecation."""
    logger = logging.getLogger(REGISTRATION_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def export_onnx(model: ALNet | FoldedALNet, path: str | os.PathLike, opset: int = DEFAULT_OPSET,
                example_size: int = 64) -> Path:
    """Write ``model`` (folded first if multi-branch) to ``path`` as ONNX, atomically.

    Height and width are dynamic with a minimum of 2 * 32 = 64 (exported for stage-4 maps of at least
    2 x 2; ONNX Runtime runs smaller padded inputs too). example_size: H = W of the tracing example.
    """
    require_exporter()
    import onnx

    if isinstance(model, ALNet):
        model = reparameterize(model)
    elif isinstance(model, FoldedALNet):
        model = copy.deepcopy(model)  # the caller's model keeps its dtype and device
    else:
        raise TypeError(f"export_onnx expects an ALNet or FoldedALNet, got {type(model).__name__}")
    model = model.float().eval().cpu()
    config = model.config
    minimum = 2 * config.output_stride
    example = torch.zeros(2, config.in_channels, max(example_size, minimum), max(example_size, minimum))
    dims = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("height", min=minimum),
            3: torch.export.Dim("width", min=minimum)}
    with _quiet_exporter():
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=(dims,), verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {"alnet_fast_config": config.to_json()})
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return Path(path)
