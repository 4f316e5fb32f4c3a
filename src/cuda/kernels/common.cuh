// Shared by the conversion kernels. No CUDA headers: NVRTC compiles this as is.
// Arithmetic mirrors src/cpu.rs operation for operation; compiled with --fmad=false the results are identical.
#pragma once

// A 3x4 affine map, row-major (colour::Affine3x4 on the Rust side), passed by value.
struct Affine3x4 {
    float m[3][4];
};

__device__ __forceinline__ void apply(const Affine3x4& a, float x, float y, float z, float out[3]) {
#pragma unroll
    for (int i = 0; i < 3; ++i) {
        out[i] = a.m[i][0] * x + a.m[i][1] * y + a.m[i][2] * z + a.m[i][3];
    }
}

__device__ __forceinline__ float clamp01(float v) { return fminf(fmaxf(v, 0.0f), 1.0f); }

// Round half away from zero, then clamp to 8 bits (colour::quantise).
__device__ __forceinline__ unsigned char quantise(float v) {
    return (unsigned char)fminf(fmaxf(roundf(v), 0.0f), 255.0f);
}

// float <-> IEEE binary16 bits, round to nearest even (what half::f16::from_f32 does).
__device__ __forceinline__ unsigned short to_half_bits(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float from_half_bits(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

struct F32 {
    typedef float T;
    static __device__ __forceinline__ void store(T* p, size_t i, float v) { p[i] = v; }
    static __device__ __forceinline__ float load(const T* p, size_t i) { return p[i]; }
};

struct F16 {
    typedef unsigned short T;
    static __device__ __forceinline__ void store(T* p, size_t i, float v) { p[i] = to_half_bits(v); }
    static __device__ __forceinline__ float load(const T* p, size_t i) { return from_half_bits(p[i]); }
};
