// Planar RGB tensor [3, height, width] (fp32 or fp16, any range) -> NV12 of the same size.
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal cpu.rs bit for bit)
// RGB is clamped to 0..1; each chroma sample is the 2x2 average of clamped RGB, its luma block converted per pixel.
// Written for bandwidth: each thread converts 4 horizontally adjacent chroma samples (8x2 pixels) with 16-byte
// loads of each plane's rows and 8-byte stores of luma and chroma where the layout allows (`vector`: rows of a
// multiple of 8 pixels, 16-byte aligned tensor, 8-byte aligned planes and pitches); elsewhere (edges, odd sizes) it
// falls back to per-sample loads and stores. Both visit each block's pixels in the same order, so the bytes are the
// same either way.
#include "common.cuh"

// One 2x2 block (or what of it lies inside the frame), per pixel and per sample, as cpu::write_nv12.
template <typename E>
__device__ __forceinline__ void block(const typename E::T* __restrict__ src, int width, int height, int cx, int cy,
                                      unsigned char* __restrict__ y_plane, int y_pitch,
                                      unsigned char* __restrict__ uv_plane, int uv_pitch, const Affine3x4& m) {
    const size_t plane = (size_t)width * height;
    float sum[3] = {0.0f, 0.0f, 0.0f};
    int n = 0;
    for (int y = 2 * cy; y < min(2 * cy + 2, height); ++y) {
        for (int x = 2 * cx; x < min(2 * cx + 2, width); ++x) {
            const size_t i = (size_t)y * width + x;
            const float r = clamp01(E::load(src, i));
            const float g = clamp01(E::load(src, plane + i));
            const float b = clamp01(E::load(src, 2 * plane + i));
            float yuv[3];
            apply(m, r, g, b, yuv);
            y_plane[(size_t)y * y_pitch + x] = quantise(yuv[0]);
            sum[0] += r;
            sum[1] += g;
            sum[2] += b;
            ++n;
        }
    }
    const float inv = 1.0f / (float)n;
    float yuv[3];
    apply(m, sum[0] * inv, sum[1] * inv, sum[2] * inv, yuv);
    unsigned char* row = uv_plane + (size_t)cy * uv_pitch;
    row[2 * cx] = quantise(yuv[1]);
    row[2 * cx + 1] = quantise(yuv[2]);
}

// 8 consecutive values of a plane row, as floats (the address 16-byte aligned for fp16, 32 for fp32 rows of 8).
__device__ __forceinline__ void load8(const float* p, float v[8]) {
    const float4 a = *(const float4*)p, b = *(const float4*)(p + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

__device__ __forceinline__ void load8(const unsigned short* p, float v[8]) {
    const uint4 a = *(const uint4*)p;
    const unsigned int w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        v[2 * k] = from_half_bits((unsigned short)(w[k] & 0xffffu));
        v[2 * k + 1] = from_half_bits((unsigned short)(w[k] >> 16));
    }
}

__device__ __forceinline__ unsigned int pack4(const unsigned char b[4]) {
    return (unsigned int)b[0] | ((unsigned int)b[1] << 8) | ((unsigned int)b[2] << 16) | ((unsigned int)b[3] << 24);
}

template <typename E>
__device__ void planar_to_nv12(const typename E::T* __restrict__ src, int width, int height,
                               unsigned char* __restrict__ y_plane, int y_pitch, unsigned char* __restrict__ uv_plane,
                               int uv_pitch, Affine3x4 rgb_to_yuv, int vector) {
    const int group = blockIdx.x * blockDim.x + threadIdx.x;
    const int cy = blockIdx.y * blockDim.y + threadIdx.y;
    const int chroma_w = (width + 1) >> 1;
    const int cx0 = 4 * group;
    if (cx0 >= chroma_w || cy >= (height + 1) >> 1) return;
    if (!vector || cx0 + 4 > chroma_w || 2 * cy + 2 > height) {
        for (int cx = cx0; cx < min(cx0 + 4, chroma_w); ++cx) {
            block<E>(src, width, height, cx, cy, y_plane, y_pitch, uv_plane, uv_pitch, rgb_to_yuv);
        }
        return;
    }
    const size_t plane = (size_t)width * height;
    const int x0 = 2 * cx0;
    float rgb[2][3][8];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const size_t i = (size_t)(2 * cy + r) * width + x0;
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            load8(src + k * plane + i, rgb[r][k]);
#pragma unroll
            for (int p = 0; p < 8; ++p) rgb[r][k][p] = clamp01(rgb[r][k][p]);
        }
        unsigned char luma[8];
#pragma unroll
        for (int p = 0; p < 8; ++p) {
            float yuv[3];
            apply(rgb_to_yuv, rgb[r][0][p], rgb[r][1][p], rgb[r][2][p], yuv);
            luma[p] = quantise(yuv[0]);
        }
        *(uint2*)(y_plane + (size_t)(2 * cy + r) * y_pitch + x0) = make_uint2(pack4(luma), pack4(luma + 4));
    }
    unsigned char chroma[8];
#pragma unroll
    for (int c = 0; c < 4; ++c) {
        float sum[3];
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            // the block's pixels in write_nv12's order: the top row's two, then the bottom row's
            float s = 0.0f;
            s += rgb[0][k][2 * c];
            s += rgb[0][k][2 * c + 1];
            s += rgb[1][k][2 * c];
            s += rgb[1][k][2 * c + 1];
            sum[k] = s;
        }
        const float inv = 1.0f / 4.0f;
        float yuv[3];
        apply(rgb_to_yuv, sum[0] * inv, sum[1] * inv, sum[2] * inv, yuv);
        chroma[2 * c] = quantise(yuv[1]);
        chroma[2 * c + 1] = quantise(yuv[2]);
    }
    *(uint2*)(uv_plane + (size_t)cy * uv_pitch + 2 * cx0) = make_uint2(pack4(chroma), pack4(chroma + 4));
}

extern "C" __global__ void planar_to_nv12_f32(const float* src, int width, int height, unsigned char* y_plane,
                                              int y_pitch, unsigned char* uv_plane, int uv_pitch, Affine3x4 rgb_to_yuv,
                                              int vector) {
    planar_to_nv12<F32>(src, width, height, y_plane, y_pitch, uv_plane, uv_pitch, rgb_to_yuv, vector);
}

extern "C" __global__ void planar_to_nv12_f16(const unsigned short* src, int width, int height,
                                              unsigned char* y_plane, int y_pitch, unsigned char* uv_plane,
                                              int uv_pitch, Affine3x4 rgb_to_yuv, int vector) {
    planar_to_nv12<F16>(src, width, height, y_plane, y_pitch, uv_plane, uv_pitch, rgb_to_yuv, vector);
}
