// Lite R-ASPP gate: the per-image channel gate from the global mean (lraspp_gate.h, on the AVX-512 or the baseline
// build), then a 1x1 conv that multiplies it in.
#include <vector>

#include "cpu_kernels.h"
#include "lraspp_gate.h"

namespace alnet {

void lraspp_gate_nhwc(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t cin,
                      const void* w_feat, bool w_feat_bf16_pairs, const float* b_feat,
                      const float* w_gate, const float* b_gate, void* y, int64_t cout) {
  std::vector<float> mean(static_cast<size_t>(n * cin));
  std::vector<float> gate(static_cast<size_t>(n * cout));
  const LrasppGate p{x, dtype, n, h * w, cin, w_gate, b_gate, cout};
  if (active_isa() >= Isa::avx512) lraspp_gate_loop_avx512(p, mean.data(), gate.data());
  else lraspp_gate_loop(p, mean.data(), gate.data());
  conv2d_nhwc({x, dtype, n, h, w, cin, w_feat, w_feat_bf16_pairs, b_feat, gate.data(), y, dtype, cout, 1, 1, true});
}

}  // namespace alnet
