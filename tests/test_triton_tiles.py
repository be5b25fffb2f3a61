"""Tile choice for the Triton conv (alnet_fast.backends.triton.tiles): the pinned heuristic's rules, and
autotuning with its on-disk cache, run on CPU through the interpreter (timed with the wall clock there)."""

import json

import torch
import triton

from alnet_fast.backends.triton import tiles
from alnet_fast.backends.triton.conv3x3 import conv_bias_act, pack_conv_weight
from alnet_fast.backends.triton.tiles import (BLOCK_KS, BLOCK_MS, BLOCK_NS, SMEM_BUDGET, LayerKey, Tile, TileCache,
                                              candidate_tiles, pinned_tile)
from alnet_fast.config import ALNetConfig

H100_SMS = 132


def model_layers(n: int, size: int, dtype: str, precision: str = "tf32") -> list[LayerKey]:
    """The conv layers of the default AL-Net at an n x 3 x size x size input: encoder, Lite R-ASPP, decoder."""
    config, keys, cin, hw = ALNetConfig(), [], 3, size
    for width, depth in zip(config.widths, config.depths):
        keys.append(LayerKey(n, hw, hw, cin, triton.cdiv(cin, 16) * 16, width, 3, 2, False, dtype, precision))
        hw = triton.cdiv(hw, 2)
        keys += [LayerKey(n, hw, hw, width, width, width, 3, 1, False, dtype, precision)] * (depth - 1)
        cin = width
    cc, cd, w = config.context_channels, config.decoder_channels, config.widths

    def decoder(stride_of_input: int, cin: int, cout: int, ksize: int, gate: bool = False) -> LayerKey:
        return LayerKey(n, size // stride_of_input, size // stride_of_input, cin, triton.cdiv(cin, 16) * 16, cout,
                        ksize, 1, gate, dtype, precision)

    return keys + [decoder(32, w[4], cc, 1, gate=True), decoder(32, cc, cd, 1),  # Lite R-ASPP, context
                   decoder(16, w[3], cd, 1), decoder(8, w[2], cd, 3), decoder(4, w[1], cd, 3),  # high, mid, low
                   decoder(4, cd, cd, 3), decoder(4, cd, config.num_classes, 1)]  # fuse, classifier


ALL_LAYERS = [k for n in (1, 32) for size in (64, 512) for dtype, prec in
              (("float16", "tf32"), ("bfloat16", "tf32"), ("float32", "tf32"), ("float32", "ieee"))
              for k in model_layers(n, size, dtype, prec)]


def test_pinned_and_candidate_tiles_stay_in_the_tested_tile_space():
    # test_triton_kernels runs every tile of this space through the interpreter; a tile outside it would not be.
    for key, tile in ((k, t) for k in ALL_LAYERS for t in [pinned_tile(k, H100_SMS)] + candidate_tiles(k, H100_SMS)):
        assert tile.block_m in BLOCK_MS and tile.block_n in BLOCK_NS and tile.block_k in BLOCK_KS, (str(key), tile)
        assert key.cin_pad % tile.block_k == 0  # a K step never straddles two taps
        assert tile.num_warps <= 4  # the flattened conv loop at 8 warps is miscompiled (triton#1254)
        assert tile.num_stages * (tile.block_m + tile.block_n) * tile.block_k * key.elem_bytes <= SMEM_BUDGET


def test_pinned_tiles_fill_the_gpu_on_small_feature_maps():
    for key in model_layers(1, 512, "float16"):
        tile = pinned_tile(key, H100_SMS)
        programs = triton.cdiv(key.m, tile.block_m) * triton.cdiv(key.cout, tile.block_n)
        # either one program per SM, or the tile cannot shrink further (32 x 32, or N already minimal)
        assert programs >= H100_SMS or (tile.block_m == 32 and tile.block_n <= 32), (str(key), tile, programs)
    big = pinned_tile(model_layers(32, 512, "float16")[0], H100_SMS)  # the stem at batch 32: M = 2M pixels
    assert (big.block_m, big.block_k) == (128, 16)


def test_exact_fp32_tiles_are_capped_for_the_fma_units():
    for key in model_layers(32, 512, "float32", "ieee"):
        tile = pinned_tile(key, H100_SMS)
        assert tile.block_m <= 64 and tile.block_n <= 64
    tf32 = pinned_tile(model_layers(32, 512, "float32", "tf32")[3], H100_SMS)
    assert tf32.block_m == 128 and tf32.block_k == 32  # tensor cores, 4-byte operands: K step 32


def conv_case():
    x = torch.randn(1, 20, 9, 11).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(24, 20, 3, 3), torch.randn(24)
    ref = torch.relu(torch.nn.functional.conv2d(x.double(), weight.double(), bias.double(), padding=1))
    return x, pack_conv_weight(weight, bias), ref


def test_autotune_times_candidates_once_and_reuses_the_disk_cache(tmp_path, monkeypatch):
    x, packed, ref = conv_case()
    cache = TileCache("Test GPU (80GB)", tmp_path)
    assert cache.path.parent == tmp_path and "test-gpu--80gb" in cache.path.name
    assert triton.__version__ in cache.path.name
    timed = []
    time_launch = tiles.time_launch
    monkeypatch.setattr(tiles, "time_launch", lambda launch, device: timed.append(1) or time_launch(launch, device))
    y = conv_bias_act(x, packed, 1, True, input_precision="ieee", autotune=True, cache=cache)
    assert (y.double() - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()
    stored = json.loads(cache.path.read_text())
    (key,) = stored
    assert "n=1,h=9,w=11,cin=20,cin_pad=32,cout=24" in key  # keyed by N, H, W too
    key_obj = LayerKey(1, 9, 11, 20, 32, 24, 3, 1, False, "float32", "ieee")
    assert len(timed) == len(candidate_tiles(key_obj, 1)) and Tile(**stored[key]) in candidate_tiles(key_obj, 1)

    timed.clear()  # a fresh cache object on the same directory (a new process): no timing, same tile
    y2 = conv_bias_act(x, packed, 1, True, input_precision="ieee", autotune=True, cache=TileCache("Test GPU (80GB)",
                                                                                                  tmp_path))
    assert timed == [] and torch.equal(y, y2)
    conv_bias_act(x[:, :, :7], packed, 1, True, input_precision="ieee", autotune=True, cache=cache)
    assert timed and len(json.loads(cache.path.read_text())) == 2  # another input size is another entry


def test_a_corrupt_tile_cache_is_ignored_and_rewritten(tmp_path):
    x, packed, ref = conv_case()
    cache = TileCache("Test GPU", tmp_path)
    cache.path.write_text("{not json")
    y = conv_bias_act(x, packed, 1, True, input_precision="ieee", autotune=True, cache=cache)
    assert (y.double() - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()
    assert len(json.loads(cache.path.read_text())) == 1


def test_autotune_flag_and_environment(monkeypatch):
    monkeypatch.delenv(tiles.AUTOTUNE_ENV, raising=False)
    assert tiles.autotune_requested(None) is False and tiles.autotune_requested(True) is True
    monkeypatch.setenv(tiles.AUTOTUNE_ENV, "1")
    assert tiles.autotune_requested(None) is True and tiles.autotune_requested(False) is False


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ALNET_CACHE_DIR", str(tmp_path / "c"))
    assert tiles.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ALNET_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert tiles.default_cache_dir() == tmp_path / "x" / "alnet_fast"
