// AVX-512 BF16 row kernel: per pair of input channels, one vdpbf16ps multiplies a broadcast bf16 pair of
// each pixel by 16 channels' bf16 weight pairs ([Cout/16][k][k][Cp/2][16][2]), accumulating in fp32.
#include <immintrin.h>

#include <cstring>

#include "cpu_kernels.h"
#include "numeric.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")

#include "conv_avx512_tile.h"

namespace alnet {
namespace {

inline int32_t load_pair(const uint16_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct Bf16PairTile {
  template <int RW, int NB>
  static void run(const ConvRow& a, int64_t n, int64_t oh, int64_t ow0, int64_t cb0) {
    const int64_t k = a.ksize, xs = a.stride * a.cp, block = k * k * a.cp * 16;
    const uint16_t* x =
        static_cast<const uint16_t*>(a.xpad) + ((n * a.hp + oh * a.stride) * a.wp + ow0 * a.stride) * a.cp;
    const uint16_t* w = static_cast<const uint16_t*>(a.weight) + cb0 * block;
    __m512 acc[RW][NB];
    for (int r = 0; r < RW; ++r)
      for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_setzero_ps();
    for (int64_t ky = 0; ky < k; ++ky)
      for (int64_t kx = 0; kx < k; ++kx) {
        const uint16_t* xp = x + (ky * a.wp + kx) * a.cp;
        const uint16_t* wp = w + (ky * k + kx) * a.cp * 16;
        for (int64_t c = 0; c < a.cp; c += 2) {
          __m512bh wv[NB];
          for (int b = 0; b < NB; ++b) wv[b] = (__m512bh)_mm512_loadu_si512(wp + b * block + c * 16);
#pragma GCC unroll 16
          for (int r = 0; r < RW; ++r) {
            const __m512bh v = (__m512bh)_mm512_set1_epi32(load_pair(xp + r * xs + c));
            for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], v, wv[b]);
          }
        }
      }
    store_tile<RW, NB>(a, n, oh, ow0, cb0, acc);
  }
};

}  // namespace

void conv_row_avx512_bf16(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb) {
  conv_row<Bf16PairTile>(a, n, oh, cb0, ncb);
}

}  // namespace alnet

#pragma GCC pop_options
