// The bilinear loop compiled for AVX-512 (it vectorises 16 wide, bf16 conversions included).
#include "cpu_kernels.h"
#include "numeric.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")

#include "bilinear_rows.h"

namespace alnet {

void bilinear_loop_avx512(const BilinearProblem& p, int64_t row0, int64_t row1, float* ring) {
  bilinear_loop(p, row0, row1, ring);
}

}  // namespace alnet

#pragma GCC pop_options
