// alnet_fast._native_cuda: the CUDA kernels as a pybind11 module (static cudart, no libtorch).
// Pointers are device addresses from torch tensors on device ordinal `device`; `stream` is that device's
// torch.cuda.current_stream(device).cuda_stream. Built with -DALNET_CUDA_HOST_SHIM (tests/test_cuda_host.py),
// the same module runs the kernels on the host: pointers are then CPU addresses.
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "cuda/kernels.h"
#ifdef ALNET_CUDA_HOST_SHIM
#include "cuda/host_shim.h"
#endif

namespace py = pybind11;
namespace cu = alnet::cuda;

namespace {

cu::DType dtype_from_name(const std::string& name) {
  if (name == "float32") return cu::DType::f32;
  if (name == "float16") return cu::DType::f16;
  if (name == "bfloat16") return cu::DType::bf16;
  throw std::invalid_argument("the CUDA kernels take float32, float16 or bfloat16, not " + name);
}

void* ptr(uintptr_t address) {
  if (address == 0) throw std::invalid_argument("null device pointer");
  return reinterpret_cast<void*>(address);
}

void check(const std::string& err) {
  if (!err.empty()) throw std::runtime_error("CUDA error: " + err);
}

py::dict device_info() {
  py::dict info;
  int count = 0, version = 0;
  const std::string err = cu::device_count(&count);
  info["device_count"] = count;
  info["error"] = err.empty() ? py::object(py::none()) : py::object(py::str(err));
  info["runtime_version"] = cu::runtime_version(&version).empty() ? version : 0;
  return info;
}

}  // namespace

PYBIND11_MODULE(_native_cuda, m) {
  m.doc() = "alnet_fast CUDA kernels (NHWC, fp32/fp16/bf16, on the tensors' device and the caller's stream)";
  m.def("device_info", &device_info, "{'device_count', 'error' (why none, or None), 'runtime_version'}.");
  m.def(
      "conv2d",
      [](uintptr_t x, const std::string& dtype, int64_t n, int64_t h, int64_t w, int64_t cin, uintptr_t weight,
         uintptr_t bias, uintptr_t scale, uintptr_t y, int64_t cout, int ksize, int stride, bool relu, int device,
         uintptr_t stream) {
        check(cu::conv2d(ptr(x), dtype_from_name(dtype), n, h, w, cin, ptr(weight), ptr(bias),
                         scale ? static_cast<const float*>(ptr(scale)) : nullptr, ptr(y), cout, ksize, stride, relu,
                         device, reinterpret_cast<void*>(stream)));
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("cin"), py::arg("weight"),
      py::arg("bias"), py::arg("scale"), py::arg("y"), py::arg("cout"), py::arg("ksize"), py::arg("stride"),
      py::arg("relu"), py::arg("device"), py::arg("stream"), py::call_guard<py::gil_scoped_release>());
  m.def("lraspp_workspace_floats", &cu::lraspp_workspace_floats, py::arg("n"), py::arg("h"), py::arg("w"),
        py::arg("cin"), py::arg("cout"), "fp32 elements of the workspace lraspp_gate needs.");
  m.def(
      "lraspp_gate",
      [](uintptr_t x, const std::string& dtype, int64_t n, int64_t h, int64_t w, int64_t cin, uintptr_t w_feat,
         uintptr_t b_feat, uintptr_t w_gate, uintptr_t b_gate, uintptr_t workspace, uintptr_t y, int64_t cout,
         int device, uintptr_t stream) {
        check(cu::lraspp_gate(ptr(x), dtype_from_name(dtype), n, h, w, cin, ptr(w_feat), ptr(b_feat), ptr(w_gate),
                              ptr(b_gate), static_cast<float*>(ptr(workspace)), ptr(y), cout, device,
                              reinterpret_cast<void*>(stream)));
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("cin"), py::arg("w_feat"),
      py::arg("b_feat"), py::arg("w_gate"), py::arg("b_gate"), py::arg("workspace"), py::arg("y"), py::arg("cout"),
      py::arg("device"), py::arg("stream"), py::call_guard<py::gil_scoped_release>());
  m.def(
      "bilinear",
      [](uintptr_t x, const std::string& dtype, int64_t n, int64_t h, int64_t w, int64_t c, int64_t out_h,
         int64_t out_w, uintptr_t skip, uintptr_t y, int device, uintptr_t stream) {
        check(cu::bilinear(ptr(x), dtype_from_name(dtype), n, h, w, c, out_h, out_w, skip ? ptr(skip) : nullptr,
                           ptr(y), device, reinterpret_cast<void*>(stream)));
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c"), py::arg("out_h"),
      py::arg("out_w"), py::arg("skip"), py::arg("y"), py::arg("device"), py::arg("stream"),
      py::call_guard<py::gil_scoped_release>());
#ifdef ALNET_CUDA_HOST_SHIM
  // The shim's simulated device state of the calling thread (like CUDA's current device), for the guard tests.
  m.def("host_shim_devices", [] {
    py::dict devices;
    devices["current"] = alnet_host_shim::current_device;
    devices["last_launch"] = alnet_host_shim::launch_device;
    return devices;
  });
#endif
}
