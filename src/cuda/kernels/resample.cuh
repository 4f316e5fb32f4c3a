// Separable resampling with the weight tables of classic.rs (AxisFilter): each input row filtered horizontally,
// then the row sums vertically, in classic.rs's order, so that with --fmad=false the results equal the CPU path's
// bit for bit. Edge samples are clamped. No CUDA headers: NVRTC compiles this as is.
#pragma once

// One axis of a resampler (classic::AxisFilter): `start[i]` is the first input sample of output sample i, `weights`
// holds `taps` weights per output sample. Pointers travel as 64-bit integers (the Rust side's #[repr(C)] twin).
struct Axis {
    unsigned long long start;
    unsigned long long weights;
    int taps;
    int input;
};

// Sample (ox, oy) of one plane (`plane`, rows of `width` elements) resampled by `fx` and `fy`.
template <typename E>
__device__ __forceinline__ float resample_at(const typename E::T* __restrict__ plane, int width, const Axis& fx,
                                             const Axis& fy, int ox, int oy) {
    const int* xs = (const int*)fx.start;
    const float* xw = (const float*)fx.weights + (size_t)ox * fx.taps;
    const int* ys = (const int*)fy.start;
    const float* yw = (const float*)fy.weights + (size_t)oy * fy.taps;
    const int x0 = xs[ox], y0 = ys[oy];
    float sum = 0.0f;
    for (int j = 0; j < fy.taps; ++j) {
        const int y = min(max(y0 + j, 0), fy.input - 1);
        const typename E::T* row = plane + (size_t)y * width;
        float h = 0.0f;
        for (int k = 0; k < fx.taps; ++k) {
            const int x = min(max(x0 + k, 0), fx.input - 1);
            h = h + xw[k] * E::load(row, x);
        }
        sum = sum + yw[j] * h;
    }
    return sum;
}
