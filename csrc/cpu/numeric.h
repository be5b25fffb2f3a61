// Scalar helpers shared by every ISA: bf16 <-> fp32 and the conv epilogue for one 16-channel block.
#pragma once

#include <cstdint>
#include <cstring>

#include "cpu_kernels.h"

namespace alnet {

inline float bf16_to_f32(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN. Branch-free, so loops of it vectorise.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (bits >> 16) | 0x40u;
  return static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

// fp32 from a stored value: fp32 itself, or bf16 bits; and back, rounding bf16 to nearest even.
inline float to_f32(float v) { return v; }
inline float to_f32(uint16_t v) { return bf16_to_f32(v); }
inline void from_f32(float v, float* out) { *out = v; }
inline void from_f32(float v, uint16_t* out) { *out = f32_to_bf16(v); }

inline float load_as_f32(const void* p, DType t, int64_t i) {
  return t == DType::f32 ? static_cast<const float*>(p)[i] : bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}

inline void store_from_f32(void* p, DType t, int64_t i, float v) {
  if (t == DType::f32) static_cast<float*>(p)[i] = v;
  else static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
}

// acc: 16 accumulators of output channels [co0, co0 + 16) at output pixel (n, oh, ow).
inline void store_block_scalar(const ConvRow& a, int64_t n, int64_t oh, int64_t ow, int64_t co0, const float* acc) {
  const int64_t base = y_index(a, n, oh, ow);
  for (int64_t j = 0; j < 16 && co0 + j < a.cout; ++j) {
    float v = acc[j] + a.bias[co0 + j];
    if (a.relu && v < 0.f) v = 0.f;
    if (a.scale) v *= a.scale[n * a.cout + co0 + j];
    store_from_f32(a.y, a.y_dtype, base + co0 + j, v);
  }
}

}  // namespace alnet
