// A frame of any format (FormatLayout; any pitch) -> planar RGB tensor [3, out_h, out_w] in 0..1, fp32 or fp16.
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal cpu.rs bit for bit)
// Subsampled chroma is upsampled bilinearly with centred siting (weights 3/4, 1/4); the region may reach outside
// the frame, where edge pixels are replicated (tiles with overlap at frame borders).
#include "common.cuh"

__device__ __forceinline__ void chroma_taps(int x, int len, int& near_i, int& far_i) {
    near_i = min(x >> 1, len - 1);
    far_i = (x & 1) ? min(near_i + 1, len - 1) : max(near_i - 1, 0);
}

template <typename E>
__device__ void frame_to_planar(const unsigned char* __restrict__ plane0, int pitch0,
                                const unsigned char* __restrict__ plane1, int pitch1, int width, int height,
                                FormatLayout fmt, int region_x, int region_y, typename E::T* __restrict__ dst,
                                int out_w, int out_h, Affine3x4 to_rgb) {
    const int tx = blockIdx.x * blockDim.x + threadIdx.x;
    const int ty = blockIdx.y * blockDim.y + threadIdx.y;
    if (tx >= out_w || ty >= out_h) return;
    const int x = min(max(region_x + tx, 0), width - 1);
    const int y = min(max(region_y + ty, 0), height - 1);
    int cxn, cxf, cyn, cyf;
    chroma_taps(x, (width + 1) >> 1, cxn, cxf);
    chroma_taps(y, (height + 1) >> 1, cyn, cyf);
    const unsigned char* row = plane0 + (size_t)y * pitch0;
    float c[3];
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        if (fmt.plane[k] == 0) {
            c[k] = load_sample(row, x * fmt.step[0] + fmt.offset[k], fmt);
        } else {
            const unsigned char* near_row = plane1 + (size_t)cyn * pitch1;
            const unsigned char* far_row = plane1 + (size_t)cyf * pitch1;
            const int n = cxn * fmt.step[1] + fmt.offset[k], f = cxf * fmt.step[1] + fmt.offset[k];
            const float near_v = 0.75f * load_sample(near_row, n, fmt) + 0.25f * load_sample(near_row, f, fmt);
            const float far_v = 0.75f * load_sample(far_row, n, fmt) + 0.25f * load_sample(far_row, f, fmt);
            c[k] = 0.75f * near_v + 0.25f * far_v;
        }
    }
    float rgb[3];
    apply(to_rgb, c[0], c[1], c[2], rgb);
    const size_t plane = (size_t)out_w * out_h;
    const size_t i = (size_t)ty * out_w + tx;
#pragma unroll
    for (int k = 0; k < 3; ++k) E::store(dst, k * plane + i, clamp01(rgb[k]));
}

extern "C" __global__ void frame_to_planar_f32(const unsigned char* plane0, int pitch0, const unsigned char* plane1,
                                               int pitch1, int width, int height, FormatLayout fmt, int region_x,
                                               int region_y, float* dst, int out_w, int out_h, Affine3x4 to_rgb) {
    frame_to_planar<F32>(plane0, pitch0, plane1, pitch1, width, height, fmt, region_x, region_y, dst, out_w, out_h,
                         to_rgb);
}

extern "C" __global__ void frame_to_planar_f16(const unsigned char* plane0, int pitch0, const unsigned char* plane1,
                                               int pitch1, int width, int height, FormatLayout fmt, int region_x,
                                               int region_y, unsigned short* dst, int out_w, int out_h,
                                               Affine3x4 to_rgb) {
    frame_to_planar<F16>(plane0, pitch0, plane1, pitch1, width, height, fmt, region_x, region_y, dst, out_w, out_h,
                         to_rgb);
}
