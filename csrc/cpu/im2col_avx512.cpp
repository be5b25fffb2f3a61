// AVX-512 im2col of one output row for the bf16 stem: each output pixel's k x k patch of bf16 values
// (k k Cin <= 32) becomes one 64-byte row of cols, built from k masked loads (one per kernel row) and
// written with one store. Mask bits select the patch columns inside the image; masked-off lanes are
// neither read nor faulted on, so the loads need no bounds handling beyond the mask.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "cpu_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")

namespace alnet {

void im2col_row_bf16_avx512(const ConvProblem& p, int64_t n, int64_t oh, int64_t wo, uint16_t* cols) {
  const int64_t k = p.ksize, pad = k / 2, cin = p.cin, span = k * cin;  // k = 3: im2col convs are 3x3
  // Kernel row ky of pixel ow's patch starts at rows[ky] + ow * step (lanes [ky span, ky span + span) of a load
  // that starts ky * span values early); rows outside the image contribute zeros (an empty mask).
  const auto x = reinterpret_cast<uintptr_t>(p.x);
  const int64_t step = p.stride * cin * static_cast<int64_t>(sizeof(uint16_t));  // bytes
  uintptr_t rows[3];  // addresses: the first may lie before x, where only masked-off lanes point
  uint32_t row_inside[3];
  for (int64_t ky = 0; ky < k; ++ky) {
    const int64_t ih = oh * p.stride - pad + ky;
    const bool inside = ih >= 0 && ih < p.h;
    const int64_t first = padded_index(n, inside ? ih : 0, -pad, p.h, p.w, cin, p.x_pad) - ky * span;
    rows[ky] = x + first * static_cast<int64_t>(sizeof(uint16_t));
    row_inside[ky] = inside ? ~0u : 0u;
  }
  for (int64_t ow = 0; ow < wo; ++ow) {
    const int64_t iw0 = ow * p.stride - pad;
    const int64_t kx0 = std::max<int64_t>(0, -iw0), kx1 = std::min<int64_t>(k, p.w - iw0);
    const uint32_t inside = ((1u << (kx1 * cin)) - 1) & ~((1u << (kx0 * cin)) - 1);  // lanes of one kernel row
    __m512i patch = _mm512_setzero_si512();
    for (int64_t ky = 0; ky < k; ++ky)  // masked-off lanes are neither read nor faulted on
      patch = _mm512_mask_loadu_epi16(patch, (inside & row_inside[ky]) << (ky * span),
                                      reinterpret_cast<const void*>(rows[ky] + ow * step));
    _mm512_storeu_si512(cols + ow * 32, patch);
  }
}

}  // namespace alnet

#pragma GCC pop_options
