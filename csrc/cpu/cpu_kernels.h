// CPU kernels of the op table: NHWC activations, fp32 accumulation, fp32 or bf16 storage.
//
// Layouts (shapes are [outer, ..., inner]; every buffer is dense):
//   activations  x [N, H, W, C]                      (a channels_last torch tensor's memory)
//   fp32 weights   [Cout/16][k][k][Cin][16]          (Cout rounded up to 16, zero-filled)
//   bf16 weights   [Cout/16][k][k][Cp/2][16][2]      (Cp = Cin rounded up to bf16_channel_multiple()),
//                                                    for vdpbf16ps and AMX TDPBF16PS; where conv_uses_im2col,
//                  [Cout/16][Kp/2][16][2]            (K = k k Cin ordered (ky, kx, c), rounded up the same way)
//   bias           [Cout rounded up to 16] fp32
//   Winograd fp32  [16][Cout/16][Cin][16]           (G g G^T of F(2x2, 3x3), position e = 4 i + j outermost)
//
// Bordered activations: an image [N, H, W, C] may be stored inside [N, H + 2 pad, W + 2 pad, C] with a zero
// border of ``pad`` pixels (padded_index). Convs read such an x in place instead of copying it into a padded
// scratch, and write their y into the interior of such a buffer and zeros into its border (zero_border): how a
// chain of 3x3 convs (alnet_fast.backends.native_plan) skips every padding copy, in buffers that other values
// of other layouts may have used before. A bordered x must be followed by kBorderedSlackPixels readable pixels
// (AMX tiles read whole 16- or 32-pixel groups past a row's end; what they read there is never stored).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace alnet {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2, avx512_bf16 = 3, amx_bf16 = 4 };

Isa detected_isa();                       // the best level this CPU supports (cpuid)
Isa active_isa();                         // the level kernels dispatch to (detected unless overridden)
void set_active_isa(Isa isa);             // tests force lower levels; throws above detected_isa()
const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);
bool uses_bf16_dot();                     // bf16 convs take bf16-pair weights (vdpbf16ps / AMX) at the active level
int64_t bf16_channel_multiple();         // ... with Cin zero-padded to a multiple of this (2; 32 for AMX tiles)

enum class DType { f32 = 0, bf16 = 1 };

// Index of pixel (n, i, j) of an image [N, h, w, c] stored with a border of pad pixels on every side.
inline int64_t padded_index(int64_t n, int64_t i, int64_t j, int64_t h, int64_t w, int64_t c, int64_t pad) {
  return ((n * (h + 2 * pad) + i + pad) * (w + 2 * pad) + j + pad) * c;
}

// y [N, h + 2 pad, w + 2 pad, c] of elem_size-byte values <- zeros in the border of pad pixels; the interior is kept.
void zero_border(void* y, size_t elem_size, int64_t n, int64_t h, int64_t w, int64_t c, int64_t pad);

// The calling thread's scratch buffer of at least bytes, reused across calls (grows, never shrinks; its contents
// are the previous user's). 64-byte aligned: the row kernels load whole cache lines (a zmm register, an AMX tile
// row) from pixel boundaries, and one misaligned by malloc's 16 bytes would split every such load across two lines.
void* thread_scratch(size_t bytes);

constexpr int64_t kBorderedSlackPixels = 72;  // >= conv_row_amx's reach past a row: 32 pixels at stride 2, + taps

struct ConvProblem {
  const void* x; DType x_dtype; int64_t n, h, w, cin;
  const void* weight; bool weight_bf16_pairs; const float* bias;
  const float* scale;  // [N, Cout] multiplied in after the ReLU, or nullptr
  void* y; DType y_dtype; int64_t cout;
  int ksize, stride; bool relu;
  const float* winograd_weight = nullptr;  // [16][Cout/16][Cin][16] fp32 (G g G^T), used where conv_uses_winograd
  int64_t x_pad = 0, y_pad = 0;             // zero borders x is stored with / y is written inside of (see above)
};

int64_t conv_out_size(int64_t in, int ksize, int stride);

// The row kernel conv2d_nhwc dispatches to for this dtype at the active ISA ("avx512", "amx_bf16", ...).
const char* conv_kernel_name(DType dtype);

// y = act(conv(x, weight, padding ksize / 2, stride) + bias) * scale, inside a zeroed border of y_pad pixels.
void conv2d_nhwc(const ConvProblem& p);

// conv2d_nhwc runs convs of this shape as a 1x1 conv over their k x k patches (im2col): few input channels.
bool conv_uses_im2col(int64_t cin, int ksize);
// cols [Wo, 32] <- output row (n, oh)'s zero-padded k x k patches of bf16 x, k k Cin <= 32 values each (AVX-512BW).
void im2col_row_bf16_avx512(const ConvProblem& p, int64_t n, int64_t oh, int64_t wo, uint16_t* cols);

// conv2d_nhwc runs fp32 convs of this shape as Winograd F(2x2, 3x3) (given p.winograd_weight, and no scale):
// 3x3, stride 1, Cin and Cout multiples of 16 and >= 32, at the AVX-512 level or above.
bool conv_uses_winograd(int64_t cin, int64_t cout, int ksize, int stride);
void conv3x3_winograd_avx512(const ConvProblem& p, const float* u);

// y = relu(conv1x1(x; w_feat, b_feat)) * hardsigmoid(w_gate . mean_hw(x) + b_gate).
// w_gate: [Cout, Cin] fp32, b_gate: [Cout] fp32; w_feat/b_feat packed as for conv2d_nhwc.
void lraspp_gate_nhwc(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t cin,
                      const void* w_feat, bool w_feat_bf16_pairs, const float* b_feat,
                      const float* w_gate, const float* b_gate, void* y, int64_t cout);

// lraspp_gate_nhwc's gate (lraspp_gate.h), the AVX-512 build: gate [N, Cout] <- hardsigmoid(w_gate . mean_hw(x) +
// b_gate) for x [N, pixels, Cin], with mean [N, Cin] fp32 scratch.
struct LrasppGate {
  const void* x; DType dtype; int64_t n, pixels, cin;
  const float* w_gate; const float* b_gate; int64_t cout;  // [Cout, Cin], [Cout] fp32
};
void lraspp_gate_loop_avx512(const LrasppGate& p, float* mean, float* gate);

// y [N, Ho, Wo, C] = bilinear(x [N, h, w, C]; align_corners=False) (+ skip [N, Ho, Wo, C] when not null);
// y written inside a zeroed border of y_pad pixels.
void bilinear_nhwc(const void* x, DType dtype, int64_t n, int64_t h, int64_t w, int64_t c,
                   int64_t out_h, int64_t out_w, const void* skip, void* y, int64_t y_pad = 0);

// bilinear_nhwc's loop (bilinear_rows.h): taps per output row / column, and the band loop each ISA build runs.
struct BilinearTaps {
  int64_t i0, i1;  // source indices
  float w0, w1;    // their weights
};
struct BilinearProblem {
  const void* x; DType dtype; int64_t n, h, w, c, out_h, out_w;
  const BilinearTaps* rows; const BilinearTaps* columns;  // [out_h], [out_w]
  const void* skip; void* y; int64_t y_pad;
};
// Output rows [row0, row1) (row = image * out_h + oy), with ring: [2][out_w, C] fp32 scratch.
void bilinear_loop_avx512(const BilinearProblem& p, int64_t row0, int64_t row1, float* ring);

// Per-ISA row kernels, called by conv2d_nhwc: one output row, channel blocks [cb0, cb0 + ncb), ncb <= 2.
struct ConvRow {
  const void* xpad;       // padded input [N, Hp, Wp, Cp] (fp32, or bf16 for the bf16-pair kernels)
  int64_t hp, wp, cp;     // padded sizes; cp = Cin (fp32) or Cin rounded up to bf16_channel_multiple()
  const void* weight; const float* bias; const float* scale;
  void* y; DType y_dtype; int64_t ho, wo, cout;
  int ksize, stride; bool relu;
  int64_t y_pad;          // y is written inside a border of y_pad pixels
};

// Where output pixel (n, oh, ow)'s channels start in y.
inline int64_t y_index(const ConvRow& a, int64_t n, int64_t oh, int64_t ow) {
  return padded_index(n, oh, ow, a.ho, a.wo, a.cout, a.y_pad);
}
void conv_row_scalar(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb);
void conv_row_avx2(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb);
void conv_row_avx512(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb);
void conv_row_avx512_bf16(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb);
// Reads up to 32 pixels past the row; each thread calls amx_begin() (tile config) before, amx_end() after.
void conv_row_amx(const ConvRow& a, int64_t n, int64_t oh, int64_t cb0, int64_t ncb);
void amx_begin();
void amx_end();

}  // namespace alnet
