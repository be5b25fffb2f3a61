// The bilinear row loops, compiled once per ISA: included by bilinear.cpp (baseline x86-64) and by
// bilinear_avx512.cpp (under an AVX-512 target pragma). Everything has internal linkage.
#pragma once

#include "cpu_kernels.h"
#include "numeric.h"

namespace alnet {
namespace {

using Taps = BilinearTaps;

// Output rows [row0, row1) of y [N, out_h, out_w, C] (row = image * out_h + oy); columns[ox] are the
// x taps, rows[oy] the y taps. T: float (fp32) or uint16_t (bf16 bits); computed in fp32, rounded once.
// Per output pixel: ty.w0 (tx.w0 p00 + tx.w1 p01) + ty.w1 (tx.w0 p10 + tx.w1 p11), PyTorch's order.
// y is written inside a border of y_pad pixels.
template <typename T>
void bilinear_rows(const T* x, int64_t h, int64_t w, int64_t c, int64_t out_h, int64_t out_w, const Taps* rows,
                   const Taps* columns, const T* skip, T* y, int64_t y_pad, int64_t row0, int64_t row1) {
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t b = row / out_h, oy = row % out_h;
    const Taps& ty = rows[oy];
    const T* r0 = x + (b * h + ty.i0) * w * c;
    const T* r1 = x + (b * h + ty.i1) * w * c;
    T* out = y + padded_index(b, oy, 0, out_h, out_w, c, y_pad);
    for (int64_t ox = 0; ox < out_w; ++ox) {
      const Taps& tx = columns[ox];
      const T *p00 = r0 + tx.i0 * c, *p01 = r0 + tx.i1 * c, *p10 = r1 + tx.i0 * c, *p11 = r1 + tx.i1 * c;
      const int64_t o = ox * c;
      auto lerp = [&](int64_t k) {
        return ty.w0 * (tx.w0 * to_f32(p00[k]) + tx.w1 * to_f32(p01[k])) +
               ty.w1 * (tx.w0 * to_f32(p10[k]) + tx.w1 * to_f32(p11[k]));
      };
      if (skip) {
        const T* s = skip + (row * out_w + ox) * c;
        for (int64_t k = 0; k < c; ++k) from_f32(lerp(k) + to_f32(s[k]), out + o + k);
      } else {
        for (int64_t k = 0; k < c; ++k) from_f32(lerp(k), out + o + k);
      }
    }
  }
}

// The same result in two passes, for few channels (the logits), where the loop above cannot vectorise over
// channels. Pass 1: source rows [row0, row1) (row = image * h + iy), interpolated along x into fp32
// xrows [N, h, out_w, C]: tx.w0 p0 + tx.w1 p1.
template <typename T>
void bilinear_x_pass(const T* x, int64_t w, int64_t c, int64_t out_w, const Taps* columns, float* xrows,
                     int64_t row0, int64_t row1) {
  for (int64_t row = row0; row < row1; ++row) {
    const T* src = x + row * w * c;
    float* dst = xrows + row * out_w * c;
    for (int64_t ox = 0; ox < out_w; ++ox) {
      const Taps& tx = columns[ox];
      for (int64_t k = 0; k < c; ++k)
        dst[ox * c + k] = tx.w0 * to_f32(src[tx.i0 * c + k]) + tx.w1 * to_f32(src[tx.i1 * c + k]);
    }
  }
}

// Pass 2: output rows [row0, row1) as ty.w0 xrow0 + ty.w1 xrow1 (+ skip), contiguous over out_w * C.
template <typename T>
void bilinear_y_pass(const float* xrows, int64_t h, int64_t c, int64_t out_h, int64_t out_w, const Taps* rows,
                     const T* skip, T* y, int64_t y_pad, int64_t row0, int64_t row1) {
  const int64_t span = out_w * c;
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t b = row / out_h, oy = row % out_h;
    const Taps& ty = rows[oy];
    const float* r0 = xrows + (b * h + ty.i0) * span;
    const float* r1 = xrows + (b * h + ty.i1) * span;
    T* out = y + padded_index(b, oy, 0, out_h, out_w, c, y_pad);
    if (skip) {
      const T* s = skip + row * span;
      for (int64_t j = 0; j < span; ++j) from_f32(ty.w0 * r0[j] + ty.w1 * r1[j] + to_f32(s[j]), out + j);
    } else {
      for (int64_t j = 0; j < span; ++j) from_f32(ty.w0 * r0[j] + ty.w1 * r1[j], out + j);
    }
  }
}

// One ISA build's loops over rows [row0, row1) (output rows, or source rows for the x pass), dtype dispatched.
inline void bilinear_loop(BilinearLoop loop, const BilinearProblem& p, int64_t row0, int64_t row1) {
  const bool f32 = p.dtype == DType::f32;
  switch (loop) {
    case BilinearLoop::fused:
      if (f32)
        bilinear_rows(static_cast<const float*>(p.x), p.h, p.w, p.c, p.out_h, p.out_w, p.rows, p.columns,
                      static_cast<const float*>(p.skip), static_cast<float*>(p.y), p.y_pad, row0, row1);
      else
        bilinear_rows(static_cast<const uint16_t*>(p.x), p.h, p.w, p.c, p.out_h, p.out_w, p.rows, p.columns,
                      static_cast<const uint16_t*>(p.skip), static_cast<uint16_t*>(p.y), p.y_pad, row0, row1);
      return;
    case BilinearLoop::x_pass:
      if (f32) bilinear_x_pass(static_cast<const float*>(p.x), p.w, p.c, p.out_w, p.columns, p.xrows, row0, row1);
      else bilinear_x_pass(static_cast<const uint16_t*>(p.x), p.w, p.c, p.out_w, p.columns, p.xrows, row0, row1);
      return;
    case BilinearLoop::y_pass:
      if (f32)
        bilinear_y_pass(p.xrows, p.h, p.c, p.out_h, p.out_w, p.rows, static_cast<const float*>(p.skip),
                        static_cast<float*>(p.y), p.y_pad, row0, row1);
      else
        bilinear_y_pass(p.xrows, p.h, p.c, p.out_h, p.out_w, p.rows, static_cast<const uint16_t*>(p.skip),
                        static_cast<uint16_t*>(p.y), p.y_pad, row0, row1);
      return;
  }
}

}  // namespace
}  // namespace alnet
