// conv2d_nhwc: pads (and converts) the input once, then runs one ISA's row kernel over
// (image, output row, pair of 16-channel output blocks) in parallel with OpenMP. fp32 3x3 stride-1 convs
// with Cin, Cout multiples of 16 (>= 32) go to Winograd F(2x2, 3x3) instead (winograd_avx512.cpp) when the
// caller passes the transformed weights.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "cpu_kernels.h"
#include "numeric.h"

namespace alnet {

int64_t conv_out_size(int64_t in, int ksize, int stride) { return (in + 2 * (ksize / 2) - ksize) / stride + 1; }

namespace {

using RowKernel = void (*)(const ConvRow&, int64_t, int64_t, int64_t, int64_t);

const char* row_kernel_name(bool bf16_pairs) {
  if (bf16_pairs) return active_isa() == Isa::amx_bf16 ? "amx_bf16" : "avx512_bf16";
  return active_isa() >= Isa::avx512 ? "avx512" : isa_name(active_isa());
}

RowKernel row_kernel(bool bf16_pairs) {
  if (bf16_pairs) return active_isa() == Isa::amx_bf16 ? conv_row_amx : conv_row_avx512_bf16;
  switch (active_isa()) {
    case Isa::amx_bf16:
    case Isa::avx512_bf16:
    case Isa::avx512: return conv_row_avx512;
    case Isa::avx2: return conv_row_avx2;
    default: return conv_row_scalar;
  }
}

// The calling thread's scratch for elems values of T, then slack zeroed values that AMX tiles may read past the
// last row.
template <typename T>
T* staging(size_t elems, size_t slack) {
  auto* buf = static_cast<T*>(thread_scratch((elems + slack) * sizeof(T)));
  std::memset(buf + elems, 0, slack * sizeof(T));
  return buf;
}

// Cin (or K = k k Cin) as the kernel reads it: rounded up to the bf16-pair multiple, as it is for fp32.
int64_t channels_read(int64_t c, bool pairs, int64_t multiple) { return pairs ? (c + multiple - 1) / multiple * multiple : c; }

// xpad [N, H + 2 pad, W + 2 pad, cp] <- x [N, H, W, cin], zero border and zero channels [cin, cp).
template <typename Out>
void pad_input(const ConvProblem& p, int pad, int64_t cp, Out* xpad) {
  const int64_t hp = p.h + 2 * pad, wp = p.w + 2 * pad;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < p.n * hp; ++row) {
    const int64_t n = row / hp, ih = row % hp - pad;
    Out* dst = xpad + row * wp * cp;
    if (ih < 0 || ih >= p.h) {
      std::memset(dst, 0, sizeof(Out) * wp * cp);
      continue;
    }
    std::memset(dst, 0, sizeof(Out) * pad * cp);
    std::memset(dst + (wp - pad) * cp, 0, sizeof(Out) * pad * cp);
    const int64_t src = padded_index(n, ih, 0, p.h, p.w, p.cin, p.x_pad);
    Out* interior = dst + pad * cp;
    const bool same_type = (sizeof(Out) == 4) == (p.x_dtype == DType::f32);
    if (same_type && cp == p.cin) {  // a plain row copy
      std::memcpy(interior, static_cast<const Out*>(p.x) + src, sizeof(Out) * p.w * p.cin);
      continue;
    }
    for (int64_t iw = 0; iw < p.w; ++iw) {
      Out* px = interior + iw * cp;
      for (int64_t c = 0; c < p.cin; ++c) {
        if constexpr (sizeof(Out) == 4) px[c] = load_as_f32(p.x, p.x_dtype, src + iw * p.cin + c);
        else px[c] = static_cast<const uint16_t*>(p.x)[src + iw * p.cin + c];  // bf16 pairs: bf16 in, bf16 out
      }
      for (int64_t c = p.cin; c < cp; ++c) px[c] = 0;
    }
  }
}

// The value stored in cols: fp32 (from fp32 or bf16 bits), or bf16 bits kept as they are (bf16-pair kernels).
template <typename Out, typename In> Out col_value(In v) { return to_f32(v); }
template <> inline uint16_t col_value<uint16_t, uint16_t>(uint16_t v) { return v; }

// cols [Wo, kcp] <- output row (n, oh)'s k x k patches of x (zero outside), kc = k * k * cin values per patch,
// then zeros up to kcp. With them a conv of few input channels (the stem: Cin = 1 or 3) runs as a 1x1 conv over
// K = 9 Cin instead of 9 taps of Cin (for bf16 pairs: of Cin padded to 32 for AMX tiles). fp32 packed weights
// [Cout/16][k][k][Cin][16] already are [Cout/16][1][1][k k Cin][16]; bf16 pairs are packed for it
// (conv_uses_im2col). In: float or bf16 bits; Out: float, or bf16 bits for the bf16-pair kernels.
// Inside the image each kernel row of a patch is k * cin contiguous input values.
template <typename In, typename Out>
void im2col_row(const ConvProblem& p, const In* x, int64_t n, int64_t oh, int64_t wo, int64_t kcp, Out* cols) {
  const int64_t k = p.ksize, pad = k / 2, kc = k * k * p.cin, span = k * p.cin;
  for (int64_t ow = 0; ow < wo; ++ow) {
    Out* dst = cols + ow * kcp;
    std::fill(dst + kc, dst + kcp, Out{});
    const int64_t iw0 = ow * p.stride - pad;
    const bool columns_inside = iw0 >= 0 && iw0 + k <= p.w;
    for (int64_t ky = 0; ky < k; ++ky, dst += span) {
      const int64_t ih = oh * p.stride - pad + ky;
      if (ih < 0 || ih >= p.h) {
        std::fill(dst, dst + span, Out{});
        continue;
      }
      const int64_t src = padded_index(n, ih, iw0, p.h, p.w, p.cin, p.x_pad);  // left of the row at iw0 < 0: never read
      if (columns_inside) {
        for (int64_t i = 0; i < span; ++i) dst[i] = col_value<Out>(x[src + i]);
        continue;
      }
      for (int64_t kx = 0; kx < k; ++kx) {
        const bool inside = iw0 + kx >= 0 && iw0 + kx < p.w;
        for (int64_t c = 0; c < p.cin; ++c)
          dst[kx * p.cin + c] = inside ? col_value<Out>(x[src + kx * p.cin + c]) : Out{};
      }
    }
  }
}

constexpr int64_t kIm2colMaxCin = 4;
constexpr int64_t kAmxTilePixels = 16;  // pixels per AMX A tile: conv_row_amx reads whole tiles
constexpr size_t kAmxSlackPixels = 34;  // conv_row_amx's 32-pixel tiles, plus the 3x3 taps' reach

// Every output row of every image, for each pair of 16-channel output blocks, in parallel.
void run_rows(const ConvRow& a, RowKernel kernel, int64_t n, int64_t blocks) {
  const int64_t groups = (blocks + 1) / 2;
  const bool amx = kernel == conv_row_amx;  // tile configuration is per thread: once per thread per call
#pragma omp parallel
  {
    if (amx) amx_begin();
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n * a.ho * groups; ++t) {
      const int64_t g = t % groups, oh = (t / groups) % a.ho, b = t / (groups * a.ho);
      kernel(a, b, oh, 2 * g, std::min<int64_t>(2, blocks - 2 * g));
    }
    if (amx) amx_end();
  }
}

// A conv of few input channels as a 1x1 conv over its patches (im2col_row), one output row at a time: the row's
// patches, gathered into the thread's scratch (it stays in L1/L2), are the one-row image the row kernel reads.
void run_im2col_rows(const ConvProblem& p, RowKernel kernel, bool pairs, int64_t ho, int64_t wo, int64_t kcp,
                     int64_t blocks) {
  const bool amx = kernel == conv_row_amx;
  const auto y_bytes = static_cast<int64_t>(p.y_dtype == DType::f32 ? sizeof(float) : sizeof(uint16_t));
#pragma omp parallel
  {
    if (amx) amx_begin();
    void* cols = pairs ? static_cast<void*>(staging<uint16_t>(wo * kcp, (amx ? kAmxSlackPixels : 0) * kcp))
                       : static_cast<void*>(staging<float>(wo * kcp, 0));
#pragma omp for schedule(static)
    for (int64_t row = 0; row < p.n * ho; ++row) {
      const int64_t n = row / ho, oh = row % ho;
      const auto* x16 = static_cast<const uint16_t*>(p.x);
      if (!pairs && p.x_dtype == DType::f32)
        im2col_row(p, static_cast<const float*>(p.x), n, oh, wo, kcp, static_cast<float*>(cols));
      else if (!pairs) im2col_row(p, x16, n, oh, wo, kcp, static_cast<float*>(cols));
      else if (kcp == 32) im2col_row_bf16_avx512(p, n, oh, wo, static_cast<uint16_t*>(cols));  // pairs imply AVX-512
      else im2col_row(p, x16, n, oh, wo, kcp, static_cast<uint16_t*>(cols));
      // output row (n, oh) as a one-row image without a border: y and scale start at its first pixel
      char* y_row = static_cast<char*>(p.y) + padded_index(n, oh, 0, ho, wo, p.cout, p.y_pad) * y_bytes;
      const ConvRow a{cols, 1, wo, kcp, p.weight, p.bias, p.scale ? p.scale + n * p.cout : nullptr, y_row, p.y_dtype,
                      1, wo, p.cout, 1, 1, p.relu, 0};
      for (int64_t cb = 0; cb < blocks; cb += 2) kernel(a, 0, 0, cb, std::min<int64_t>(2, blocks - cb));
    }
    if (amx) amx_end();
  }
}

}  // namespace

bool conv_uses_im2col(int64_t cin, int ksize) { return ksize > 1 && cin <= kIm2colMaxCin; }

bool conv_uses_winograd(int64_t cin, int64_t cout, int ksize, int stride) {
  return ksize == 3 && stride == 1 && cin >= 32 && cout >= 32 && cin % 16 == 0 && cout % 16 == 0 &&
         active_isa() >= Isa::avx512;
}

const char* conv_kernel_name(DType dtype) { return row_kernel_name(dtype == DType::bf16 && uses_bf16_dot()); }

namespace {

// conv2d_nhwc but the border of y.
void conv2d_interior(const ConvProblem& p) {
  if (p.ksize != 1 && p.ksize != 3) throw std::invalid_argument("ksize must be 1 or 3");
  if (p.stride != 1 && p.stride != 2) throw std::invalid_argument("stride must be 1 or 2");
  if (p.n < 1 || p.h < 1 || p.w < 1 || p.cin < 1 || p.cout < 1) throw std::invalid_argument("empty conv");
  const bool pairs = p.x_dtype == DType::bf16 && uses_bf16_dot();
  if (pairs != p.weight_bf16_pairs)
    throw std::invalid_argument(std::string("weights packed as ") + (p.weight_bf16_pairs ? "bf16 pairs" : "fp32") +
                                " but the " + isa_name(active_isa()) + " kernel for this dtype needs " +
                                (pairs ? "bf16 pairs" : "fp32"));
  if (p.winograd_weight && !p.scale && p.x_dtype == DType::f32 && p.y_dtype == DType::f32 &&
      !p.weight_bf16_pairs && conv_uses_winograd(p.cin, p.cout, p.ksize, p.stride)) {
    conv3x3_winograd_avx512(p, p.winograd_weight);
    return;
  }
  const int64_t ho = conv_out_size(p.h, p.ksize, p.stride), wo = conv_out_size(p.w, p.ksize, p.stride);
  const int64_t blocks = (p.cout + 15) / 16;
  const RowKernel kernel = row_kernel(pairs);
  const int64_t multiple = bf16_channel_multiple();
  const bool amx = kernel == conv_row_amx;
  const size_t slack_pixels = amx ? kAmxSlackPixels : 0;  // AMX tiles read past rows
  if (conv_uses_im2col(p.cin, p.ksize)) {
    run_im2col_rows(p, kernel, pairs, ho, wo, channels_read(p.ksize * p.ksize * p.cin, pairs, multiple), blocks);
    return;
  }
  const int pad = p.ksize / 2;
  const int64_t cp = channels_read(p.cin, pairs, multiple);
  // x is read in place when its stored border covers the conv's padding (1x1 convs need none) and its channels
  // are as the kernel reads them; AMX tiles read whole groups of kAmxTilePixels, so a borderless x only if its
  // rows hold whole groups (a bordered one has kBorderedSlackPixels after it).
  const bool direct = p.x_pad >= pad && cp == p.cin && (pairs || p.x_dtype == DType::f32) &&
                      (!amx || p.x_pad > 0 || wo % kAmxTilePixels == 0);
  const int64_t border = direct ? p.x_pad : pad;  // of the buffer the kernel reads
  const int64_t hp = p.h + 2 * border, wp = p.w + 2 * border;
  // the kernel reads [N, Hp, Wp, Cp] with a border of pad: in place, that array starts at pixel (-pad, -pad)
  const void* xpad = direct ? static_cast<const char*>(p.x) + padded_index(0, -pad, -pad, p.h, p.w, cp, border) *
                                                                 (pairs ? sizeof(uint16_t) : sizeof(float))
                            : p.x;
  if (!direct) {
    const size_t elems = static_cast<size_t>(p.n * hp * wp * cp);
    if (pairs) {
      auto* buf = staging<uint16_t>(elems, slack_pixels * p.stride * cp);
      pad_input(p, pad, cp, buf);
      xpad = buf;
    } else {
      auto* buf = staging<float>(elems, 0);
      pad_input(p, pad, cp, buf);
      xpad = buf;
    }
  }
  const ConvRow a{xpad, hp, wp, cp, p.weight, p.bias, p.scale, p.y, p.y_dtype, ho, wo, p.cout, p.ksize, p.stride,
                  p.relu, p.y_pad};
  run_rows(a, kernel, p.n, blocks);
}

}  // namespace

void conv2d_nhwc(const ConvProblem& p) {
  conv2d_interior(p);
  const size_t y_size = p.y_dtype == DType::f32 ? sizeof(float) : sizeof(uint16_t);
  zero_border(p.y, y_size, p.n, conv_out_size(p.h, p.ksize, p.stride), conv_out_size(p.w, p.ksize, p.stride), p.cout,
              p.y_pad);
}

}  // namespace alnet
