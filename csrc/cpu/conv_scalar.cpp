// Portable row kernel (no SIMD): the fallback for CPUs without AVX2, and the simplest statement of the maths.
#include "cpu_kernels.h"
#include "numeric.h"

namespace alnet {

void conv_row_scalar(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb) {
  const auto* x = static_cast<const float*>(a.xpad);
  const auto* w = static_cast<const float*>(a.weight);
  const int64_t k = a.ksize;
  for (int64_t cb = cb0; cb < cb0 + ncb; ++cb) {
    const float* wb = w + cb * k * k * a.cp * 16;
    for (int64_t ow = 0; ow < a.wo; ++ow) {
      float acc[16] = {};
      for (int64_t ky = 0; ky < k; ++ky)
        for (int64_t kx = 0; kx < k; ++kx) {
          const float* px = x + ((n * a.hp + oh * a.stride + ky) * a.wp + ow * a.stride + kx) * a.cp;
          const float* wk = wb + (ky * k + kx) * a.cp * 16;
          for (int64_t c = 0; c < a.cp; ++c)
            for (int j = 0; j < 16; ++j) acc[j] += px[c] * wk[c * 16 + j];
        }
      store_block_scalar(a, n, oh, ow, cb * 16, acc);
    }
  }
}

}  // namespace alnet
