// AVX-512 im2col for the bf16 stem: each output pixel's k x k patch of bf16 values (k k Cin <= 32) becomes
// one 64-byte row of cols, built from k masked loads (one per kernel row) and written with one store.
// Mask bits select the patch columns inside the image; masked-off lanes are neither read nor faulted on,
// so the loads need no bounds handling beyond the mask.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "cpu_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")

namespace alnet {

void im2col_bf16_avx512(const ConvProblem& p, int64_t ho, int64_t wo, uint16_t* cols) {
  const int64_t k = p.ksize, pad = k / 2, cin = p.cin, span = k * cin;
  const auto* x = static_cast<const uint16_t*>(p.x);
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < p.n * ho; ++row) {
    const int64_t n = row / ho, oh = row % ho;
    for (int64_t ow = 0; ow < wo; ++ow) {
      const int64_t iw0 = ow * p.stride - pad;
      const int64_t kx0 = std::max<int64_t>(0, -iw0), kx1 = std::min<int64_t>(k, p.w - iw0);
      const uint32_t inside = ((1u << (kx1 * cin)) - 1) & ~((1u << (kx0 * cin)) - 1);  // lanes of one kernel row
      __m512i patch = _mm512_setzero_si512();
      for (int64_t ky = 0; ky < k; ++ky) {
        const int64_t ih = oh * p.stride - pad + ky;
        if (ih < 0 || ih >= p.h) continue;
        // Lane ky * span + j holds x[n, ih, iw0 + j / cin, j % cin]: the load starts ky * span values early.
        const auto start = reinterpret_cast<uintptr_t>(x) +
                           (padded_index(n, ih, iw0, p.h, p.w, cin, p.x_pad) - ky * span) * static_cast<int64_t>(sizeof(uint16_t));
        patch = _mm512_mask_loadu_epi16(patch, inside << (ky * span), reinterpret_cast<const void*>(start));
      }
      _mm512_storeu_si512(cols + (row * wo + ow) * 32, patch);
    }
  }
}

}  // namespace alnet

#pragma GCC pop_options
