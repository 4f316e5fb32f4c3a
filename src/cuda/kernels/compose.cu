// The output frame in one pass (compose.rs): the model's output (resampled when the output is smaller), blended with
// the classic image of the input by the AI strength, stabilised against the history, clamped, converted to the
// three components of a frame of any format (FormatLayout; a fourth sample is fill_extra.cu's).
// nvrtc: fmad=false
// (no contraction of multiplies and adds: the results equal compose.rs bit for bit)
// Each thread writes one block (2x2 pixels and their chroma with a subsampled chroma plane, else one pixel), visiting
// the block's pixels row by row as cpu::write_frame does.
#include "common.cuh"
#include "resample.cuh"

// compose.rs's inputs for one frame (the Rust side's #[repr(C)] ComposeArgs). Absent planes are 0.
struct ComposeArgs {
    unsigned long long model;      // planar [3][model_h][model_w] of E (0: classic only)
    unsigned long long input_rgb;  // planar f32 [3][in_h][in_w]: the input's RGB (read when strength_classic != 0)
    unsigned long long mask;       // f32 [in_h][in_w] (0: no temporal stabilisation)
    unsigned long long history;    // f32 [3][out_h][out_w], read and written with the mask
    unsigned long long plane0;
    unsigned long long plane1;
    Axis shrink_x, shrink_y;    // model output -> output (taps 0: the same size)
    Axis classic_x, classic_y;  // input -> output
    Affine3x4 from_rgb;  // RGB -> the output's code values
    FormatLayout fmt;    // the output's format
    float strength_model, strength_classic, alpha;
    int model_w, model_h, in_w, in_h, out_w, out_h, pitch0, pitch1;
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
__device__ void compose_frame(const ComposeArgs& a) {
    const FormatLayout& fmt = a.fmt;
    const int block = fmt.step[1] > 0 ? 2 : 1;
    const int bx = blockIdx.x * blockDim.x + threadIdx.x;
    const int by = blockIdx.y * blockDim.y + threadIdx.y;
    if (bx >= (a.out_w + block - 1) / block || by >= (a.out_h + block - 1) / block) return;
    float sum[3] = {0.0f, 0.0f, 0.0f};
    int n = 0;
    for (int y = block * by; y < min(block * by + block, a.out_h); ++y) {
        unsigned char* row = (unsigned char*)a.plane0 + (size_t)y * a.pitch0;
        for (int x = block * bx; x < min(block * bx + block, a.out_w); ++x) {
            float rgb[3];
            pixel<E>(a, x, y, rgb);
            float code[3];
            apply(a.from_rgb, rgb[0], rgb[1], rgb[2], code);
#pragma unroll
            for (int k = 0; k < 3; ++k) {
                if (fmt.plane[k] == 0)
                    store_sample(row, x * fmt.step[0] + fmt.offset[k], quantise(code[k], fmt.max_code), fmt);
            }
            sum[0] += rgb[0];
            sum[1] += rgb[1];
            sum[2] += rgb[2];
            ++n;
        }
    }
    if (block == 2) {
        const float inv = 1.0f / (float)n;
        float code[3];
        apply(a.from_rgb, sum[0] * inv, sum[1] * inv, sum[2] * inv, code);
        unsigned char* row = (unsigned char*)a.plane1 + (size_t)by * a.pitch1;
#pragma unroll
        for (int k = 0; k < 3; ++k) {
            if (fmt.plane[k] == 1)
                store_sample(row, bx * fmt.step[1] + fmt.offset[k], quantise(code[k], fmt.max_code), fmt);
        }
    }
}

extern "C" __global__ void compose_frame_f32(ComposeArgs a) { compose_frame<F32>(a); }

extern "C" __global__ void compose_frame_f16(ComposeArgs a) { compose_frame<F16>(a); }
