// PairStore's packing for kernels compiled with AVX512-BF16 (the bf16-pair and AMX kernels). Include after
// conv_avx512_tile.h, under a target pragma that has avx512bf16.
#pragma once

#include <immintrin.h>

#include "conv_avx512_tile.h"

namespace alnet {
namespace {

// One VCVTNE2PS2BF16 for both blocks: round to nearest even as round_to_bf16, except that it flushes fp32
// denormals (|v| < 2^-126) to a signed zero, which torch would round to a bf16 denormal: an absolute
// difference below 1.2e-38. Faster than PackBf16 (the commit that introduced it gives the A/B).
struct PackBf16Cvt {
  static __m512i pack(__m512 low, __m512 high) { return (__m512i)_mm512_cvtne2ps_pbh(high, low); }
};

}  // namespace
}  // namespace alnet
