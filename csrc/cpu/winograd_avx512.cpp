// Winograd F(2x2, 3x3) fp32 conv for AVX-512 (stride 1, padding 1, Cin and Cout multiples of 16).
//
// Each 2x2 output tile needs one 4x4 input tile d; with B, G, A the F(2, 3) matrices
//   y = A^T [ (G g G^T) . (B^T d B) ] A,
// so the 9 taps' Cin x Cout multiply-adds per output pixel become 16 / 4 = 4: the 16 elementwise
// products over a block of tiles are 16 independent GEMMs M[e] [T, Cout] = V[e] [T, Cin] @ U[e] [Cin, Cout].
// U = G g G^T is computed once at pack time (alnet_fast/backends/native_ops.py pack_cpu_winograd).
//
// Work is split into blocks of kBlockTiles tiles of one image (tiles in raster order); each thread, per
// block: input transform -> V (zero rows for tiles past the end), 16 GEMMs -> M, output transform fused
// with bias and ReLU. V and M are per-thread scratch that stay in L2.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "cpu_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")

#include "conv_avx512_tile.h"

namespace alnet {
namespace {

constexpr int kRows = 12;                   // micro-kernel: 12 tiles x 2 blocks of 16 output channels
constexpr int64_t kBlockTiles = 2 * kRows;  // tiles per block (a multiple of kRows)

struct Block {
  const ConvProblem& p;
  const float* u;       // [16][Cout/16][Cin][16]
  int64_t tiles_w;      // tiles per row
  float* v;             // [16][kBlockTiles][Cin]
  float* m;             // [16][kBlockTiles][Cout]
};

// V[e][t] <- B^T d B for tiles [t0, t0 + count) of image n, 16 channels at a time; zero for t >= count.
void input_transform(const Block& b, int64_t n, int64_t t0, int64_t count) {
  const ConvProblem& p = b.p;
  const float* x = static_cast<const float*>(p.x);
  const int64_t plane = kBlockTiles * p.cin;
  for (int64_t t = 0; t < kBlockTiles; ++t) {
    float* vt = b.v + t * p.cin;
    if (t >= count) {
      for (int e = 0; e < 16; ++e) std::fill(vt + e * plane, vt + e * plane + p.cin, 0.f);
      continue;
    }
    const int64_t ih0 = (t0 + t) / b.tiles_w * 2 - 1, iw0 = (t0 + t) % b.tiles_w * 2 - 1;
    const float* px[4][4];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const int64_t ih = ih0 + i, iw = iw0 + j;
        px[i][j] = ih >= 0 && ih < p.h && iw >= 0 && iw < p.w ? x + padded_index(n, ih, iw, p.h, p.w, p.cin, p.x_pad)
                                                                : nullptr;
      }
    for (int64_t c = 0; c < p.cin; c += 16) {
      __m512 d[4][4], r[4][4];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) d[i][j] = px[i][j] ? _mm512_loadu_ps(px[i][j] + c) : _mm512_setzero_ps();
      for (int j = 0; j < 4; ++j) {  // rows: B^T d
        r[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
        r[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
        r[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
        r[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
      }
      for (int i = 0; i < 4; ++i) {  // columns: (B^T d) B
        float* out = vt + (4 * i) * plane + c;
        _mm512_storeu_ps(out, _mm512_sub_ps(r[i][0], r[i][2]));
        _mm512_storeu_ps(out + plane, _mm512_add_ps(r[i][1], r[i][2]));
        _mm512_storeu_ps(out + 2 * plane, _mm512_sub_ps(r[i][2], r[i][1]));
        _mm512_storeu_ps(out + 3 * plane, _mm512_sub_ps(r[i][1], r[i][3]));
      }
    }
  }
}

// m [kRows, NB * 16] (row stride cout) = v [kRows, cin] (row stride cin) @ u [NB][cin][16] (block stride).
template <int NB>
inline void gemm_tile(const float* v, const float* u, int64_t cin, int64_t u_block, float* m, int64_t cout) {
  __m512 acc[kRows][NB];
  for (int r = 0; r < kRows; ++r)
    for (int nb = 0; nb < NB; ++nb) acc[r][nb] = _mm512_setzero_ps();
  dot_accumulate<Fp32Dot>(acc, v, cin, u, u_block, cin);
  for (int r = 0; r < kRows; ++r)
    for (int nb = 0; nb < NB; ++nb) _mm512_storeu_ps(m + r * cout + nb * 16, acc[r][nb]);
}

// M[e] = V[e] @ U[e] for the 16 positions e, rows [0, rows) (a multiple of kRows).
void batched_gemm(const Block& b, int64_t rows) {
  const int64_t cin = b.p.cin, cout = b.p.cout, blocks = cout / 16, u_block = cin * 16;
  for (int e = 0; e < 16; ++e) {
    const float* v = b.v + e * kBlockTiles * cin;
    const float* u = b.u + e * blocks * u_block;
    float* m = b.m + e * kBlockTiles * cout;
    int64_t cb = 0;
    for (; cb + 2 <= blocks; cb += 2)
      for (int64_t r = 0; r < rows; r += kRows)
        gemm_tile<2>(v + r * cin, u + cb * u_block, cin, u_block, m + r * cout + cb * 16, cout);
    if (cb < blocks)
      for (int64_t r = 0; r < rows; r += kRows)
        gemm_tile<1>(v + r * cin, u + cb * u_block, cin, u_block, m + r * cout + cb * 16, cout);
  }
}

// y <- act(A^T M A + bias) for tiles [t0, t0 + count) of image n; outputs past H or W are not stored.
void output_transform(const Block& b, int64_t n, int64_t t0, int64_t count) {
  const ConvProblem& p = b.p;
  float* y = static_cast<float*>(p.y);
  const int64_t plane = kBlockTiles * p.cout;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t oh = (t0 + t) / b.tiles_w * 2, ow = (t0 + t) % b.tiles_w * 2;
    const bool row1 = oh + 1 < p.h, col1 = ow + 1 < p.w;
    const float* mt = b.m + t * p.cout;
    for (int64_t co = 0; co < p.cout; co += 16) {
      __m512 s[2][4];
      for (int j = 0; j < 4; ++j) {  // rows: A^T M
        const __m512 m0 = _mm512_loadu_ps(mt + j * plane + co), m1 = _mm512_loadu_ps(mt + (4 + j) * plane + co);
        const __m512 m2 = _mm512_loadu_ps(mt + (8 + j) * plane + co), m3 = _mm512_loadu_ps(mt + (12 + j) * plane + co);
        s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
      }
      const __m512 bias = _mm512_loadu_ps(p.bias + co);
      for (int i = 0; i < (row1 ? 2 : 1); ++i) {  // columns: (A^T M) A, then bias and ReLU
        __m512 o0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), s[i][2]), bias);
        __m512 o1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]), s[i][3]), bias);
        if (p.relu) {
          o0 = _mm512_max_ps(o0, _mm512_setzero_ps());
          o1 = _mm512_max_ps(o1, _mm512_setzero_ps());
        }
        float* out = y + padded_index(n, oh + i, ow, p.h, p.w, p.cout, p.y_pad) + co;
        _mm512_storeu_ps(out, o0);
        if (col1) _mm512_storeu_ps(out + p.cout, o1);
      }
    }
  }
}

}  // namespace

void conv3x3_winograd_avx512(const ConvProblem& p, const float* u) {
  const int64_t tiles_h = (p.h + 1) / 2, tiles_w = (p.w + 1) / 2, tiles = tiles_h * tiles_w;
  const int64_t blocks_per_image = (tiles + kBlockTiles - 1) / kBlockTiles;
#pragma omp parallel
  {
    thread_local std::vector<float> v, m;  // grow, never shrink; reused across calls
    v.resize(std::max<size_t>(v.size(), static_cast<size_t>(16 * kBlockTiles * p.cin)));
    m.resize(std::max<size_t>(m.size(), static_cast<size_t>(16 * kBlockTiles * p.cout)));
    const Block b{p, u, tiles_w, v.data(), m.data()};
#pragma omp for schedule(static)
    for (int64_t job = 0; job < p.n * blocks_per_image; ++job) {
      const int64_t n = job / blocks_per_image, t0 = job % blocks_per_image * kBlockTiles;
      const int64_t count = std::min(kBlockTiles, tiles - t0);
      input_transform(b, n, t0, count);
      batched_gemm(b, (count + kRows - 1) / kRows * kRows);
      output_transform(b, n, t0, count);
    }
  }
}

}  // namespace alnet

#pragma GCC pop_options
