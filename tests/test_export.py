"""ONNX export of the folded graph, checked against our own output with ONNX Runtime (an independent
implementation of every op)."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import alnet_fast
from alnet_fast.export import INPUT_NAME, export_onnx
from alnet_fast.inputs import prepare_image
from alnet_fast.outputs import pad_to_multiple

SMALL = alnet_fast.ALNetConfig(in_channels=1, num_classes=3, widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1, 1),
                               context_channels=16, decoder_channels=16)
# fp32 both sides; ONNX Runtime picks its own conv algorithms and summation order, so results differ by
# rounding only: about 1e-7 measured on logits of order 0.1-1; 1e-4 leaves room for larger inputs.
ATOL = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = alnet_fast.ALNet(SMALL).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "alnet.onnx")
    return model, path


@pytest.fixture
def session(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # ONNX Runtime may write into HOME
    return ort.InferenceSession(str(exported[1]), providers=["CPUExecutionProvider"])


def test_onnx_model_is_valid_with_dynamic_batch_height_width(exported):
    proto = onnx.load(exported[1])
    onnx.checker.check_model(proto)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert proto.graph.input[0].name == INPUT_NAME
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # N, C fixed, H, W
    meta = {p.key: p.value for p in proto.metadata_props}
    assert alnet_fast.ALNetConfig.from_json(meta["alnet_fast_config"]) == SMALL
    assert json.loads(meta["alnet_fast_config"])["num_classes"] == 3


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (3, 1, 96, 160), (2, 1, 256, 128), (1, 1, 50, 77), (1, 1, 32, 32)])
def test_onnx_runtime_matches_folded_graph(exported, session, shape):
    model, _ = exported
    folded = alnet_fast.reparameterize(model)
    x = torch.randn(*shape)
    ours = folded(x).detach().numpy()
    theirs = session.run(None, {INPUT_NAME: x.numpy()})[0]
    assert theirs.shape == ours.shape == (shape[0], 3, *shape[2:])
    np.testing.assert_allclose(theirs, ours, atol=ATOL, rtol=0)
    # and against the multi-branch training model the folding started from (float64 folding: same tolerance)
    np.testing.assert_allclose(theirs, model(x).detach().numpy(), atol=ATOL, rtol=0)


def test_onnx_pipeline_gives_the_segmenters_masks(exported, session):
    """Normalise and pad as documented, run ONNX Runtime, crop and argmax: the Segmenter's mask."""
    model, _ = exported
    segmenter = alnet_fast.load(model, backend="torch", device="cpu")
    image = (np.random.default_rng(0).random((90, 130)) * 4000).astype(np.uint16)
    x = pad_to_multiple(prepare_image(image, SMALL)[None], 32)
    logits = session.run(None, {INPUT_NAME: x.numpy()})[0][0, :, :90, :130]
    ours = segmenter.segment(image)
    theirs = logits.argmax(0).astype(np.uint8)
    # ties within rounding could flip a pixel; none did when measured, allow 0.1 %
    assert (theirs != ours).mean() <= 1e-3


def test_export_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match="ALNet or FoldedALNet"):
        export_onnx(torch.nn.Conv2d(1, 1, 3), tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


def test_export_leaves_the_callers_folded_model_untouched(exported, tmp_path):
    folded = alnet_fast.reparameterize(exported[0]).to(torch.float64)
    before = {k: v.clone() for k, v in folded.state_dict().items()}
    export_onnx(folded, tmp_path / "f64.onnx")
    assert all(v.dtype == torch.float64 and torch.equal(v, before[k]) for k, v in folded.state_dict().items())
    onnx.checker.check_model(onnx.load(tmp_path / "f64.onnx"))
