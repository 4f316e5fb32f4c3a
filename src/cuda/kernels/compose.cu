// The output frame in one pass (compose.rs): the model's output (resampled when the output is smaller), blended with
// the classic image of the input by the AI strength, stabilised against the history, clamped, converted to NV12.
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal compose.rs bit for bit)
// Each thread writes one chroma sample and its 2x2 luma block, visiting the block's pixels row by row as
// cpu::write_nv12 does.
#include "common.cuh"
#include "resample.cuh"

// compose.rs's inputs for one frame (the Rust side's #[repr(C)] ComposeArgs). Absent planes are 0.
struct ComposeArgs {
    unsigned long long model;      // planar [3][model_h][model_w] of E (0: classic only)
    unsigned long long input_rgb;  // planar f32 [3][in_h][in_w]: the input's RGB (read when strength_classic != 0)
    unsigned long long mask;       // f32 [in_h][in_w] (0: no temporal stabilisation)
    unsigned long long history;    // f32 [3][out_h][out_w], read and written with the mask
    unsigned long long y_plane;
    unsigned long long uv_plane;
    Axis shrink_x, shrink_y;    // model output -> output (taps 0: the same size)
    Axis classic_x, classic_y;  // input -> output
    Affine3x4 rgb_to_yuv;
    float strength_model, strength_classic, alpha;
    int model_w, model_h, in_w, in_h, out_w, out_h, y_pitch, uv_pitch;
};

// Strength::blend.
__device__ __forceinline__ float blend(const ComposeArgs& a, float model, float classic) {
    if (a.strength_model == 1.0f) return model;
    if (a.strength_model == 0.0f) return classic;
    return a.strength_model * model + a.strength_classic * classic;
}

// temporal::input_index.
__device__ __forceinline__ size_t input_index(int x, int y, const ComposeArgs& a) {
    const unsigned long long ix = (2ull * x + 1) * (unsigned long long)a.in_w / (2ull * a.out_w);
    const unsigned long long iy = (2ull * y + 1) * (unsigned long long)a.in_h / (2ull * a.out_h);
    return (size_t)iy * a.in_w + ix;
}

// One output pixel's RGB, clamped, stabilised (the history updated).
template <typename E>
__device__ __forceinline__ void pixel(const ComposeArgs& a, int x, int y, float rgb[3]) {
    const size_t plane = (size_t)a.out_w * a.out_h, i = (size_t)y * a.out_w + x;
    const typename E::T* model = (const typename E::T*)a.model;
    const float* input_rgb = (const float*)a.input_rgb;
    const size_t model_plane = (size_t)a.model_w * a.model_h, in_plane = (size_t)a.in_w * a.in_h;
#pragma unroll
    for (int k = 0; k < 3; ++k) {
        float m = 0.0f, c = 0.0f;
        if (a.strength_model != 0.0f) {
            m = a.shrink_x.taps == 0 ? E::load(model, k * plane + i)
                                     : resample_at<E>(model + k * model_plane, a.model_w, a.shrink_x, a.shrink_y, x, y);
        }
        if (a.strength_model != 1.0f) {
            c = resample_at<F32>(input_rgb + k * in_plane, a.in_w, a.classic_x, a.classic_y, x, y);
        }
        rgb[k] = clamp01(blend(a, clamp01(m), clamp01(c)));
    }
    if (a.mask != 0) {
        float* history = (float*)a.history;
        const float weight = a.alpha * ((const float*)a.mask)[input_index(x, y, a)];
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            const float h = history[k * plane + i];
            rgb[k] = clamp01(rgb[k] + weight * (h - rgb[k]));
            history[k * plane + i] = rgb[k];
        }
    }
}

template <typename E>
__device__ void compose_nv12(const ComposeArgs& a) {
    const int cx = blockIdx.x * blockDim.x + threadIdx.x;
    const int cy = blockIdx.y * blockDim.y + threadIdx.y;
    if (cx >= (a.out_w + 1) >> 1 || cy >= (a.out_h + 1) >> 1) return;
    unsigned char* y_plane = (unsigned char*)a.y_plane;
    float sum[3] = {0.0f, 0.0f, 0.0f};
    int n = 0;
    for (int y = 2 * cy; y < min(2 * cy + 2, a.out_h); ++y) {
        for (int x = 2 * cx; x < min(2 * cx + 2, a.out_w); ++x) {
            float rgb[3];
            pixel<E>(a, x, y, rgb);
            float yuv[3];
            apply(a.rgb_to_yuv, rgb[0], rgb[1], rgb[2], yuv);
            y_plane[(size_t)y * a.y_pitch + x] = quantise(yuv[0]);
            sum[0] += rgb[0];
            sum[1] += rgb[1];
            sum[2] += rgb[2];
            ++n;
        }
    }
    const float inv = 1.0f / (float)n;
    float yuv[3];
    apply(a.rgb_to_yuv, sum[0] * inv, sum[1] * inv, sum[2] * inv, yuv);
    unsigned char* row = (unsigned char*)a.uv_plane + (size_t)cy * a.uv_pitch;
    row[2 * cx] = quantise(yuv[1]);
    row[2 * cx + 1] = quantise(yuv[2]);
}

extern "C" __global__ void compose_nv12_f32(ComposeArgs a) { compose_nv12<F32>(a); }

extern "C" __global__ void compose_nv12_f16(ComposeArgs a) { compose_nv12<F16>(a); }
