// AVX-512 fp32 row kernel: per input channel, NB weight vectors times RW broadcast pixels (vfmadd231ps).
#include <immintrin.h>

#include "cpu_kernels.h"
#include "numeric.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")

#include "conv_avx512_tile.h"

namespace alnet {

void conv_row_avx512(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb) {
  conv_row<DotTile<Fp32Dot>>(a, n, oh, cb0, ncb);
}

}  // namespace alnet

#pragma GCC pop_options
