// Bilinear resize (align_corners=False, PyTorch's source-index rule) of NHWC tensors, optionally plus a skip:
// the taps once per call, then rows in parallel on the AVX-512 or the baseline build of the loops. Many
// channels: one fused loop over output rows, vectorised over channels. Few channels (the logits): an x pass
// over the source rows into fp32, then a y pass over the output rows, vectorised along the row.
#include <algorithm>
#include <vector>

#include "bilinear_rows.h"
#include "cpu_kernels.h"

namespace alnet {

namespace {

constexpr int64_t kFusedMinChannels = 16;  // one AVX-512 vector of fp32 channels

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

void parallel_rows(BilinearLoop loop, const BilinearProblem& p, int64_t rows) {
  const bool avx512 = active_isa() >= Isa::avx512;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    if (avx512) bilinear_loop_avx512(loop, p, row, row + 1);
    else bilinear_loop(loop, p, row, row + 1);
  }
}

}  // namespace

void bilinear_nhwc(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t c, int64_t out_h,
                   int64_t out_w, const void* skip, void* y, int64_t y_pad) {
  const std::vector<Taps> rows = taps(h, out_h), columns = taps(w, out_w);
  BilinearProblem p{x, dtype, n, h, w, c, out_h, out_w, rows.data(), columns.data(), skip, y, y_pad,
                     nullptr};
  if (c >= kFusedMinChannels) {
    parallel_rows(BilinearLoop::fused, p, n * out_h);
    return;
  }
  std::vector<float> xrows(static_cast<size_t>(n * h * out_w * c));
  p.xrows = xrows.data();
  parallel_rows(BilinearLoop::x_pass, p, n * h);
  parallel_rows(BilinearLoop::y_pass, p, n * out_h);
}

}  // namespace alnet
