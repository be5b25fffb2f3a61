// Bilinear resize (align_corners=False, PyTorch's source-index rule) of NHWC tensors, optionally plus a skip:
// the taps once per call, then output rows in parallel on the AVX-512 or the baseline build of the row loop.
#include <algorithm>
#include <vector>

#include "bilinear_rows.h"
#include "cpu_kernels.h"

namespace alnet {

namespace {

// PyTorch: src = (dst + 0.5) * in / out - 0.5, clamped at 0; i1 = min(i0 + 1, in - 1).
std::vector<Taps> taps(int64_t in, int64_t out) {
  std::vector<Taps> result(static_cast<size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t dst = 0; dst < out; ++dst) {
    const float src = std::max((static_cast<float>(dst) + 0.5f) * scale - 0.5f, 0.f);
    const int64_t i0 = static_cast<int64_t>(src);
    const float l = src - static_cast<float>(i0);
    result[dst] = {i0, i0 + (i0 < in - 1 ? 1 : 0), 1.f - l, l};
  }
  return result;
}

void bilinear_rows_baseline(const void* x, DType dtype, int64_t h, int64_t w, int64_t c, int64_t out_h,
                            int64_t out_w, const Taps* rows, const Taps* columns, const void* skip, void* y,
                            int64_t row0, int64_t row1) {
  if (dtype == DType::f32)
    bilinear_rows(static_cast<const float*>(x), h, w, c, out_h, out_w, rows, columns,
                  static_cast<const float*>(skip), static_cast<float*>(y), row0, row1);
  else
    bilinear_rows(static_cast<const uint16_t*>(x), h, w, c, out_h, out_w, rows, columns,
                  static_cast<const uint16_t*>(skip), static_cast<uint16_t*>(y), row0, row1);
}

}  // namespace

void bilinear_nhwc(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t c, int64_t out_h,
                   int64_t out_w, const void* skip, void* y) {
  const std::vector<Taps> rows = taps(h, out_h), columns = taps(w, out_w);
  const bool avx512 = active_isa() >= Isa::avx512;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n * out_h; ++row) {
    if (avx512)
      bilinear_rows_avx512(x, dtype, h, w, c, out_h, out_w, rows.data(), columns.data(), skip, y, row, row + 1);
    else
      bilinear_rows_baseline(x, dtype, h, w, c, out_h, out_w, rows.data(), columns.data(), skip, y, row, row + 1);
  }
}

}  // namespace alnet
