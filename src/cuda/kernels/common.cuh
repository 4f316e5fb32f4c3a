// Shared by the conversion kernels. No CUDA headers: NVRTC compiles this as is.
// Arithmetic mirrors src/cpu.rs operation for operation; compiled with --fmad=false the results are identical.
#pragma once

// A 3x4 affine map, row-major (colour::Affine3x4 on the Rust side), passed by value.
struct Affine3x4 {
    float m[3][4];
};

// Each multiply and add rounded on its own (the intrinsics are never contracted into FMAs), so that the result is
// cpu.rs's in any module, also those compiled with contraction (srvgg_sm90.cu's fused output conversion).
__device__ __forceinline__ void apply(const Affine3x4& a, float x, float y, float z, float out[3]) {
#pragma unroll
    for (int i = 0; i < 3; ++i) {
        const float xy = __fadd_rn(__fmul_rn(a.m[i][0], x), __fmul_rn(a.m[i][1], y));
        out[i] = __fadd_rn(__fadd_rn(xy, __fmul_rn(a.m[i][2], z)), a.m[i][3]);
    }
}

__device__ __forceinline__ float clamp01(float v) { return fminf(fmaxf(v, 0.0f), 1.0f); }

// Round half away from zero, then clamp to 0..max_code (colour::quantise).
__device__ __forceinline__ unsigned int quantise(float v, int max_code) {
    return (unsigned int)fminf(fmaxf(roundf(v), 0.0f), (float)max_code);
}

// A frame format as the conversion routines see it (format::FormatLayout on the Rust side), passed by value.
// Components 0, 1, 2 are Y Cb Cr or R G B; plane 1 is subsampled 2x2 (4:2:0).
struct FormatLayout {
    int sample_bytes;  // 1, or 2 (little-endian)
    int shift;         // bits the code value is shifted up within its sample (P010: 6)
    int max_code;      // 255 or 1023
    int step[2];       // samples from one pixel (plane 0) or chroma position (plane 1) to the next
    int plane[3];      // plane of each component
    int offset[3];     // sample offset of each component within its pixel
    int extra;         // sample offset of a fourth sample per pixel in plane 0 (alpha, padding), or -1
};

// The code value of sample i of a row (cpu.rs: load).
__device__ __forceinline__ float load_sample(const unsigned char* row, int i, const FormatLayout& f) {
    if (f.sample_bytes == 1) return (float)row[i];
    return (float)(((const unsigned short*)row)[i] >> f.shift);
}

// Writes code value v (in range) into sample i of a row (cpu.rs: store).
__device__ __forceinline__ void store_sample(unsigned char* row, int i, unsigned int v, const FormatLayout& f) {
    if (f.sample_bytes == 1) {
        row[i] = (unsigned char)v;
    } else {
        ((unsigned short*)row)[i] = (unsigned short)(v << f.shift);
    }
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
