// The AVX-512 output tile shared by the fp32 and bf16-pair kernels: RW pixels x NB 16-channel blocks of
// zmm accumulators (RW = 12, NB = 2: 24 accumulators), its dot-product loop (also the Winograd GEMM's), the
// row walk, and the epilogue (BlockStore, PairStore), also used by the AMX kernel.
//
// Include only after `#pragma GCC target("avx512f,avx512bw,avx512vl,...")`: everything here has
// internal linkage, so each includer gets its own copy compiled for its own target.
#pragma once

#include <immintrin.h>

#include "cpu_kernels.h"

namespace alnet {
namespace {

constexpr int kTile = 12;

inline __m256i round_to_bf16(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16));
}

// The epilogue of output row (n, oh)'s 16-channel block cb: bias, ReLU, scale, then a store masked to the Cout
// tail, fp32 or bf16 rounded to nearest even. What is the same along the row is set up once per tile.
class BlockStore {
 public:
  BlockStore(const ConvRow& a, int64_t n, int64_t oh, int64_t cb)
      : mask_(cb * 16 + 16 <= a.cout ? 0xffff : static_cast<__mmask16>((1u << (a.cout - cb * 16)) - 1)),
        bias_(_mm512_maskz_loadu_ps(mask_, a.bias + cb * 16)),
        scale_(a.scale ? _mm512_maskz_loadu_ps(mask_, a.scale + n * a.cout + cb * 16) : _mm512_setzero_ps()),
        relu_(a.relu), scaled_(a.scale != nullptr), bf16_(a.y_dtype == DType::bf16),
        row_(y_index(a, n, oh, 0) + cb * 16), pixel_(a.cout), y_(a.y) {}

  // acc + bias, then ReLU and scale where the conv has them.
  __m512 activate(__m512 acc) const {
    __m512 v = _mm512_add_ps(acc, bias_);
    if (relu_) v = _mm512_max_ps(v, _mm512_setzero_ps());
    if (scaled_) v = _mm512_mul_ps(v, scale_);
    return v;
  }

  // Pixel ow's first channel of the block in y, stored as T.
  template <typename T>
  T* at(int64_t ow) const { return static_cast<T*>(y_) + row_ + ow * pixel_; }

  void operator()(int64_t ow, __m512 acc) const {
    const __m512 v = activate(acc);
    if (bf16_) _mm256_mask_storeu_epi16(at<uint16_t>(ow), mask_, round_to_bf16(v));
    else _mm512_mask_storeu_ps(at<float>(ow), mask_, v);
  }

 private:
  __mmask16 mask_;
  __m512 bias_, scale_;
  bool relu_, scaled_, bf16_;
  int64_t row_, pixel_;
  void* y_;
};

// Two blocks' activated values -> their 32 bf16 values in one zmm, low block first, rounded to nearest even
// exactly as round_to_bf16 (AVX-512F). Kernels compiled with AVX512-BF16 pack with PackBf16Cvt instead
// (conv_bf16_pack.h).
struct PackBf16 {
  static __m512i pack(__m512 low, __m512 high) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(round_to_bf16(low)), round_to_bf16(high), 1);
  }
};

// Blocks cb and cb + 1 together where both are whole and y is bf16: a pixel's 32 channels, one cache line when
// Cout is a multiple of 32, as one 64-byte store instead of two masked 32-byte ones (measured in commit a043aaf).
template <typename Pack>
class PairStore {
 public:
  static bool applies(const ConvRow& a, int64_t cb) { return a.y_dtype == DType::bf16 && cb * 16 + 32 <= a.cout; }

  PairStore(const ConvRow& a, int64_t n, int64_t oh, int64_t cb) : low_(a, n, oh, cb), high_(a, n, oh, cb + 1) {}

  void operator()(int64_t ow, __m512 acc_low, __m512 acc_high) const {
    _mm512_storeu_si512(low_.at<uint16_t>(ow), Pack::pack(low_.activate(acc_low), high_.activate(acc_high)));
  }

 private:
  BlockStore low_, high_;
};

// The epilogue of pixels [ow0, ow0 + count) of output row (n, oh), channel blocks [cb0, cb0 + NB): acc(b, r) is
// block b's accumulators at pixel ow0 + r, from registers (store_tile) or from memory (the AMX kernel's tiles).
template <typename Pack, int NB, typename Acc>
inline void store_pixels(const ConvRow& a, int64_t n, int64_t oh, int64_t ow0, int64_t cb0, int64_t count, Acc acc) {
  if constexpr (NB == 2) {
    if (PairStore<Pack>::applies(a, cb0)) {
      const PairStore<Pack> store(a, n, oh, cb0);
#pragma GCC unroll 16
      for (int64_t r = 0; r < count; ++r) store(ow0 + r, acc(0, r), acc(1, r));
      return;
    }
  }
  for (int b = 0; b < NB; ++b) {
    const BlockStore store(a, n, oh, cb0 + b);
#pragma GCC unroll 16
    for (int64_t r = 0; r < count; ++r) store(ow0 + r, acc(b, r));
  }
}

template <typename Pack, int RW, int NB>
inline void store_tile(const ConvRow& a, int64_t n, int64_t oh, int64_t ow0, int64_t cb0, __m512 (&acc)[RW][NB]) {
  store_pixels<Pack, NB>(a, n, oh, ow0, cb0, RW, [&acc](int b, int64_t r) { return acc[r][b]; });
}

// acc[r][b] += x[r * xs + c ...] . w[b * block + c * 16 ...] for c in [0, count), step Dot::kStep: per step,
// NB weight vectors times RW broadcast inputs. Dot: the element type, the weight load, the broadcast and the
// multiply-add (Fp32Dot below; bf16 pairs in conv_avx512_bf16.cpp), and Pack, how its tiles pack a bf16 y.
// The direct convs' taps and the Winograd GEMM share it.
template <typename Dot, int RW, int NB>
inline void dot_accumulate(__m512 (&acc)[RW][NB], const typename Dot::Elem* x, int64_t xs,
                           const typename Dot::Elem* w, int64_t block, int64_t count) {
  for (int64_t c = 0; c < count; c += Dot::kStep) {
    typename Dot::Weights wv[NB];
    for (int b = 0; b < NB; ++b) wv[b] = Dot::weights(w + b * block + c * 16);
#pragma GCC unroll 16
    for (int r = 0; r < RW; ++r) {
      const auto v = Dot::broadcast(x + r * xs + c);
      for (int b = 0; b < NB; ++b) acc[r][b] = Dot::madd(acc[r][b], v, wv[b]);
    }
  }
}

// fp32: one vfmadd231ps per input channel.
struct Fp32Dot {
  using Elem = float;
  using Pack = PackBf16;  // a bf16 y (from a bf16 x) at the AVX-512 level, which may lack AVX512-BF16
  using Weights = __m512;
  static constexpr int kStep = 1;
  static __m512 weights(const float* w) { return _mm512_loadu_ps(w); }
  static __m512 broadcast(const float* x) { return _mm512_set1_ps(*x); }
  static __m512 madd(__m512 acc, __m512 v, __m512 w) { return _mm512_fmadd_ps(v, w, acc); }
};

// One output tile of a direct conv over the padded input: every k x k tap's dot_accumulate, then the epilogue.
template <typename Dot>
struct DotTile {
  template <int RW, int NB>
  static void run(const ConvRow& a, int64_t n, int64_t oh, int64_t ow0, int64_t cb0) {
    using Elem = typename Dot::Elem;
    const int64_t k = a.ksize, xs = a.stride * a.cp, block = k * k * a.cp * 16;
    const Elem* x = static_cast<const Elem*>(a.xpad) + ((n * a.hp + oh * a.stride) * a.wp + ow0 * a.stride) * a.cp;
    const Elem* w = static_cast<const Elem*>(a.weight) + cb0 * block;
    __m512 acc[RW][NB];
    for (int r = 0; r < RW; ++r)
      for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_setzero_ps();
    for (int64_t ky = 0; ky < k; ++ky)
      for (int64_t kx = 0; kx < k; ++kx)
        dot_accumulate<Dot>(acc, x + (ky * a.wp + kx) * a.cp, xs, w + (ky * k + kx) * a.cp * 16, block, a.cp);
    store_tile<typename Dot::Pack>(a, n, oh, ow0, cb0, acc);
  }
};

// Tile::run<RW, NB>(a, n, oh, ow0, cb0) computes and stores one tile.
template <typename Tile, int NB, int RW = kTile - 1>
inline void tail(int64_t rem, const ConvRow& a, int64_t n, int64_t oh, int64_t ow0, int64_t cb0) {
  if constexpr (RW >= 1) {
    if (rem == RW) Tile::template run<RW, NB>(a, n, oh, ow0, cb0);
    else tail<Tile, NB, RW - 1>(rem, a, n, oh, ow0, cb0);
  }
}

template <typename Tile, int NB>
inline void walk_row(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0) {
  int64_t ow = 0;
  for (; ow + kTile <= a.wo; ow += kTile) Tile::template run<kTile, NB>(a, n, oh, ow, cb0);
  tail<Tile, NB>(a.wo - ow, a, n, oh, ow, cb0);
}

template <typename Tile>
inline void conv_row(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb) {
  if (ncb == 2) walk_row<Tile, 2>(a, n, oh, cb0);
  else walk_row<Tile, 1>(a, n, oh, cb0);
}

}  // namespace
}  // namespace alnet
