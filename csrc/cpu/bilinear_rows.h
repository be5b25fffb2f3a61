// The bilinear band loop, compiled once per ISA: included by bilinear.cpp (baseline x86-64) and by
// bilinear_avx512.cpp (under an AVX-512 target pragma). Everything has internal linkage.
#pragma once

#include "cpu_kernels.h"
#include "numeric.h"

namespace alnet {
namespace {

using Taps = BilinearTaps;

// dst [out_w, C] <- source row src [w, C] interpolated along x in fp32: tx.w0 p0 + tx.w1 p1 per column.
// T: float (fp32) or uint16_t (bf16 bits).
template <typename T>
void interpolate_row(const T* __restrict src, int64_t c, int64_t out_w, const Taps* columns, float* __restrict dst) {
  for (int64_t ox = 0; ox < out_w; ++ox) {
    const Taps& tx = columns[ox];
    const T* p0 = src + tx.i0 * c;
    const T* p1 = src + tx.i1 * c;
    float* d = dst + ox * c;
    for (int64_t k = 0; k < c; ++k) d[k] = tx.w0 * to_f32(p0[k]) + tx.w1 * to_f32(p1[k]);
  }
}

// out [span] <- ty.w0 r0 + ty.w1 r1 (+ skip), rounded once to T.
template <typename T>
void blend_rows(const float* __restrict r0, const float* __restrict r1, const Taps& ty, const T* __restrict skip,
                T* __restrict out, int64_t span) {
  const float w0 = ty.w0, w1 = ty.w1;
  if (skip) {
    for (int64_t j = 0; j < span; ++j) from_f32(w0 * r0[j] + w1 * r1[j] + to_f32(skip[j]), out + j);
  } else {
    for (int64_t j = 0; j < span; ++j) from_f32(w0 * r0[j] + w1 * r1[j], out + j);
  }
}

// Output rows [row0, row1) of y [N, out_h, out_w, C] (row = image * out_h + oy), written inside a border of y_pad
// pixels: ty.w0 (tx.w0 p00 + tx.w1 p01) + ty.w1 (tx.w0 p10 + tx.w1 p11) (+ skip), PyTorch's order, in fp32.
// Separable: each source row the band reads is interpolated along x once, into one of the two rows of
// ring [2][out_w, C] fp32, though up to four output rows read it; an output row then blends the two it needs.
template <typename T>
void bilinear_band(const BilinearProblem& p, int64_t row0, int64_t row1, float* ring) {
  const auto* x = static_cast<const T*>(p.x);
  const auto* skip = static_cast<const T*>(p.skip);
  auto* y = static_cast<T*>(p.y);
  const int64_t span = p.out_w * p.c;
  int64_t held[2] = {-1, -1};  // the source row (image * h + iy) each ring row holds
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t b = row / p.out_h, oy = row % p.out_h;
    const Taps& ty = p.rows[oy];
    const int64_t want[2] = {b * p.h + ty.i0, b * p.h + ty.i1};
    int slot[2];
    for (int i = 0; i < 2; ++i) {
      slot[i] = held[0] == want[i] ? 0 : held[1] == want[i] ? 1 : -1;
      if (slot[i] >= 0) continue;
      // the ring row the other wanted source row does not occupy
      const int other = held[0] == want[1 - i] ? 0 : 1;
      slot[i] = 1 - other;
      held[slot[i]] = want[i];
      interpolate_row(x + want[i] * p.w * p.c, p.c, p.out_w, p.columns, ring + slot[i] * span);
    }
    blend_rows(ring + slot[0] * span, ring + slot[1] * span, ty, skip ? skip + row * span : nullptr,
               y + padded_index(b, oy, 0, p.out_h, p.out_w, p.c, p.y_pad), span);
  }
}

// One ISA build's band loop, dtype dispatched.
inline void bilinear_loop(const BilinearProblem& p, int64_t row0, int64_t row1, float* ring) {
  if (p.dtype == DType::f32) bilinear_band<float>(p, row0, row1, ring);
  else bilinear_band<uint16_t>(p, row0, row1, ring);
}

}  // namespace
}  // namespace alnet
