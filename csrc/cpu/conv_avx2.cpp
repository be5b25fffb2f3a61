// AVX2 + FMA row kernel: a 6-pixel x 16-channel output tile in 12 ymm accumulators, fp32 weights
// [Cout/16][k][k][Cin][16]. Compiled with a target pragma so the module still loads on older CPUs;
// the shared inline helpers are included before the pragma so no AVX2 code leaks into them.
#include <immintrin.h>

#include "cpu_kernels.h"
#include "numeric.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace alnet {
namespace {

constexpr int kTile = 6;

template <int RW>
void tile(const ConvRow& a, int64_t n, int64_t oh, int64_t ow0, int64_t cb) {
  const int64_t k = a.ksize, xs = a.stride * a.cp;
  const float* x = static_cast<const float*>(a.xpad) + ((n * a.hp + oh * a.stride) * a.wp + ow0 * a.stride) * a.cp;
  const float* w = static_cast<const float*>(a.weight) + cb * k * k * a.cp * 16;
  __m256 acc[RW][2];
  for (int r = 0; r < RW; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t ky = 0; ky < k; ++ky)
    for (int64_t kx = 0; kx < k; ++kx) {
      const float* xp = x + (ky * a.wp + kx) * a.cp;
      const float* wp = w + (ky * k + kx) * a.cp * 16;
      for (int64_t c = 0; c < a.cp; ++c) {
        const __m256 w0 = _mm256_loadu_ps(wp + c * 16), w1 = _mm256_loadu_ps(wp + c * 16 + 8);
#pragma GCC unroll 16
        for (int r = 0; r < RW; ++r) {
          const __m256 v = _mm256_broadcast_ss(xp + r * xs + c);
          acc[r][0] = _mm256_fmadd_ps(v, w0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(v, w1, acc[r][1]);
        }
      }
    }
  for (int r = 0; r < RW; ++r) {
    alignas(32) float out[16];
    _mm256_store_ps(out, acc[r][0]);
    _mm256_store_ps(out + 8, acc[r][1]);
    store_block_scalar(a, n, oh, ow0 + r, cb * 16, out);
  }
}

template <int RW = kTile - 1>
void tail(int64_t rem, const ConvRow& a, int64_t n, int64_t oh, int64_t ow0, int64_t cb) {
  if constexpr (RW >= 1) {
    if (rem == RW) tile<RW>(a, n, oh, ow0, cb);
    else tail<RW - 1>(rem, a, n, oh, ow0, cb);
  }
}

}  // namespace

void conv_row_avx2(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb) {
  for (int64_t cb = cb0; cb < cb0 + ncb; ++cb) {
    int64_t ow = 0;
    for (; ow + kTile <= a.wo; ow += kTile) tile<kTile>(a, n, oh, ow, cb);
    tail(a.wo - ow, a, n, oh, ow, cb);
  }
}

}  // namespace alnet

#pragma GCC pop_options
