// Planar RGB [3, in_h, in_w] (fp32 or fp16) -> planar fp32 [3, out_h, out_w], resampled with classic.rs's tables
// (Lanczos-3 or bicubic): the classic image on its own, for tests and tools; the output conversion (compose.cu)
// computes the same values in place.
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal classic.rs bit for bit)
#include "common.cuh"
#include "resample.cuh"

template <typename E>
__device__ void resample_planar(const typename E::T* __restrict__ src, float* __restrict__ dst, int out_w, int out_h,
                                Axis fx, Axis fy) {
    const int ox = blockIdx.x * blockDim.x + threadIdx.x;
    const int oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= out_w || oy >= out_h) return;
    const size_t in_plane = (size_t)fx.input * fy.input, out_plane = (size_t)out_w * out_h;
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        dst[k * out_plane + (size_t)oy * out_w + ox] = resample_at<E>(src + k * in_plane, fx.input, fx, fy, ox, oy);
    }
}

extern "C" __global__ void resample_planar_f32(const float* src, float* dst, int out_w, int out_h, Axis fx, Axis fy) {
    resample_planar<F32>(src, dst, out_w, out_h, fx, fy);
}

extern "C" __global__ void resample_planar_f16(const unsigned short* src, float* dst, int out_w, int out_h, Axis fx,
                                               Axis fy) {
    resample_planar<F16>(src, dst, out_w, out_h, fx, fy);
}
