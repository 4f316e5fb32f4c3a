// The fourth sample of each pixel of an output frame (alpha or padding, plane 0): the input frame's alpha upscaled
// bilinearly with centred sampling when both formats carry alpha (the model sees only RGB), opaque otherwise.
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal cpu.rs bit for bit)
// One thread per output pixel; nothing else writes these samples, so it may run before or after planar_to_frame.
#include "common.cuh"

// cpu.rs: bilinear_taps.
__device__ __forceinline__ void bilinear_taps(int o, int scale, int len, int& i0, int& i1, float& t) {
    const float s = fmaxf(((float)o + 0.5f) / (float)scale - 0.5f, 0.0f);
    const float fl = floorf(s);
    i0 = min((int)fl, len - 1);
    i1 = min(i0 + 1, len - 1);
    t = s - fl;
}

extern "C" __global__ void fill_extra(const unsigned char* src, int src_pitch, int src_w, int src_h,
                                      FormatLayout src_fmt, int scale, unsigned char* dst, int dst_pitch, int dst_w,
                                      int dst_h, FormatLayout dst_fmt, int upscale_alpha) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    unsigned char* row = dst + (size_t)y * dst_pitch;
    const int out = x * dst_fmt.step[0] + dst_fmt.extra;
    if (!upscale_alpha) {
        store_sample(row, out, (unsigned int)dst_fmt.max_code, dst_fmt);
        return;
    }
    int x0, x1, y0, y1;
    float tx, ty;
    bilinear_taps(x, scale, src_w, x0, x1, tx);
    bilinear_taps(y, scale, src_h, y0, y1, ty);
    const unsigned char* r0 = src + (size_t)y0 * src_pitch;
    const unsigned char* r1 = src + (size_t)y1 * src_pitch;
    const int s0 = x0 * src_fmt.step[0] + src_fmt.extra, s1 = x1 * src_fmt.step[0] + src_fmt.extra;
    const float top = (1.0f - tx) * load_sample(r0, s0, src_fmt) + tx * load_sample(r0, s1, src_fmt);
    const float bottom = (1.0f - tx) * load_sample(r1, s0, src_fmt) + tx * load_sample(r1, s1, src_fmt);
    const float a = (1.0f - ty) * top + ty * bottom;
    store_sample(row, out, quantise(a, dst_fmt.max_code), dst_fmt);
}
