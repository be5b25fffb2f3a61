// AVX-512 fp32 row kernel: per input channel, NB weight vectors times RW broadcast pixels (vfmadd231ps).
#include <immintrin.h>

#include "cpu_kernels.h"
#include "numeric.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")

#include "conv_avx512_tile.h"

namespace alnet {
namespace {

struct Fp32Tile {
  template <int RW, int NB>
  static void run(const ConvRow& a, int64_t n, int64_t oh, int64_t ow0, int64_t cb0) {
    const int64_t k = a.ksize, xs = a.stride * a.cp, block = k * k * a.cp * 16;
    const float* x = static_cast<const float*>(a.xpad) + ((n * a.hp + oh * a.stride) * a.wp + ow0 * a.stride) * a.cp;
    const float* w = static_cast<const float*>(a.weight) + cb0 * block;
    __m512 acc[RW][NB];
    for (int r = 0; r < RW; ++r)
      for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_setzero_ps();
    for (int64_t ky = 0; ky < k; ++ky)
      for (int64_t kx = 0; kx < k; ++kx) {
        const float* xp = x + (ky * a.wp + kx) * a.cp;
        const float* wp = w + (ky * k + kx) * a.cp * 16;
        for (int64_t c = 0; c < a.cp; ++c) {
          __m512 wv[NB];
          for (int b = 0; b < NB; ++b) wv[b] = _mm512_loadu_ps(wp + b * block + c * 16);
#pragma GCC unroll 16
          for (int r = 0; r < RW; ++r) {
            const __m512 v = _mm512_set1_ps(xp[r * xs + c]);
            for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_fmadd_ps(v, wv[b], acc[r][b]);
          }
        }
      }
    store_tile<RW, NB>(a, n, oh, ow0, cb0, acc);
  }
};

}  // namespace

void conv_row_avx512(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb) {
  conv_row<Fp32Tile>(a, n, oh, cb0, ncb);
}

}  // namespace alnet

#pragma GCC pop_options
