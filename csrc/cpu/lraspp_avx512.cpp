// The Lite R-ASPP gate's loops compiled for AVX-512 (the mean 16 channels wide, bf16 conversions included, and the
// gate's dot products 16 wide with FMA).
#include "cpu_kernels.h"
#include "numeric.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")

#include "lraspp_gate.h"

namespace alnet {

void lraspp_gate_loop_avx512(const LrasppGate& p, float* mean, float* gate) { lraspp_gate_loop(p, mean, gate); }

}  // namespace alnet

#pragma GCC pop_options
