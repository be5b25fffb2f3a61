// alnet_fast._native: the CPU kernels as a pybind11 module that does not link libtorch.
// Tensors cross as (data pointer, sizes); Python (alnet_fast/backends/native_ops.py) checks every
// argument, allocates outputs and packs weights before calling in. The GIL is released in every kernel.
#include <pybind11/pybind11.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <stdexcept>
#include <string>

#include "cpu/cpu_kernels.h"

namespace py = pybind11;
using namespace alnet;

namespace {

DType dtype_from_name(const std::string& name) {
  if (name == "float32") return DType::f32;
  if (name == "bfloat16") return DType::bf16;
  throw std::invalid_argument("the CPU kernels take float32 or bfloat16, not " + name);
}

template <typename T = void>
T* ptr(uintptr_t address) {
  if (address == 0) throw std::invalid_argument("null data pointer");
  return reinterpret_cast<T*>(address);
}

py::dict build_info() {
  py::dict info;
  info["compiler_version"] = std::string(__VERSION__);
#ifdef _OPENMP
  info["openmp"] = true;
  info["omp_max_threads"] = omp_get_max_threads();
#else
  info["openmp"] = false;
  info["omp_max_threads"] = 1;
#endif
  py::list compiled;
  for (const char* isa : {"scalar", "avx2", "avx512", "avx512_bf16", "amx_bf16"}) compiled.append(isa);
  info["isa_compiled"] = compiled;
  info["isa_detected"] = isa_name(detected_isa());
  info["isa_active"] = isa_name(active_isa());
  info["conv_kernel_float32"] = conv_kernel_name(DType::f32);
  info["conv_kernel_bfloat16"] = conv_kernel_name(DType::bf16);
  return info;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "alnet_fast CPU kernels (NHWC, OpenMP, run-time AVX2 / AVX-512 / AVX-512 BF16 dispatch)";
  m.def("build_info", &build_info, "What this module was compiled with and the ISA chosen at run time.");
  m.def(
      "set_num_threads",
      [](int count) {
        if (count < 1) throw std::invalid_argument("the thread count must be >= 1, got " + std::to_string(count));
#ifdef _OPENMP
        omp_set_num_threads(count);
#endif
      },
      py::arg("count"),
      "OpenMP threads for the kernels' parallel regions started from the calling thread (omp_set_num_threads).");
  m.def("set_active_isa", [](const std::string& name) { set_active_isa(isa_from_name(name)); }, py::arg("isa"),
        "Dispatch to a lower ISA level than detected (tests); raises ValueError above what the CPU supports.");
  m.def("uses_bf16_dot", &uses_bf16_dot, "bfloat16 convs take weights packed in bf16 pairs at the active ISA.");
  m.def("bf16_channel_multiple", &bf16_channel_multiple,
        "bf16-pair weights have Cin zero-padded to a multiple of this (2, or 32 for AMX tiles).");
  m.def("conv_kernel", [](const std::string& dtype) { return std::string(conv_kernel_name(dtype_from_name(dtype))); },
        py::arg("dtype"), "The conv row kernel dispatched to for this dtype at the active ISA.");

  m.def(
      "conv2d",
      [](uintptr_t x, const std::string& dtype, int64_t n, int64_t h, int64_t w, int64_t cin, uintptr_t weight,
         bool weight_bf16_pairs, uintptr_t bias, uintptr_t scale, uintptr_t y, int64_t cout, int ksize, int stride,
         bool relu, uintptr_t winograd_weight, int64_t x_pad, int64_t y_pad) {
        if (x_pad < 0 || y_pad < 0) throw std::invalid_argument("x_pad and y_pad must be >= 0");
        const DType t = dtype_from_name(dtype);
        conv2d_nhwc({ptr<const void>(x), t, n, h, w, cin, ptr<const void>(weight), weight_bf16_pairs,
                     ptr<const float>(bias), scale ? ptr<const float>(scale) : nullptr, ptr(y), t, cout, ksize,
                     stride, relu, winograd_weight ? ptr<const float>(winograd_weight) : nullptr, x_pad, y_pad});
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("cin"), py::arg("weight"),
      py::arg("weight_bf16_pairs"), py::arg("bias"), py::arg("scale"), py::arg("y"), py::arg("cout"),
      py::arg("ksize"), py::arg("stride"), py::arg("relu"), py::arg("winograd_weight") = 0, py::arg("x_pad") = 0,
      py::arg("y_pad") = 0, py::call_guard<py::gil_scoped_release>(),
      "y [N, Ho, Wo, Cout] = act(conv(x [N, H, W, Cin], packed weight, padding k // 2) + bias) * scale [N, Cout]; "
      "fp32 convs where conv_uses_winograd run Winograd F(2x2, 3x3) on winograd_weight when its pointer is not 0. "
      "x is stored inside a zero border of x_pad pixels (followed by bordered_slack_pixels() readable pixels when "
      "x_pad > 0), y is written inside a border of y_pad pixels, which it zeroes.");
  m.def("bordered_slack_pixels", [] { return kBorderedSlackPixels; },
        "Pixels of readable memory a conv's bordered x (x_pad > 0) must have after its last pixel.");
  m.def("conv_uses_im2col", &conv_uses_im2col, py::arg("cin"), py::arg("ksize"),
        "Convs of this shape run as a 1x1 conv over their patches; bf16 pairs are then packed [Cout/16][Kp/2][16][2].");
  m.def("conv_uses_winograd", &conv_uses_winograd, py::arg("cin"), py::arg("cout"), py::arg("ksize"),
        py::arg("stride"), "fp32 convs of this shape run Winograd F(2x2, 3x3) at the active ISA, given its weights.");

  m.def(
      "lraspp_gate",
      [](uintptr_t x, const std::string& dtype, int64_t n, int64_t h, int64_t w, int64_t cin, uintptr_t w_feat,
         bool w_feat_bf16_pairs, uintptr_t b_feat, uintptr_t w_gate, uintptr_t b_gate, uintptr_t y, int64_t cout) {
        lraspp_gate_nhwc(ptr<const void>(x), dtype_from_name(dtype), n, h, w, cin, ptr<const void>(w_feat),
                         w_feat_bf16_pairs, ptr<const float>(b_feat), ptr<const float>(w_gate),
                         ptr<const float>(b_gate), ptr(y), cout);
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("cin"), py::arg("w_feat"),
      py::arg("w_feat_bf16_pairs"), py::arg("b_feat"), py::arg("w_gate"), py::arg("b_gate"), py::arg("y"),
      py::arg("cout"), py::call_guard<py::gil_scoped_release>(),
      "y = relu(conv1x1(x; w_feat, b_feat)) * hardsigmoid(w_gate [Cout, Cin] . mean_hw(x) + b_gate).");

  m.def(
      "bilinear",
      [](uintptr_t x, const std::string& dtype, int64_t n, int64_t h, int64_t w, int64_t c, int64_t out_h,
         int64_t out_w, uintptr_t skip, uintptr_t y, int64_t y_pad) {
        if (y_pad < 0) throw std::invalid_argument("y_pad must be >= 0");
        bilinear_nhwc(ptr<const void>(x), dtype_from_name(dtype), n, h, w, c, out_h, out_w,
                      skip ? ptr<const void>(skip) : nullptr, ptr(y), y_pad);
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c"), py::arg("out_h"),
      py::arg("out_w"), py::arg("skip"), py::arg("y"), py::arg("y_pad") = 0, py::call_guard<py::gil_scoped_release>(),
      "y [N, Ho, Wo, C] = bilinear(x [N, h, w, C], align_corners=False) (+ skip when its pointer is not 0), "
      "written inside a border of y_pad pixels, which it zeroes.");
}
