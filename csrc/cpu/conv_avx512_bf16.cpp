// AVX-512 BF16 row kernel: per pair of input channels, one vdpbf16ps multiplies a broadcast bf16 pair of
// each pixel by 16 channels' bf16 weight pairs ([Cout/16][k][k][Cp/2][16][2]), accumulating in fp32.
#include <immintrin.h>

#include <cstring>

#include "cpu_kernels.h"
#include "numeric.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")

#include "conv_avx512_tile.h"
#include "conv_bf16_pack.h"

namespace alnet {
namespace {

// bf16 pairs: one vdpbf16ps per pair of input channels, on a broadcast pair and 16 channels' weight pairs.
struct Bf16PairDot {
  using Elem = uint16_t;
  using Weights = __m512bh;
  using Pack = PackBf16Cvt;
  static constexpr int kStep = 2;
  static __m512bh weights(const uint16_t* w) { return (__m512bh)_mm512_loadu_si512(w); }
  static __m512bh broadcast(const uint16_t* x) {
    int32_t pair;
    std::memcpy(&pair, x, sizeof pair);
    return (__m512bh)_mm512_set1_epi32(pair);
  }
  static __m512 madd(__m512 acc, __m512bh v, __m512bh w) { return _mm512_dpbf16_ps(acc, v, w); }
};

}  // namespace

void conv_row_avx512_bf16(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb) {
  conv_row<DotTile<Bf16PairDot>>(a, n, oh, cb0, ncb);
}

}  // namespace alnet

#pragma GCC pop_options
