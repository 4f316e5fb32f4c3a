// fp16 as the native kernels hold it (raw IEEE binary16 bits) and its conversions, round to nearest even. Inline
// PTX only: NVRTC compiles it without CUDA headers.
#pragma once

typedef unsigned short half_t;

__device__ __forceinline__ float h2f(half_t h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ half_t f2h(float f) {
    half_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
