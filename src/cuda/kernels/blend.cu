// Adds one tile's output, weighted by its blend ramps (tiling.rs), into a planar float32 accumulation frame.
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal cpu.rs bit for bit)
// Each thread handles one output pixel of the tile; tiles are blended one after another on one stream, so no two
// launches touch the accumulation frame at once.
#include "common.cuh"

struct AxisRamp {
    float rise[2];
    float fall[2];
};

// AxisRamp::weight in tiling.rs, operation for operation.
__device__ __forceinline__ float ramp_weight(const AxisRamp& r, unsigned int x) {
    const float c = (float)x + 0.5f;
    const float up = c >= r.rise[1] ? 1.0f : (c <= r.rise[0] ? 0.0f : (c - r.rise[0]) / (r.rise[1] - r.rise[0]));
    const float down = c <= r.fall[0] ? 1.0f : (c >= r.fall[1] ? 0.0f : (r.fall[1] - c) / (r.fall[1] - r.fall[0]));
    return up * down;
}

template <typename E>
__device__ void blend_tile(const typename E::T* __restrict__ tile, int tw, int th, float* __restrict__ acc, int aw,
                           int ah, int ox, int oy, AxisRamp rx, AxisRamp ry) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= tw || y >= th) return;
    const unsigned int gx = (unsigned int)(ox + x), gy = (unsigned int)(oy + y);
    const float w = ramp_weight(rx, gx) * ramp_weight(ry, gy);
    if (w == 0.0f) return;
    const size_t plane = (size_t)aw * ah, tplane = (size_t)tw * th;
    const size_t a = (size_t)gy * aw + gx, t = (size_t)y * tw + x;
#pragma unroll
    for (int k = 0; k < 3; ++k) acc[k * plane + a] = acc[k * plane + a] + w * E::load(tile, k * tplane + t);
}

extern "C" __global__ void blend_tile_f32(const float* tile, int tw, int th, float* acc, int aw, int ah, int ox,
                                          int oy, AxisRamp rx, AxisRamp ry) {
    blend_tile<F32>(tile, tw, th, acc, aw, ah, ox, oy, rx, ry);
}

extern "C" __global__ void blend_tile_f16(const unsigned short* tile, int tw, int th, float* acc, int aw, int ah,
                                          int ox, int oy, AxisRamp rx, AxisRamp ry) {
    blend_tile<F16>(tile, tw, th, acc, aw, ah, ox, oy, rx, ry);
}
