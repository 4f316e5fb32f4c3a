// Planar RGB tensor [3, height, width] (fp32 or fp16, any range) -> NV12 of the same size.
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal cpu.rs bit for bit)
// RGB is clamped to 0..1; each thread writes one chroma sample (the 2x2 average of clamped RGB) and its luma block.
#include "common.cuh"

template <typename E>
__device__ void planar_to_nv12(const typename E::T* __restrict__ src, int width, int height,
                               unsigned char* __restrict__ y_plane, int y_pitch, unsigned char* __restrict__ uv_plane,
                               int uv_pitch, Affine3x4 rgb_to_yuv) {
    const int cx = blockIdx.x * blockDim.x + threadIdx.x;
    const int cy = blockIdx.y * blockDim.y + threadIdx.y;
    if (cx >= (width + 1) >> 1 || cy >= (height + 1) >> 1) return;
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
            apply(rgb_to_yuv, r, g, b, yuv);
            y_plane[(size_t)y * y_pitch + x] = quantise(yuv[0]);
            sum[0] += r;
            sum[1] += g;
            sum[2] += b;
            ++n;
        }
    }
    const float inv = 1.0f / (float)n;
    float yuv[3];
    apply(rgb_to_yuv, sum[0] * inv, sum[1] * inv, sum[2] * inv, yuv);
    unsigned char* row = uv_plane + (size_t)cy * uv_pitch;
    row[2 * cx] = quantise(yuv[1]);
    row[2 * cx + 1] = quantise(yuv[2]);
}

extern "C" __global__ void planar_to_nv12_f32(const float* src, int width, int height, unsigned char* y_plane,
                                              int y_pitch, unsigned char* uv_plane, int uv_pitch,
                                              Affine3x4 rgb_to_yuv) {
    planar_to_nv12<F32>(src, width, height, y_plane, y_pitch, uv_plane, uv_pitch, rgb_to_yuv);
}

extern "C" __global__ void planar_to_nv12_f16(const unsigned short* src, int width, int height,
                                              unsigned char* y_plane, int y_pitch, unsigned char* uv_plane,
                                              int uv_pitch, Affine3x4 rgb_to_yuv) {
    planar_to_nv12<F16>(src, width, height, y_plane, y_pitch, uv_plane, uv_pitch, rgb_to_yuv);
}
