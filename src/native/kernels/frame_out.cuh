// The output conversion of the last layer that writes frames (srvgg_sm90.cu's FrameEpilogue), per input pixel: its
// pixel-shuffled outputs plus the nearest-upsampled residual, each rounded to fp16 as ShuffleEpilogue stores it in
// the planar output, then what planar_to_frame.cu does to that output (clamp to 0..1, affine map, quantisation,
// 2x2 chroma average), the same operations in the same order, into an NV12 or P010 frame. For even shuffles R only:
// a 2x2 chroma block then lies inside one input pixel's R x R outputs.
//
// Arithmetic through common.cuh, whose affine map uses explicitly rounded intrinsics: the including module keeps
// FMA contraction for its convolutions and this still equals planar_to_frame.cu (compiled with fmad=false) bit for
// bit. No CUDA headers; tests/fused_output_emulation.rs also compiles this file as C++ and checks it against
// cpu::planar_to_frame.
#pragma once
#include "../../cuda/kernels/common.cuh"

// Samples of the frames written: luma in plane 0, Cb Cr interleaved in plane 1 (4:2:0), code values shifted up within
// their samples (format::FormatLayout of NV12 and P010).
struct Nv12Samples {
    typedef unsigned char T;
    static constexpr int SHIFT = 0, MAX_CODE = 255;
};
struct P010Samples {
    typedef unsigned short T;
    static constexpr int SHIFT = 6, MAX_CODE = 1023;
};

// N consecutive samples of a row (little-endian): one store where the address allows (2, 4, 8 bytes), else one per
// sample.
template <typename T, int N>
__device__ __forceinline__ void store_samples(unsigned char* row, const unsigned v[N]) {
    constexpr int BYTES = N * (int)sizeof(T);
    if ((BYTES == 2 || BYTES == 4 || BYTES == 8) && ((unsigned long long)row & (BYTES - 1)) == 0) {
        unsigned long long packed = 0;
#pragma unroll
        for (int e = 0; e < N; ++e) packed |= (unsigned long long)v[e] << (8 * (int)sizeof(T) * e);
        if (BYTES == 2) *(unsigned short*)row = (unsigned short)packed;
        if (BYTES == 4) *(unsigned*)row = (unsigned)packed;
        if (BYTES == 8) *(unsigned long long*)row = packed;
    } else {
#pragma unroll
        for (int e = 0; e < N; ++e) ((T*)row)[e] = (T)v[e];
    }
}

// One input pixel's share of chroma row `cy` (0 .. R/2 - 1) of its outputs: luma rows 2 cy and 2 cy + 1 of its R x R
// block (R samples each, from `luma` and `luma` + `luma_pitch`) and its R/2 chroma positions of that row (Cb Cr each,
// R samples from `chroma`). `staged(ch)`: the fp16 bits of channel ch (CRD: c R^2 + dy R + dx) of the last
// convolution at the pixel, bias added; `res`: the model input at the pixel (planar fp16, as floats).
template <int R, typename S, typename Staged>
__device__ __forceinline__ void frame_pixel(const Staged& staged, const float res[3], const Affine3x4& from_rgb,
                                            int cy, unsigned char* luma, int luma_pitch, unsigned char* chroma) {
    static_assert(R % 2 == 0, "a 2x2 chroma block must not straddle two input pixels");
    // rgb[row][dx][c]: the planar output's fp16 value, clamped as planar_to_frame reads it
    float rgb[2][R][3];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
        for (int dx = 0; dx < R; ++dx) {
#pragma unroll
            for (int c = 0; c < 3; ++c) {
                const float v = from_half_bits(staged(c * R * R + (2 * cy + r) * R + dx)) + res[c];
                rgb[r][dx][c] = clamp01(from_half_bits(to_half_bits(v)));
            }
        }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        unsigned codes[R];
#pragma unroll
        for (int dx = 0; dx < R; ++dx) {
            float code[3];
            apply(from_rgb, rgb[r][dx][0], rgb[r][dx][1], rgb[r][dx][2], code);
            codes[dx] = quantise(code[0], S::MAX_CODE) << S::SHIFT;
        }
        store_samples<typename S::T, R>(luma + r * luma_pitch, codes);
    }
    unsigned codes[R];
#pragma unroll
    for (int cx = 0; cx < R / 2; ++cx) {
        float mean[3];
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            // the block's pixels in write_frame's order: the top row's two, then the bottom row's
            float sum = 0.0f;
            sum = __fadd_rn(sum, rgb[0][2 * cx][k]);
            sum = __fadd_rn(sum, rgb[0][2 * cx + 1][k]);
            sum = __fadd_rn(sum, rgb[1][2 * cx][k]);
            sum = __fadd_rn(sum, rgb[1][2 * cx + 1][k]);
            mean[k] = __fmul_rn(sum, 1.0f / 4.0f);
        }
        float code[3];
        apply(from_rgb, mean[0], mean[1], mean[2], code);
        codes[2 * cx] = quantise(code[1], S::MAX_CODE) << S::SHIFT;
        codes[2 * cx + 1] = quantise(code[2], S::MAX_CODE) << S::SHIFT;
    }
    store_samples<typename S::T, R>(chroma, codes);
}
