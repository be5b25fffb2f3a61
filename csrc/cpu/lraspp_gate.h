// The Lite R-ASPP gate's loops, compiled once per ISA: included by lraspp.cpp (baseline x86-64) and by
// lraspp_avx512.cpp (under an AVX-512 target pragma). Everything has internal linkage.
#pragma once

#include <algorithm>

#include "cpu_kernels.h"
#include "numeric.h"

namespace alnet {
namespace {

// Precision: each channel is summed in fp32 over blocks of kPixelBlock pixels (error <= 15 * 2^-24 ~ 1e-6 of the
// block's sum of |x|) and the blocks' sums in float64, so the error does not grow with the image as one fp32 sum over
// all its pixels would; the mean is then rounded to fp32. A gate's argument w . mean is kLanes fp32 sums of Cin /
// kLanes (rounded up) products each, added pairwise: error <= (Cin / kLanes + 8) 2^-24 ~ 1e-6 of sum |w mean| at
// Cin = 640. Both are the size of the 1x1 conv's own fp32 rounding and 10x under the fp32 tests' 1e-5 relative
// bound (the gates come out within 1e-7 of float64's). fp32 vectorises twice as wide as float64, with no conversions.
constexpr int64_t kPixelBlock = 16;
constexpr int64_t kSlab = 64;   // channels summed in one pass over an image's pixels, the unit threads share
constexpr int64_t kLanes = 64;  // independent sums of one gate dot product (4 zmm at AVX-512)

float hardsigmoid(float v) { return std::min(std::max(v / 6.f + 0.5f, 0.f), 1.f); }

// mean [width] <- the mean over pixels of width <= kSlab channels of x [pixels, cin] (x points at the first of them).
template <typename T>
void slab_mean(const T* __restrict x, int64_t pixels, int64_t cin, int64_t width, float* __restrict mean) {
  double sum[kSlab] = {};
  for (int64_t p0 = 0; p0 < pixels; p0 += kPixelBlock) {
    float block[kSlab] = {};
    for (int64_t p = p0; p < std::min(pixels, p0 + kPixelBlock); ++p)
      for (int64_t c = 0; c < width; ++c) block[c] += to_f32(x[p * cin + c]);
    for (int64_t c = 0; c < width; ++c) sum[c] += block[c];
  }
  for (int64_t c = 0; c < width; ++c) mean[c] = static_cast<float>(sum[c] / static_cast<double>(pixels));
}

// w [cin] . mean [cin]: kLanes independent sums (so it vectorises), added pairwise.
float dot(const float* __restrict w, const float* __restrict mean, int64_t cin) {
  float lane[kLanes] = {};
  const int64_t body = cin / kLanes * kLanes;
  for (int64_t c = 0; c < body; c += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) lane[j] += w[c + j] * mean[c + j];
  for (int64_t c = body; c < cin; ++c) lane[c - body] += w[c] * mean[c];
  for (int64_t half = kLanes / 2; half > 0; half /= 2)
    for (int64_t j = 0; j < half; ++j) lane[j] += lane[j + half];
  return lane[0];
}

// gate [N, Cout] <- hardsigmoid(w_gate . mean + b_gate) with mean [N, Cin] <- the mean over pixels of x [N, pixels,
// Cin]. Threads share the images' slabs of kSlab channels (the last one narrower where kSlab does not divide Cin),
// then the gate's rows.
template <typename T>
void gate_values(const LrasppGate& p, const T* x, float* mean, float* gate) {
  const int64_t slabs = (p.cin + kSlab - 1) / kSlab;
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.n * slabs; ++i) {
      const int64_t b = i / slabs, c = i % slabs * kSlab;
      slab_mean(x + b * p.pixels * p.cin + c, p.pixels, p.cin, std::min(kSlab, p.cin - c), mean + b * p.cin + c);
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.n * p.cout; ++i) {
      const int64_t b = i / p.cout, co = i % p.cout;
      gate[i] = hardsigmoid(p.b_gate[co] + dot(p.w_gate + co * p.cin, mean + b * p.cin, p.cin));
    }
  }
}

// One ISA build's gate, dtype dispatched.
inline void lraspp_gate_loop(const LrasppGate& p, float* mean, float* gate) {
  if (p.dtype == DType::f32) gate_values(p, static_cast<const float*>(p.x), mean, gate);
  else gate_values(p, static_cast<const uint16_t*>(p.x), mean, gate);
}

}  // namespace
}  // namespace alnet
