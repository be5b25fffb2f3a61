// The AVX-512 output tile shared by the fp32 and bf16-pair kernels: RW pixels x NB 16-channel blocks of
// zmm accumulators (RW = 12, NB = 2: 24 accumulators), the row walk, and the epilogue, also used by the
// AMX kernel (bias, ReLU, scale, masked store of the Cout tail, fp32 or bf16 output rounded to nearest even).
//
// Include only after `#pragma GCC target("avx512f,avx512bw,avx512vl,...")`: everything here has
// internal linkage, so each includer gets its own copy compiled for its own target.
#pragma once

#include <immintrin.h>

#include "cpu_kernels.h"

namespace alnet {
namespace {

constexpr int kTile = 12;

inline __m256i round_to_bf16(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16));
}

// One output pixel's 16 channels [16 cb, 16 cb + 16) from fp32 accumulators: bias, ReLU, scale, store.
inline void store_row(const ConvRow& a, int64_t n, int64_t oh, int64_t ow, int64_t cb, __m512 acc) {
  const int64_t co0 = cb * 16;
  const __mmask16 mask = co0 + 16 <= a.cout ? 0xffff : static_cast<__mmask16>((1u << (a.cout - co0)) - 1);
  __m512 v = _mm512_add_ps(acc, _mm512_loadu_ps(a.bias + co0));
  if (a.relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
  if (a.scale) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mask, a.scale + n * a.cout + co0));
  const int64_t off = ((n * a.ho + oh) * a.wo + ow) * a.cout + co0;
  if (a.y_dtype == DType::f32) _mm512_mask_storeu_ps(static_cast<float*>(a.y) + off, mask, v);
  else _mm256_mask_storeu_epi16(static_cast<uint16_t*>(a.y) + off, mask, round_to_bf16(v));
}

template <int RW, int NB>
inline void store_tile(const ConvRow& a, int64_t n, int64_t oh, int64_t ow0, int64_t cb0, __m512 (&acc)[RW][NB]) {
  for (int b = 0; b < NB; ++b)
    for (int r = 0; r < RW; ++r) store_row(a, n, oh, ow0 + r, cb0 + b, acc[r][b]);
}

// Tile::run<RW, NB>(a, n, oh, ow0, cb0) computes and stores one tile.
template <typename Tile, int NB, int RW = kTile - 1>
inline void tail(int64_t rem, const ConvRow& a, int64_t n, int64_t oh, int64_t ow0, int64_t cb0) {
  if constexpr (RW >= 1) {
    if (rem == RW) Tile::template run<RW, NB>(a, n, oh, ow0, cb0);
    else tail<Tile, NB, RW - 1>(rem, a, n, oh, ow0, cb0);
  }
}

template <typename Tile, int NB>
inline void walk_row(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0) {
  int64_t ow = 0;
  for (; ow + kTile <= a.wo; ow += kTile) Tile::template run<kTile, NB>(a, n, oh, ow, cb0);
  tail<Tile, NB>(a.wo - ow, a, n, oh, ow, cb0);
}

template <typename Tile>
inline void conv_row(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb) {
  if (ncb == 2) walk_row<Tile, 2>(a, n, oh, cb0);
  else walk_row<Tile, 1>(a, n, oh, cb0);
}

}  // namespace
}  // namespace alnet
