// The kernels' buffer helpers: the zero border around a bordered image (cpu_kernels.h, bordered activations),
// and the per-thread scratch buffer.
#include <cstring>
#include <vector>

#include "cpu_kernels.h"

namespace alnet {

void zero_border(void* y, size_t elem_size, int64_t n, int64_t h, int64_t w, int64_t c, int64_t pad) {
  if (pad == 0) return;
  auto* bytes = static_cast<unsigned char*>(y);
  const auto pixel = static_cast<int64_t>(elem_size) * c;
  const int64_t row = (w + 2 * pad) * pixel;
  for (int64_t b = 0; b < n; ++b) {
    unsigned char* image = bytes + b * (h + 2 * pad) * row;
    std::memset(image, 0, pad * row + pad * pixel);  // the top rows, then the first row's left border
    for (int64_t i = 0; i + 1 < h; ++i)  // row i's right border and row i + 1's left border are adjacent
      std::memset(image + (pad + i) * row + (pad + w) * pixel, 0, 2 * pad * pixel);
    std::memset(image + (pad + h - 1) * row + (pad + w) * pixel, 0, pad * pixel + pad * row);  // last right, bottom
  }
}

void* thread_scratch(size_t bytes) {
  constexpr size_t kAlign = 64;
  thread_local std::vector<unsigned char> buffer;
  if (buffer.size() < bytes + kAlign) buffer.resize(bytes + kAlign);
  const auto address = reinterpret_cast<uintptr_t>(buffer.data());
  return buffer.data() + (kAlign - address % kAlign) % kAlign;
}

}  // namespace alnet
