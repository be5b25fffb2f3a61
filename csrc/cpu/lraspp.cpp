// Lite R-ASPP gate: the per-image channel gate from the global mean, then a 1x1 conv that multiplies it in.
#include <algorithm>
#include <vector>

#include "cpu_kernels.h"
#include "numeric.h"

namespace alnet {

namespace {

float hardsigmoid(float v) { return std::min(std::max(v / 6.f + 0.5f, 0.f), 1.f); }

constexpr int64_t kChannelChunk = 64;

// mean [cin] <- the mean over pixels of one image x [pixels, cin], in float64, channel chunks in parallel.
template <typename T>
void channel_mean(const T* x, int64_t pixels, int64_t cin, double* mean) {
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < cin; c0 += kChannelChunk) {
    const int64_t c1 = std::min(cin, c0 + kChannelChunk);
    double sum[kChannelChunk] = {};
    for (int64_t p = 0; p < pixels; ++p)
      for (int64_t c = c0; c < c1; ++c) sum[c - c0] += to_f32(x[p * cin + c]);
    for (int64_t c = c0; c < c1; ++c) mean[c] = sum[c - c0] / static_cast<double>(pixels);
  }
}

}  // namespace

void lraspp_gate_nhwc(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t cin,
                      const void* w_feat, bool w_feat_bf16_pairs, const float* b_feat,
                      const float* w_gate, const float* b_gate, void* y, int64_t cout) {
  std::vector<double> mean(static_cast<size_t>(cin));
  std::vector<float> gate(static_cast<size_t>(n * cout));
  for (int64_t b = 0; b < n; ++b) {
    const int64_t offset = b * h * w * cin;
    if (dtype == DType::f32) channel_mean(static_cast<const float*>(x) + offset, h * w, cin, mean.data());
    else channel_mean(static_cast<const uint16_t*>(x) + offset, h * w, cin, mean.data());
    for (int64_t co = 0; co < cout; ++co) {
      double s = b_gate[co];
      for (int64_t c = 0; c < cin; ++c) s += w_gate[co * cin + c] * mean[c];
      gate[b * cout + co] = hardsigmoid(static_cast<float>(s));
    }
  }
  conv2d_nhwc({x, dtype, n, h, w, cin, w_feat, w_feat_bf16_pairs, b_feat, gate.data(), y, dtype, cout, 1, 1, true});
}

}  // namespace alnet
