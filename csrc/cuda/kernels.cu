// The native CUDA kernels: the portable fallback of the GPU path (docs/architecture.md, "GPU backends"), written
// for correctness and reviewability on any sm_80+ device, not speed (Triton is the tensor-core path). NHWC,
// fp32 accumulation, int64 indices throughout (no 32-bit offset can wrap, whatever the image size), grid-stride
// loops over a bounded grid, one division chain per output and none inside the tap and channel loops.
// Every entry point launches on the given device (made current for the call, then restored) and stream.
//
// The same source builds for the host with g++ through host_shim.h (-DALNET_CUDA_HOST_SHIM): the CPU tier
// (tests/test_cuda_host.py) runs these kernels against float64 references without a GPU.
#include <string>

#ifdef ALNET_CUDA_HOST_SHIM
#include "cuda/host_shim.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define ALNET_LAUNCH(kernel, grid, block, stream) kernel<<<grid, block, 0, stream>>>
#endif

#include "kernels.h"

// Grid size cap: the grid-stride loops cover any total with this many blocks. The host-shim build lowers it
// (-DALNET_CUDA_MAX_BLOCKS=...) so that its tests go through the loops' later iterations too.
#ifndef ALNET_CUDA_MAX_BLOCKS
#define ALNET_CUDA_MAX_BLOCKS (1 << 20)
#endif

namespace alnet::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = ALNET_CUDA_MAX_BLOCKS;
constexpr int64_t kMeanChunks = 256;  // pixel ranges per image summed in parallel for the Lite R-ASPP mean

template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32(float v) { return v; }
template <> __device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_threads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Element i of an NHWC tensor [n, rows, cols, channels]: i = ((b * rows + row) * cols + col) * channels + ch.
struct NhwcIndex {
  int64_t b, row, col, ch;
};
__device__ __forceinline__ NhwcIndex unravel_nhwc(int64_t i, int64_t rows, int64_t cols, int64_t channels) {
  int64_t q = i / channels;
  const int64_t ch = i - q * channels, col = q % cols;
  q /= cols;
  return {q / rows, q % rows, col, ch};
}

unsigned blocks_for(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

int64_t mean_chunks(int64_t hw) { return hw < kMeanChunks ? (hw > 0 ? hw : 1) : kMeanChunks; }

std::string last_error() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? std::string() : std::string(cudaGetErrorString(err));
}

// y [n, ho, wo, cout]: consecutive threads take consecutive output channels of one pixel, so they read the
// same input and consecutive weights ([k][k][cin][cout]).
template <typename T>
__global__ void conv2d_kernel(const T* x, int64_t n, int64_t h, int64_t w, int64_t cin, const T* weight,
                              const T* bias, const float* scale, T* y, int64_t ho, int64_t wo, int64_t cout,
                              int ksize, int stride, bool relu) {
  const int64_t pad = ksize / 2, total = n * ho * wo * cout;
  for (int64_t i = first_index(); i < total; i += grid_threads()) {
    const auto [b, oh, ow, co] = unravel_nhwc(i, ho, wo, cout);
    float acc = 0.f;
    for (int64_t ky = 0; ky < ksize; ++ky) {
      const int64_t ih = oh * stride - pad + ky;
      if (ih < 0 || ih >= h) continue;
      for (int64_t kx = 0; kx < ksize; ++kx) {
        const int64_t iw = ow * stride - pad + kx;
        if (iw < 0 || iw >= w) continue;
        const T* xp = x + ((b * h + ih) * w + iw) * cin;
        const T* wp = weight + (ky * ksize + kx) * cin * cout + co;
        for (int64_t c = 0; c < cin; ++c, wp += cout) acc += to_f32(xp[c]) * to_f32(*wp);
      }
    }
    acc += to_f32(bias[co]);
    if (relu) acc = fmaxf(acc, 0.f);
    if (scale) acc *= scale[b * cout + co];
    y[i] = from_f32<T>(acc);
  }
}

// partial [n, chunks, c]: channel sums of x [n, hw, c] over `chunks` equal pixel ranges, each in pixel order
// (deterministic) and compensated (Kahan: the error stays a few ulps however many pixels a range holds);
// consecutive threads read consecutive channels of one pixel.
template <typename T>
__global__ void channel_partial_sum_kernel(const T* x, int64_t n, int64_t hw, int64_t c, int64_t chunks,
                                           float* partial) {
  const int64_t per_chunk = (hw + chunks - 1) / chunks, total = n * chunks * c;
  for (int64_t i = first_index(); i < total; i += grid_threads()) {
    const int64_t q = i / c, ch = i - q * c;
    const int64_t chunk = q % chunks, b = q / chunks;
    const int64_t begin = chunk * per_chunk, end = begin + per_chunk < hw ? begin + per_chunk : hw;
    const T* xp = x + (b * hw + begin) * c + ch;
    float s = 0.f, lost = 0.f;  // lost: the low-order part of the sum the last addition dropped
    for (int64_t p = begin; p < end; ++p, xp += c) {
      const float v = to_f32(*xp) - lost, t = s + v;
      lost = (t - s) - v;
      s = t;
    }
    partial[i] = s;
  }
}

// mean [n, c] = (sum over chunks of partial [n, chunks, c]) / hw.
__global__ void channel_mean_kernel(const float* partial, int64_t n, int64_t chunks, int64_t c, int64_t hw,
                                    float* mean) {
  for (int64_t i = first_index(); i < n * c; i += grid_threads()) {
    const int64_t b = i / c, ch = i - b * c;
    const float* pp = partial + b * chunks * c + ch;
    float s = 0.f;
    for (int64_t k = 0; k < chunks; ++k, pp += c) s += *pp;
    mean[i] = s / static_cast<float>(hw);
  }
}

// gate [n, cout] = hardsigmoid(w_gate [cout, cin] . mean [n, cin] + b_gate).
template <typename T>
__global__ void gate_kernel(const float* mean, int64_t n, int64_t cin, const T* w_gate, const T* b_gate,
                            int64_t cout, float* gate) {
  for (int64_t i = first_index(); i < n * cout; i += grid_threads()) {
    const int64_t b = i / cout, co = i - b * cout;
    const T* wp = w_gate + co * cin;
    const float* mp = mean + b * cin;
    float s = to_f32(b_gate[co]);
    for (int64_t c = 0; c < cin; ++c) s += to_f32(wp[c]) * mp[c];
    gate[i] = fminf(fmaxf(s / 6.f + 0.5f, 0.f), 1.f);
  }
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
  const int64_t total = n * out_h * out_w * c;
  for (int64_t i = first_index(); i < total; i += grid_threads()) {
    const auto [b, oy, ox, ch] = unravel_nhwc(i, out_h, out_w, c);
    int64_t y0, y1, x0, x1;
    float ly, lx;
    taps(oy, h, out_h, y0, y1, ly);
    taps(ox, w, out_w, x0, x1, lx);
    const T* image = x + b * h * w * c + ch;
    auto at = [&](int64_t yy, int64_t xx) { return to_f32(image[(yy * w + xx) * c]); };
    float v = (1.f - ly) * ((1.f - lx) * at(y0, x0) + lx * at(y0, x1)) +
              ly * ((1.f - lx) * at(y1, x0) + lx * at(y1, x1));
    if (skip) v += to_f32(skip[i]);
    y[i] = from_f32<T>(v);
  }
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

// Runs `launches` with `device` current (the tensors' device: kernels launched while another device is current
// would run in the wrong context), then makes the caller's device current again.
template <typename F>
std::string on_device(int device, F&& launches) {
  int previous = 0;
  cudaError_t err = cudaGetDevice(&previous);
  if (err == cudaSuccess && previous != device) err = cudaSetDevice(device);
  if (err != cudaSuccess) {
    cudaGetLastError();  // reported here: not left for the next call to find
    return "cannot make CUDA device " + std::to_string(device) + " current: " + cudaGetErrorString(err);
  }
  const std::string result = launches();
  if (previous != device) cudaSetDevice(previous);
  return result;
}

std::string launch_conv2d(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t cin,
                          const void* weight, const void* bias, const float* scale, void* y, int64_t cout, int ksize,
                          int stride, bool relu, cudaStream_t stream) {
  const int64_t ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1, total = n * ho * wo * cout;
  if (total == 0) return "";
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    ALNET_LAUNCH(conv2d_kernel<T>, blocks_for(total), kThreads, stream)(
        static_cast<const T*>(x), n, h, w, cin, static_cast<const T*>(weight), static_cast<const T*>(bias), scale,
        static_cast<T*>(y), ho, wo, cout, ksize, stride, relu);
  });
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
                   int device, void* stream) {
  return on_device(device, [&] {
    return launch_conv2d(x, dtype, n, h, w, cin, weight, bias, scale, y, cout, ksize, stride, relu,
                         static_cast<cudaStream_t>(stream));
  });
}

int64_t lraspp_workspace_floats(int64_t n, int64_t h, int64_t w, int64_t cin, int64_t cout) {
  return n * (mean_chunks(h * w) * cin + cin + cout);
}

std::string lraspp_gate(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t cin,
                        const void* w_feat, const void* b_feat, const void* w_gate, const void* b_gate,
                        float* workspace, void* y, int64_t cout, int device, void* stream) {
  const int64_t hw = h * w, chunks = mean_chunks(hw);
  float* partial = workspace;
  float* mean = partial + n * chunks * cin;
  float* gate = mean + n * cin;
  const auto s = static_cast<cudaStream_t>(stream);
  return on_device(device, [&] {
    if (n * cin * cout == 0) return std::string();
    const std::string err = dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      ALNET_LAUNCH(channel_partial_sum_kernel<T>, blocks_for(n * chunks * cin), kThreads, s)(
          static_cast<const T*>(x), n, hw, cin, chunks, partial);
      ALNET_LAUNCH(channel_mean_kernel, blocks_for(n * cin), kThreads, s)(partial, n, chunks, cin, hw, mean);
      ALNET_LAUNCH(gate_kernel<T>, blocks_for(n * cout), kThreads, s)(
          mean, n, cin, static_cast<const T*>(w_gate), static_cast<const T*>(b_gate), cout, gate);
    });
    if (!err.empty()) return err;
    return launch_conv2d(x, dtype, n, h, w, cin, w_feat, b_feat, gate, y, cout, 1, 1, true, s);
  });
}

std::string bilinear(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t c, int64_t out_h,
                     int64_t out_w, const void* skip, void* y, int device, void* stream) {
  const int64_t total = n * out_h * out_w * c;
  return on_device(device, [&] {
    if (total == 0) return std::string();
    return dispatch(dtype, [&](auto tag) {
      using T = decltype(tag);
      ALNET_LAUNCH(bilinear_kernel<T>, blocks_for(total), kThreads, static_cast<cudaStream_t>(stream))(
          static_cast<const T*>(x), n, h, w, c, out_h, out_w, static_cast<const T*>(skip), static_cast<T*>(y));
    });
  });
}

}  // namespace alnet::cuda
