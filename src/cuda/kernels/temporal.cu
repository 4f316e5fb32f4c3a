// Temporal stabilisation's mask (temporal.rs): the input frame's difference to the previous input (per pixel, in
// 8-bit code values: luma for Y'CbCr, the largest of R, G, B otherwise), summed over the frame (scene cuts) and
// maximised over a neighbourhood per pixel, mapped to 1 (static) .. 0 (moving).
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal temporal.rs bit for bit)
#include "common.cuh"

// The code value of sample i of a row, as an integer.
__device__ __forceinline__ unsigned int code_at(const unsigned char* row, int i, const FormatLayout& f) {
    if (f.sample_bytes == 1) return row[i];
    return (unsigned int)(((const unsigned short*)row)[i] >> f.shift);
}

// temporal::pixel_difference.
__device__ __forceinline__ unsigned int pixel_difference(const unsigned char* a, const unsigned char* b, int x,
                                                         const FormatLayout& f) {
    unsigned int d = 0;
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        if (f.plane[k] == 0) {
            const int i = x * f.step[0] + f.offset[k];
            d = max(d, (unsigned int)abs((int)code_at(a, i, f) - (int)code_at(b, i, f)));
        }
    }
    return d * 255u / (unsigned int)f.max_code;
}

// Adds the frame's sum of pixel differences to *sum (integers: the order of the atomic adds does not matter). One
// thread per pixel; each warp adds its partial sum once.
extern "C" __global__ void frame_difference(const unsigned char* __restrict__ cur, int cur_pitch,
                                            const unsigned char* __restrict__ prev, int prev_pitch, int width,
                                            int height, FormatLayout fmt, unsigned long long* sum) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    unsigned int d = 0;
    if (x < width && y < height) {
        d = pixel_difference(cur + (size_t)y * cur_pitch, prev + (size_t)y * prev_pitch, x, fmt);
    }
    for (int offset = 16; offset > 0; offset >>= 1) d += __shfl_down_sync(0xffffffffu, d, offset);
    if ((threadIdx.x & 31) == 0 && d != 0) atomicAdd(sum, (unsigned long long)d);
}

// TemporalSettings::mask_value.
__device__ __forceinline__ float mask_value(unsigned int d, unsigned int lo, unsigned int hi) {
    if (d <= lo) return 1.0f;
    if (d >= hi) return 0.0f;
    return (float)(hi - d) / (float)(hi - lo);
}

// temporal::compute_mask: per pixel the largest difference over the (2r+1)^2 neighbourhood (edges clamped), mapped
// by the thresholds; 0 everywhere without a valid history or on a scene cut (*sum > cut_limit).
extern "C" __global__ void temporal_mask(const unsigned char* __restrict__ cur, int cur_pitch,
                                         const unsigned char* __restrict__ prev, int prev_pitch, int width,
                                         int height, FormatLayout fmt, int radius, unsigned int lo, unsigned int hi,
                                         const unsigned long long* __restrict__ sum, unsigned long long cut_limit,
                                         int history_valid, float* __restrict__ mask) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= width || y >= height) return;
    float m = 0.0f;
    if (history_valid && *sum <= cut_limit) {
        unsigned int d = 0;
        for (int dy = -radius; dy <= radius; ++dy) {
            const int yy = min(max(y + dy, 0), height - 1);
            const unsigned char* a = cur + (size_t)yy * cur_pitch;
            const unsigned char* b = prev + (size_t)yy * prev_pitch;
            for (int dx = -radius; dx <= radius; ++dx) {
                d = max(d, pixel_difference(a, b, min(max(x + dx, 0), width - 1), fmt));
            }
        }
        m = mask_value(d, lo, hi);
    }
    mask[(size_t)y * width + x] = m;
}
