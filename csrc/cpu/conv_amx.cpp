// AMX-BF16 row kernel: implicit GEMM on tiles. Per 3x3 tap and 32-channel chunk, an A tile is 16 output
// pixels x 32 input channels read straight from the padded NHWC input (row stride = stride * Cp), a B tile
// is 32 input x 16 output channels of the bf16-pair weights [Cout/16][k][k][Cp/2][16][2] (Cp a multiple of
// 32), and TDPBF16PS accumulates 16x16 fp32. Blocking: MA (1-2) pixel tiles x NB (1-2) channel tiles in
// tmm0-3, A in tmm4-5, B in tmm6-7. Rows past the output row's end read the padding slack that
// conv2d_nhwc allocates after the input and are never stored.
#include <immintrin.h>

#include <algorithm>

#include "cpu_kernels.h"
#include "numeric.h"

#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")

#include "conv_avx512_tile.h"
#include "conv_bf16_pack.h"

namespace alnet {
namespace {

constexpr int kRows = 16;  // pixels per A tile, channels per B tile

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16];
  uint8_t rows[16];
};

constexpr TileConfig make_config() {
  TileConfig cfg{};
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = kRows;
  }
  return cfg;
}

alignas(64) const TileConfig kConfig = make_config();

template <int MA, int NB>
void tile(const ConvRow& a, int64_t n, int64_t oh, int64_t ow0, int64_t cb0) {
  const int64_t k = a.ksize, cp = a.cp, s = a.stride, block = k * k * cp * 16;
  const long a_stride = static_cast<long>(s * cp * sizeof(uint16_t));
  const uint16_t* x = static_cast<const uint16_t*>(a.xpad) + ((n * a.hp + oh * s) * a.wp + ow0 * s) * cp;
  const uint16_t* w = static_cast<const uint16_t*>(a.weight) + cb0 * block;
  _tile_zero(0);
  if constexpr (NB == 2) _tile_zero(1);
  if constexpr (MA == 2) _tile_zero(2);
  if constexpr (MA == 2 && NB == 2) _tile_zero(3);
  for (int64_t ky = 0; ky < k; ++ky)
    for (int64_t kx = 0; kx < k; ++kx) {
      const uint16_t* xa = x + (ky * a.wp + kx) * cp;
      const uint16_t* wb = w + (ky * k + kx) * cp * 16;
      for (int64_t c = 0; c < cp; c += 32) {
        _tile_loadd(4, xa + c, a_stride);
        _tile_loadd(6, wb + c * 16, 64);
        if constexpr (MA == 2) _tile_loadd(5, xa + kRows * s * cp + c, a_stride);
        if constexpr (NB == 2) _tile_loadd(7, wb + block + c * 16, 64);
        _tile_dpbf16ps(0, 4, 6);
        if constexpr (NB == 2) _tile_dpbf16ps(1, 4, 7);
        if constexpr (MA == 2) _tile_dpbf16ps(2, 5, 6);
        if constexpr (MA == 2 && NB == 2) _tile_dpbf16ps(3, 5, 7);
      }
    }
  alignas(64) float acc[4][kRows * 16];
  _tile_stored(0, acc[0], 64);
  if constexpr (NB == 2) _tile_stored(1, acc[1], 64);
  if constexpr (MA == 2) _tile_stored(2, acc[2], 64);
  if constexpr (MA == 2 && NB == 2) _tile_stored(3, acc[3], 64);
  for (int m = 0; m < MA; ++m) {  // acc[2 m + b]: pixel tile m, channel block b
    const int64_t ow = ow0 + m * kRows;
    store_pixels<PackBf16Cvt, NB>(a, n, oh, ow, cb0, std::min<int64_t>(kRows, a.wo - ow),
                                  [&acc, m](int b, int64_t r) { return _mm512_load_ps(acc[2 * m + b] + r * 16); });
  }
}

template <int NB>
void amx_row(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0) {
  for (int64_t ow = 0; ow < a.wo; ow += 2 * kRows) {
    if (a.wo - ow > kRows) tile<2, NB>(a, n, oh, ow, cb0);
    else tile<1, NB>(a, n, oh, ow, cb0);
  }
}

}  // namespace

void amx_begin() { _tile_loadconfig(&kConfig); }

void amx_end() { _tile_release(); }

void conv_row_amx(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb) {
  if (ncb == 2) amx_row<2>(a, n, oh, cb0);
  else amx_row<1>(a, n, oh, cb0);
}

}  // namespace alnet

#pragma GCC pop_options
