// Planar RGB tensor [3, height, width] (fp32 or fp16, any range) -> the three components of a frame of the same
// size, of any format (FormatLayout).
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal cpu.rs bit for bit)
// RGB is clamped to 0..1. A block is a 2x2 block of pixels and its chroma (the code of the block's average RGB) with a
// subsampled chroma plane, else one pixel. A fourth sample (alpha, padding) is left to fill_extra.cu.
// Written for bandwidth: with a subsampled plane each thread converts 4 horizontally adjacent blocks (8x2 pixels),
// with 16-byte loads of each tensor plane's rows and 8- or 16-byte stores of luma and chroma where the layout allows
// (`vector`: NV12-like layouts, rows of a multiple of 8 pixels, aligned tensor, planes and pitches), per sample
// elsewhere; both visit each block's pixels in the same order, so the bytes are the same either way. Packed formats
// take one pixel per thread.
#include "common.cuh"

// One block (or what of it lies inside the frame), per pixel and per sample, as cpu::write_frame.
template <typename E>
__device__ __forceinline__ void block_of(const typename E::T* __restrict__ src, int width, int height, int block,
                                         int bx, int by, unsigned char* __restrict__ plane0, int pitch0,
                                         unsigned char* __restrict__ plane1, int pitch1, const FormatLayout& fmt,
                                         const Affine3x4& from_rgb) {
    const size_t plane = (size_t)width * height;
    float sum[3] = {0.0f, 0.0f, 0.0f};
    int n = 0;
    for (int y = block * by; y < min(block * by + block, height); ++y) {
        unsigned char* row = plane0 + (size_t)y * pitch0;
        for (int x = block * bx; x < min(block * bx + block, width); ++x) {
            const size_t i = (size_t)y * width + x;
            const float r = clamp01(E::load(src, i));
            const float g = clamp01(E::load(src, plane + i));
            const float b = clamp01(E::load(src, 2 * plane + i));
            float code[3];
            apply(from_rgb, r, g, b, code);
#pragma unroll
            for (int k = 0; k < 3; ++k) {
                if (fmt.plane[k] == 0)
                    store_sample(row, x * fmt.step[0] + fmt.offset[k], quantise(code[k], fmt.max_code), fmt);
            }
            sum[0] += r;
            sum[1] += g;
            sum[2] += b;
            ++n;
        }
    }
    if (block == 2) {
        const float inv = 1.0f / (float)n;
        float code[3];
        apply(from_rgb, sum[0] * inv, sum[1] * inv, sum[2] * inv, code);
        unsigned char* row = plane1 + (size_t)by * pitch1;
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            if (fmt.plane[k] == 1)
                store_sample(row, bx * fmt.step[1] + fmt.offset[k], quantise(code[k], fmt.max_code), fmt);
        }
    }
}

// 8 consecutive values of a plane row, as floats (the address 16-byte aligned).
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

// Stores 8 samples (codes already shifted into place) as 8 bytes or 16 bytes little-endian.
__device__ __forceinline__ void store8(unsigned char* p, const unsigned int v[8], int sample_bytes) {
    if (sample_bytes == 1) {
        unsigned int w[2];
#pragma unroll
        for (int k = 0; k < 2; ++k) w[k] = v[4 * k] | (v[4 * k + 1] << 8) | (v[4 * k + 2] << 16) | (v[4 * k + 3] << 24);
        *(uint2*)p = make_uint2(w[0], w[1]);
    } else {
        unsigned int w[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) w[k] = v[2 * k] | (v[2 * k + 1] << 16);
        *(uint4*)p = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

template <typename E>
__device__ void planar_to_frame(const typename E::T* __restrict__ src, int width, int height,
                                unsigned char* __restrict__ plane0, int pitch0, unsigned char* __restrict__ plane1,
                                int pitch1, FormatLayout fmt, Affine3x4 from_rgb, int vector) {
    const int block = fmt.step[1] > 0 ? 2 : 1;
    const int gx = blockIdx.x * blockDim.x + threadIdx.x;
    const int by = blockIdx.y * blockDim.y + threadIdx.y;
    const int blocks_w = (width + block - 1) / block;
    if (by >= (height + block - 1) / block) return;
    if (block == 1) {
        if (gx < blocks_w) block_of<E>(src, width, height, 1, gx, by, plane0, pitch0, plane1, pitch1, fmt, from_rgb);
        return;
    }
    const int bx0 = 4 * gx;
    if (bx0 >= blocks_w) return;
    if (!vector || bx0 + 4 > blocks_w || 2 * by + 2 > height) {
        for (int bx = bx0; bx < min(bx0 + 4, blocks_w); ++bx) {
            block_of<E>(src, width, height, 2, bx, by, plane0, pitch0, plane1, pitch1, fmt, from_rgb);
        }
        return;
    }
    // NV12-like: luma alone in plane 0 (one sample per pixel), Cb Cr interleaved in plane 1
    const size_t plane = (size_t)width * height;
    const int x0 = 2 * bx0, bytes = fmt.sample_bytes;
    float rgb[2][3][8];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const size_t i = (size_t)(2 * by + r) * width + x0;
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            load8(src + k * plane + i, rgb[r][k]);
#pragma unroll
            for (int p = 0; p < 8; ++p) rgb[r][k][p] = clamp01(rgb[r][k][p]);
        }
        unsigned int luma[8];
#pragma unroll
        for (int p = 0; p < 8; ++p) {
            float code[3];
            apply(from_rgb, rgb[r][0][p], rgb[r][1][p], rgb[r][2][p], code);
            luma[p] = quantise(code[0], fmt.max_code) << fmt.shift;
        }
        store8(plane0 + (size_t)(2 * by + r) * pitch0 + (size_t)x0 * bytes, luma, bytes);
    }
    unsigned int chroma[8];
#pragma unroll
    for (int c = 0; c < 4; ++c) {
        float sum[3];
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            // the block's pixels in write_frame's order: the top row's two, then the bottom row's
            float s = 0.0f;
            s += rgb[0][k][2 * c];
            s += rgb[0][k][2 * c + 1];
            s += rgb[1][k][2 * c];
            s += rgb[1][k][2 * c + 1];
            sum[k] = s;
        }
        const float inv = 1.0f / 4.0f;
        float code[3];
        apply(from_rgb, sum[0] * inv, sum[1] * inv, sum[2] * inv, code);
        chroma[2 * c] = quantise(code[1], fmt.max_code) << fmt.shift;
        chroma[2 * c + 1] = quantise(code[2], fmt.max_code) << fmt.shift;
    }
    store8(plane1 + (size_t)by * pitch1 + (size_t)(2 * bx0) * bytes, chroma, bytes);
}

extern "C" __global__ void planar_to_frame_f32(const float* src, int width, int height, unsigned char* plane0,
                                               int pitch0, unsigned char* plane1, int pitch1, FormatLayout fmt,
                                               Affine3x4 from_rgb, int vector) {
    planar_to_frame<F32>(src, width, height, plane0, pitch0, plane1, pitch1, fmt, from_rgb, vector);
}

extern "C" __global__ void planar_to_frame_f16(const unsigned short* src, int width, int height,
                                               unsigned char* plane0, int pitch0, unsigned char* plane1, int pitch1,
                                               FormatLayout fmt, Affine3x4 from_rgb, int vector) {
    planar_to_frame<F16>(src, width, height, plane0, pitch0, plane1, pitch1, fmt, from_rgb, vector);
}
