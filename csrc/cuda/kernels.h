// CUDA kernels of the op table (NHWC, fp32 / fp16 / bf16 storage, fp32 accumulation), launched on a given
// device and stream. Plain C++ declarations (no CUDA headers) so the pybind11 module compiles
// without nvcc. Every function returns "" on success, else the CUDA error message.
// `device`: the ordinal of the device the pointers live on, current during the launches (the caller's current
// device is restored afterwards); `stream`: a stream of that device (cudaStream_t), nullptr for its default one.
// Sizes and offsets are int64 end to end: no size limit beyond the memory holding the tensors.
#pragma once

#include <cstdint>
#include <string>

namespace alnet::cuda {

enum class DType { f32 = 0, f16 = 1, bf16 = 2 };

// Number of visible devices, or an error message (e.g. "no CUDA device: ..." without a driver).
std::string device_count(int* count);
std::string runtime_version(int* version);

// y [N, Ho, Wo, Cout] = act(conv(x [N, H, W, Cin], weight [k][k][Cin][Cout], padding k / 2) + bias) * scale.
// scale: fp32 [N, Cout] or nullptr.
std::string conv2d(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t cin, const void* weight,
                   const void* bias, const float* scale, void* y, int64_t cout, int ksize, int stride, bool relu,
                   int device, void* stream);

// y = relu(conv1x1(x; w_feat [Cin][Cout], b_feat)) * hardsigmoid(w_gate [Cout][Cin] . mean_hw(x) + b_gate).
// workspace: fp32, lraspp_workspace_floats(n, h, w, cin, cout) elements.
std::string lraspp_gate(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t cin,
                        const void* w_feat, const void* b_feat, const void* w_gate, const void* b_gate,
                        float* workspace, void* y, int64_t cout, int device, void* stream);
int64_t lraspp_workspace_floats(int64_t n, int64_t h, int64_t w, int64_t cin, int64_t cout);

// y [N, Ho, Wo, C] = bilinear(x [N, h, w, C], align_corners=False) (+ skip [N, Ho, Wo, C] unless nullptr).
std::string bilinear(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t c, int64_t out_h,
                     int64_t out_w, const void* skip, void* y, int device, void* stream);

}  // namespace alnet::cuda
