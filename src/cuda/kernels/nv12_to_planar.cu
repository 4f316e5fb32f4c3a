// NV12 (8-bit, any pitch) -> planar RGB tensor [3, out_h, out_w] in 0..1, fp32 or fp16.
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal cpu.rs bit for bit)
// Chroma is upsampled bilinearly with centred siting (weights 3/4, 1/4); the region may reach outside the frame,
// where edge pixels are replicated (tiles with overlap at frame borders).
#include "common.cuh"

__device__ __forceinline__ void chroma_taps(int x, int len, int& near_i, int& far_i) {
    near_i = min(x >> 1, len - 1);
    far_i = (x & 1) ? min(near_i + 1, len - 1) : max(near_i - 1, 0);
}

template <typename E>
__device__ void nv12_to_planar(const unsigned char* __restrict__ y_plane, int y_pitch,
                               const unsigned char* __restrict__ uv_plane, int uv_pitch, int width, int height,
                               int region_x, int region_y, typename E::T* __restrict__ dst, int out_w, int out_h,
                               Affine3x4 yuv_to_rgb) {
    const int tx = blockIdx.x * blockDim.x + threadIdx.x;
    const int ty = blockIdx.y * blockDim.y + threadIdx.y;
    if (tx >= out_w || ty >= out_h) return;
    const int x = min(max(region_x + tx, 0), width - 1);
    const int y = min(max(region_y + ty, 0), height - 1);
    int cxn, cxf, cyn, cyf;
    chroma_taps(x, (width + 1) >> 1, cxn, cxf);
    chroma_taps(y, (height + 1) >> 1, cyn, cyf);
    const unsigned char* near_row = uv_plane + (size_t)cyn * uv_pitch;
    const unsigned char* far_row = uv_plane + (size_t)cyf * uv_pitch;
    const float un = 0.75f * (float)near_row[2 * cxn] + 0.25f * (float)near_row[2 * cxf];
    const float uf = 0.75f * (float)far_row[2 * cxn] + 0.25f * (float)far_row[2 * cxf];
    const float vn = 0.75f * (float)near_row[2 * cxn + 1] + 0.25f * (float)near_row[2 * cxf + 1];
    const float vf = 0.75f * (float)far_row[2 * cxn + 1] + 0.25f * (float)far_row[2 * cxf + 1];
    const float u = 0.75f * un + 0.25f * uf;
    const float v = 0.75f * vn + 0.25f * vf;
    float rgb[3];
    apply(yuv_to_rgb, (float)y_plane[(size_t)y * y_pitch + x], u, v, rgb);
    const size_t plane = (size_t)out_w * out_h;
    const size_t i = (size_t)ty * out_w + tx;
#pragma unroll
    for (int k = 0; k < 3; ++k) E::store(dst, k * plane + i, clamp01(rgb[k]));
}

extern "C" __global__ void nv12_to_planar_f32(const unsigned char* y_plane, int y_pitch, const unsigned char* uv_plane,
                                              int uv_pitch, int width, int height, int region_x, int region_y,
                                              float* dst, int out_w, int out_h, Affine3x4 yuv_to_rgb) {
    nv12_to_planar<F32>(y_plane, y_pitch, uv_plane, uv_pitch, width, height, region_x, region_y, dst, out_w, out_h,
                        yuv_to_rgb);
}

extern "C" __global__ void nv12_to_planar_f16(const unsigned char* y_plane, int y_pitch, const unsigned char* uv_plane,
                                              int uv_pitch, int width, int height, int region_x, int region_y,
                                              unsigned short* dst, int out_w, int out_h, Affine3x4 yuv_to_rgb) {
    nv12_to_planar<F16>(y_plane, y_pitch, uv_plane, uv_pitch, width, height, region_x, region_y, dst, out_w, out_h,
                        yuv_to_rgb);
}
