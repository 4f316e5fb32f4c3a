// Planar RGB tensor [3, height, width] (fp32 or fp16, any range) -> the three components of a frame of the same
// size, of any format (FormatLayout).
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal cpu.rs bit for bit)
// RGB is clamped to 0..1. Each thread writes one block: with a subsampled chroma plane a 2x2 block of pixels and
// its chroma (the code of the block's average RGB), else one pixel. A fourth sample (alpha, padding) is left to
// fill_extra.cu.
#include "common.cuh"

template <typename E>
__device__ void planar_to_frame(const typename E::T* __restrict__ src, int width, int height,
                                unsigned char* __restrict__ plane0, int pitch0, unsigned char* __restrict__ plane1,
                                int pitch1, FormatLayout fmt, Affine3x4 from_rgb) {
    const int block = fmt.step[1] > 0 ? 2 : 1;
    const int bx = blockIdx.x * blockDim.x + threadIdx.x;
    const int by = blockIdx.y * blockDim.y + threadIdx.y;
    if (bx >= (width + block - 1) / block || by >= (height + block - 1) / block) return;
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

extern "C" __global__ void planar_to_frame_f32(const float* src, int width, int height, unsigned char* plane0,
                                               int pitch0, unsigned char* plane1, int pitch1, FormatLayout fmt,
                                               Affine3x4 from_rgb) {
    planar_to_frame<F32>(src, width, height, plane0, pitch0, plane1, pitch1, fmt, from_rgb);
}

extern "C" __global__ void planar_to_frame_f16(const unsigned short* src, int width, int height,
                                               unsigned char* plane0, int pitch0, unsigned char* plane1, int pitch1,
                                               FormatLayout fmt, Affine3x4 from_rgb) {
    planar_to_frame<F16>(src, width, height, plane0, pitch0, plane1, pitch1, fmt, from_rgb);
}
