// The bilinear row loop, compiled once per ISA: included by bilinear.cpp (baseline x86-64) and by
// bilinear_avx512.cpp (under an AVX-512 target pragma). Everything has internal linkage.
#pragma once

#include "cpu_kernels.h"
#include "numeric.h"

namespace alnet {
namespace {

struct Taps {
  int64_t i0, i1;
  float w0, w1;
};

inline float to_f32(float v) { return v; }
inline float to_f32(uint16_t v) { return bf16_to_f32(v); }
inline void from_f32(float v, float* out) { *out = v; }
inline void from_f32(float v, uint16_t* out) { *out = f32_to_bf16(v); }

// Output rows [row0, row1) of y [N, out_h, out_w, C] (row = image * out_h + oy); columns[ox] are the
// x taps, rows[oy] the y taps. T: float (fp32) or uint16_t (bf16 bits); computed in fp32, rounded once.
template <typename T>
void bilinear_rows(const T* x, int64_t h, int64_t w, int64_t c, int64_t out_h, int64_t out_w, const Taps* rows,
                   const Taps* columns, const T* skip, T* y, int64_t row0, int64_t row1) {
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t b = row / out_h;
    const Taps& ty = rows[row % out_h];
    const T* r0 = x + (b * h + ty.i0) * w * c;
    const T* r1 = x + (b * h + ty.i1) * w * c;
    for (int64_t ox = 0; ox < out_w; ++ox) {
      const Taps& tx = columns[ox];
      const T *p00 = r0 + tx.i0 * c, *p01 = r0 + tx.i1 * c, *p10 = r1 + tx.i0 * c, *p11 = r1 + tx.i1 * c;
      const int64_t o = (row * out_w + ox) * c;
      auto lerp = [&](int64_t k) {
        return ty.w0 * (tx.w0 * to_f32(p00[k]) + tx.w1 * to_f32(p01[k])) +
               ty.w1 * (tx.w0 * to_f32(p10[k]) + tx.w1 * to_f32(p11[k]));
      };
      if (skip) {
        for (int64_t k = 0; k < c; ++k) from_f32(lerp(k) + to_f32(skip[o + k]), y + o + k);
      } else {
        for (int64_t k = 0; k < c; ++k) from_f32(lerp(k), y + o + k);
      }
    }
  }
}

}  // namespace
}  // namespace alnet
