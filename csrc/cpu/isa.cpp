// Run-time ISA selection: cpuid via __builtin_cpu_supports, overridable downwards (for tests).
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>

#include "cpu_kernels.h"

namespace alnet {

namespace {

// AMX-TILE and AMX-BF16 in cpuid, and Linux lets this process use the tile data (arch_prctl).
bool amx_bf16_usable() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool amx = (edx >> 22 & 1u) && (edx >> 24 & 1u);
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return amx && syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

}  // namespace

Isa detected_isa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl");
    const bool avx512_bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
    if (avx512_bf16 && amx_bf16_usable()) return Isa::amx_bf16;
    if (avx512_bf16) return Isa::avx512_bf16;
    if (avx512) return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
    return Isa::scalar;
  }();
  return isa;
}

namespace {
std::atomic<int> g_override{-1};
}

Isa active_isa() {
  const int o = g_override.load();
  return o < 0 ? detected_isa() : static_cast<Isa>(o);
}

void set_active_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(detected_isa()))
    throw std::invalid_argument(std::string("this CPU does not support ") + isa_name(isa) + "; best is " +
                                isa_name(detected_isa()));
  g_override.store(static_cast<int>(isa));
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::amx_bf16: return "amx_bf16";
    case Isa::avx512_bf16: return "avx512_bf16";
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "scalar";
  }
}

Isa isa_from_name(const std::string& name) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::avx512_bf16, Isa::amx_bf16})
    if (name == isa_name(isa)) return isa;
  throw std::invalid_argument("unknown ISA '" + name + "'; known: scalar, avx2, avx512, avx512_bf16, amx_bf16");
}

bool uses_bf16_dot() { return active_isa() >= Isa::avx512_bf16; }

int64_t bf16_channel_multiple() { return active_isa() == Isa::amx_bf16 ? 32 : 2; }

}  // namespace alnet
