// Host shim: lets a plain C++17 compiler build csrc/cuda/kernels.cu (g++ -x c++ -DALNET_CUDA_HOST_SHIM), so the
// CUDA kernels run on the CPU, serially, for the CPU tier of their tests (tests/test_cuda_host.py). nvcc builds
// never include it.
//
// It maps what the kernels use: the function qualifiers, dim3/uint3 and threadIdx/blockIdx/blockDim/gridDim
// (thread-local globals), __half/__nv_bfloat16 as 16-bit storage with round-to-nearest-even conversions, the
// runtime calls kernels.cu makes (errors, device count, current device) and ALNET_LAUNCH, which loops over the
// grid and then the block, one thread at a time. The shim has kDevices simulated devices; a launch records the
// device current at that time (launch_device), so the tests can check the device guard.
// Limits: no shared memory, __syncthreads or warp intrinsics (the kernels use none; a kernel that needs them
// needs a threaded launcher here first).
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>

#include "cpu/numeric.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

// ---- 16-bit floating point storage (the bit layouts of IEEE binary16 and bfloat16) ----

struct __half {
  uint16_t bits;
};
struct __nv_bfloat16 {
  uint16_t bits;
};

inline float __half2float(__half h) {
  const int exponent = (h.bits >> 10) & 0x1f, mantissa = h.bits & 0x3ff;
  const float magnitude = exponent == 0    ? ldexpf(static_cast<float>(mantissa), -24)  // zero, subnormal
                          : exponent == 31 ? (mantissa ? NAN : INFINITY)
                                           : ldexpf(static_cast<float>(mantissa | 0x400), exponent - 25);
  return (h.bits & 0x8000) ? -magnitude : magnitude;
}

inline __half __float2half_rn(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t magnitude = u & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return {static_cast<uint16_t>(sign | 0x7e00u)};  // NaN
  if (magnitude >= 0x477ff000u) return {static_cast<uint16_t>(sign | 0x7c00u)};  // >= 65520 rounds to inf
  if (magnitude < 0x38800000u) {  // below 2^-14: a subnormal half, in units of 2^-24 (the scaling is exact)
    return {static_cast<uint16_t>(sign | static_cast<uint16_t>(nearbyintf(fabsf(f) * 16777216.0f)))};  // ties to even
  }
  uint32_t h = (magnitude - 0x38000000u) >> 13;  // exponent rebiased 127 -> 15, top 10 mantissa bits
  const uint32_t dropped = magnitude & 0x1fffu;
  if (dropped > 0x1000u || (dropped == 0x1000u && (h & 1u))) ++h;  // ties to even; a carry bumps the exponent
  return {static_cast<uint16_t>(sign | h)};
}

// bfloat16: the CPU kernels' conversions (round to nearest even, NaN kept), on the same bits.
inline float __bfloat162float(__nv_bfloat16 b) { return alnet::bf16_to_f32(b.bits); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return {alnet::f32_to_bf16(f)}; }

// ---- the runtime calls kernels.cu makes ----

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
};
using cudaStream_t = struct CUstream_st*;

namespace alnet_host_shim {

constexpr int kDevices = 2;
inline thread_local int current_device = 0;
inline thread_local int launch_device = -1;  // the device current at the last launch
inline thread_local cudaError_t last_error = cudaSuccess;

// kernel<<<grid, block>>>(args...): every block of the grid in order, every thread of a block in order.
template <typename... Params>
struct Launch {
  void (*kernel)(Params...);
  dim3 grid, block;

  template <typename... Args>
  void operator()(Args&&... args) const {
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x * block.y * block.z == 0 ||
        block.x * block.y * block.z > 1024) {
      last_error = cudaErrorInvalidConfiguration;
      return;
    }
    launch_device = current_device;
    gridDim = grid;
    blockDim = block;
    for (unsigned bz = 0; bz < grid.z; ++bz)
      for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx)
          for (unsigned tz = 0; tz < block.z; ++tz)
            for (unsigned ty = 0; ty < block.y; ++ty)
              for (unsigned tx = 0; tx < block.x; ++tx) {
                blockIdx = {bx, by, bz};
                threadIdx = {tx, ty, tz};
                kernel(args...);
              }
  }
};

template <typename... Params>
Launch<Params...> launch(void (*kernel)(Params...), dim3 grid, dim3 block) {
  return {kernel, grid, block};
}

}  // namespace alnet_host_shim

#define ALNET_LAUNCH(kernel, grid, block, stream) ::alnet_host_shim::launch(kernel, grid, block)

inline cudaError_t cudaGetLastError() {
  const cudaError_t err = alnet_host_shim::last_error;
  alnet_host_shim::last_error = cudaSuccess;
  return err;
}

inline const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
  }
  return "unknown error";
}

inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = alnet_host_shim::kDevices;
  return cudaSuccess;
}

inline cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = 0;  // no CUDA runtime: the host shim
  return cudaSuccess;
}

inline cudaError_t cudaGetDevice(int* device) {
  *device = alnet_host_shim::current_device;
  return cudaSuccess;
}

inline cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= alnet_host_shim::kDevices) return alnet_host_shim::last_error = cudaErrorInvalidDevice;
  alnet_host_shim::current_device = device;
  return cudaSuccess;
}
