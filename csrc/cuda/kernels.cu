// Straightforward CUDA kernels: one thread per output element, fp32 accumulation, NHWC.
// Kept simple enough to review; the GPU tier (tests/test_gpu_native.py) checks them against torch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels.h"

namespace alnet::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32(float v) { return v; }
template <> __device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32(float v) { return __float2bfloat16_rn(v); }

unsigned blocks_for(int64_t total) { return static_cast<unsigned>((total + kThreads - 1) / kThreads); }

std::string last_error() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? std::string() : std::string(cudaGetErrorString(err));
}

template <typename T>
__global__ void conv2d_kernel(const T* x, int64_t n, int64_t h, int64_t w, int64_t cin, const T* weight,
                              const T* bias, const float* scale, T* y, int64_t ho, int64_t wo, int64_t cout,
                              int ksize, int stride, bool relu) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * ho * wo * cout) return;
  const int64_t co = i % cout, ow = (i / cout) % wo, oh = (i / (cout * wo)) % ho, b = i / (cout * wo * ho);
  const int pad = ksize / 2;
  float acc = 0.f;
  for (int ky = 0; ky < ksize; ++ky) {
    const int64_t ih = oh * stride - pad + ky;
    if (ih < 0 || ih >= h) continue;
    for (int kx = 0; kx < ksize; ++kx) {
      const int64_t iw = ow * stride - pad + kx;
      if (iw < 0 || iw >= w) continue;
      const T* xp = x + ((b * h + ih) * w + iw) * cin;
      const T* wp = weight + (ky * ksize + kx) * cin * cout + co;
      for (int64_t c = 0; c < cin; ++c) acc += to_f32(xp[c]) * to_f32(wp[c * cout]);
    }
  }
  acc += to_f32(bias[co]);
  if (relu) acc = fmaxf(acc, 0.f);
  if (scale) acc *= scale[b * cout + co];
  y[i] = from_f32<T>(acc);
}

template <typename T>
__global__ void channel_mean_kernel(const T* x, int64_t n, int64_t hw, int64_t c, float* mean) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * c) return;
  const int64_t b = i / c, ch = i % c;
  float s = 0.f;
  for (int64_t p = 0; p < hw; ++p) s += to_f32(x[(b * hw + p) * c + ch]);
  mean[i] = s / static_cast<float>(hw);
}

template <typename T>
__global__ void gate_kernel(const float* mean, int64_t n, int64_t cin, const T* w_gate, const T* b_gate,
                            int64_t cout, float* gate) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * cout) return;
  const int64_t b = i / cout, co = i % cout;
  float s = to_f32(b_gate[co]);
  for (int64_t c = 0; c < cin; ++c) s += to_f32(w_gate[co * cin + c]) * mean[b * cin + c];
  gate[i] = fminf(fmaxf(s / 6.f + 0.5f, 0.f), 1.f);
}

// PyTorch's align_corners=False rule: src = (dst + 0.5) * in / out - 0.5, clamped at 0.
__device__ __forceinline__ void taps(int64_t dst, int64_t in, int64_t out, int64_t& i0, int64_t& i1, float& l) {
  const float src = fmaxf((static_cast<float>(dst) + 0.5f) * (static_cast<float>(in) / out) - 0.5f, 0.f);
  i0 = static_cast<int64_t>(src);
  i1 = i0 < in - 1 ? i0 + 1 : i0;
  l = src - static_cast<float>(i0);
}

template <typename T>
__global__ void bilinear_kernel(const T* x, int64_t n, int64_t h, int64_t w, int64_t c, int64_t out_h,
                                int64_t out_w, const T* skip, T* y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * out_h * out_w * c) return;
  const int64_t ch = i % c, ox = (i / c) % out_w, oy = (i / (c * out_w)) % out_h, b = i / (c * out_w * out_h);
  int64_t y0, y1, x0, x1;
  float ly, lx;
  taps(oy, h, out_h, y0, y1, ly);
  taps(ox, w, out_w, x0, x1, lx);
  auto at = [&](int64_t yy, int64_t xx) { return to_f32(x[((b * h + yy) * w + xx) * c + ch]); };
  float v = (1.f - ly) * ((1.f - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1.f - lx) * at(y1, x0) + lx * at(y1, x1));
  if (skip) v += to_f32(skip[i]);
  y[i] = from_f32<T>(v);
}

template <typename F>
std::string dispatch(DType dtype, F&& launch) {
  switch (dtype) {
    case DType::f32: launch(float{}); break;
    case DType::f16: launch(__half{}); break;
    default: launch(__nv_bfloat16{}); break;
  }
  return last_error();
}

}  // namespace

std::string device_count(int* count) {
  const cudaError_t err = cudaGetDeviceCount(count);
  if (err == cudaSuccess) return "";
  *count = 0;
  cudaGetLastError();
  return std::string("no CUDA device: ") + cudaGetErrorString(err);
}

std::string runtime_version(int* version) {
  const cudaError_t err = cudaRuntimeGetVersion(version);
  return err == cudaSuccess ? std::string() : std::string(cudaGetErrorString(err));
}

std::string conv2d(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t cin, const void* weight,
                   const void* bias, const float* scale, void* y, int64_t cout, int ksize, int stride, bool relu,
                   void* stream) {
  const int64_t ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1;
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    conv2d_kernel<T><<<blocks_for(n * ho * wo * cout), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(x), n, h, w, cin, static_cast<const T*>(weight), static_cast<const T*>(bias), scale,
        static_cast<T*>(y), ho, wo, cout, ksize, stride, relu);
  });
}

std::string lraspp_gate(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t cin,
                        const void* w_feat, const void* b_feat, const void* w_gate, const void* b_gate,
                        float* workspace, void* y, int64_t cout, void* stream) {
  float* mean = workspace;
  float* gate = workspace + n * cin;
  const auto s = static_cast<cudaStream_t>(stream);
  const std::string err = dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    channel_mean_kernel<T><<<blocks_for(n * cin), kThreads, 0, s>>>(static_cast<const T*>(x), n, h * w, cin, mean);
    gate_kernel<T><<<blocks_for(n * cout), kThreads, 0, s>>>(mean, n, cin, static_cast<const T*>(w_gate),
                                                            static_cast<const T*>(b_gate), cout, gate);
  });
  if (!err.empty()) return err;
  return conv2d(x, dtype, n, h, w, cin, w_feat, b_feat, gate, y, cout, 1, 1, true, stream);
}

std::string bilinear(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t c, int64_t out_h,
                     int64_t out_w, const void* skip, void* y, void* stream) {
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    bilinear_kernel<T><<<blocks_for(n * out_h * out_w * c), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(x), n, h, w, c, out_h, out_w, static_cast<const T*>(skip), static_cast<T*>(y));
  });
}

}  // namespace alnet::cuda
