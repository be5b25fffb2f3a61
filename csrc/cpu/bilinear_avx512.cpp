// bilinear_rows compiled for AVX-512 (the channel loop vectorises 16 wide, bf16 conversions included).
#include "cpu_kernels.h"
#include "numeric.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")

#include "bilinear_rows.h"

namespace alnet {

void bilinear_rows_avx512(const void* x, DType dtype, int64_t h, int64_t w, int64_t c, int64_t out_h, int64_t out_w,
                          const void* rows, const void* columns, const void* skip, void* y, int64_t row0,
                          int64_t row1) {
  const auto* ty = static_cast<const Taps*>(rows);
  const auto* tx = static_cast<const Taps*>(columns);
  if (dtype == DType::f32)
    bilinear_rows(static_cast<const float*>(x), h, w, c, out_h, out_w, ty, tx, static_cast<const float*>(skip),
                  static_cast<float*>(y), row0, row1);
  else
    bilinear_rows(static_cast<const uint16_t*>(x), h, w, c, out_h, out_w, ty, tx,
                  static_cast<const uint16_t*>(skip), static_cast<uint16_t*>(y), row0, row1);
}

}  // namespace alnet

#pragma GCC pop_options
