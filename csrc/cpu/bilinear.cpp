// Bilinear resize (align_corners=False, PyTorch's source-index rule) of NHWC tensors, optionally plus a skip:
// the taps once per call, then one band of output rows per thread on the AVX-512 or the baseline build of the
// loop (bilinear_rows.h), each band interpolating its source rows along x once into a two-row ring.
#include <algorithm>
#include <utility>
#include <vector>

#include "bilinear_rows.h"
#include "cpu_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

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

// [row0, row1): the calling thread's even share of [0, total) inside a parallel region.
std::pair<int64_t, int64_t> thread_share(int64_t total) {
#ifdef _OPENMP
  const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
  return {total * t / threads, total * (t + 1) / threads};
#else
  return {0, total};
#endif
}

}  // namespace

void bilinear_nhwc(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t c, int64_t out_h,
                   int64_t out_w, const void* skip, void* y, int64_t y_pad) {
  const std::vector<Taps> rows = taps(h, out_h), columns = taps(w, out_w);
  const BilinearProblem p{x, dtype, n, h, w, c, out_h, out_w, rows.data(), columns.data(), skip, y, y_pad};
  const int64_t total = n * out_h;
  const bool avx512 = active_isa() >= Isa::avx512;
#pragma omp parallel
  {
    const auto [row0, row1] = thread_share(total);
    if (row0 < row1) {
      auto* ring = static_cast<float*>(thread_scratch(sizeof(float) * 2 * out_w * c));
      if (avx512) bilinear_loop_avx512(p, row0, row1, ring);
      else bilinear_loop(p, row0, row1, ring);
    }
  }
  zero_border(y, dtype == DType::f32 ? sizeof(float) : sizeof(uint16_t), n, out_h, out_w, c, y_pad);
}

}  // namespace alnet
