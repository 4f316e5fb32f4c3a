// Squeeze and excitation (Real-CUGAN) over an NHWC fp16 slice, in three launches: per-band channel sums of the
// image less an inset, the gate of each image (the mean, two small fully connected layers, relu and sigmoid) and the
// channel scale. Sums in fp32, in a fixed order: a run's result does not depend on scheduling.

#include "fp16.cuh"

// Threads of a block of squeeze_sums and excite_gate.
#define SE_THREADS 256

// Channel sums of band `blockIdx.x` (rows inset + band * band_rows ... of image blockIdx.y, less `inset` pixels on
// each side) into partial[img][band][channels]. Threads: channel pairs x lanes (SE_THREADS / (channels / 2) lanes,
// channels even and at most 2 * SE_THREADS); each lane sums every lanes-th pixel of the band's rows.
extern "C" __global__ void squeeze_sums(const half_t* __restrict__ in, int in_stride, float* __restrict__ partial,
                                        int channels, int h, int w, int inset, int band_rows) {
    __shared__ float sums[SE_THREADS][2];
    const int pairs = channels / 2, lanes = SE_THREADS / pairs;
    const int pair = threadIdx.x % pairs, lane = threadIdx.x / pairs;
    const int band = blockIdx.x, bands = gridDim.x, img = blockIdx.y;
    const int y0 = inset + band * band_rows, y1 = min(y0 + band_rows, h - inset);
    float a = 0.0f, b = 0.0f;
    if (lane < lanes) {
        for (int y = y0; y < y1; ++y) {
            const half_t* row = in + ((long long)img * h + y) * w * in_stride + 2 * pair;
#pragma unroll 4
            for (int x = inset + lane; x < w - inset; x += lanes) {
                const unsigned two = *(const unsigned*)(row + (long long)x * in_stride);
                a += h2f((half_t)(two & 0xffff));
                b += h2f((half_t)(two >> 16));
            }
        }
    }
    sums[threadIdx.x][0] = a;
    sums[threadIdx.x][1] = b;
    __syncthreads();
    if (lane == 0) {
        for (int l = 1; l < lanes; ++l) {
            a += sums[l * pairs + pair][0];
            b += sums[l * pairs + pair][1];
        }
        float* out = partial + ((long long)img * bands + band) * channels + 2 * pair;
        out[0] = a;
        out[1] = b;
    }
}

// The gate of image blockIdx.x: gate[img][c] = sigmoid(expand[c] . relu(reduce . mean + reduce_bias) + expand_bias[c]),
// mean the `bands` partial sums over `count` pixels. `weights`: reduce [hidden][channels], reduce_bias [hidden],
// expand [channels][hidden], expand_bias [channels] (channels and hidden at most SE_THREADS).
extern "C" __global__ void excite_gate(const float* __restrict__ partial, int bands, float count,
                                       const float* __restrict__ weights, int channels, int hidden,
                                       float* __restrict__ gate) {
    __shared__ float mean[SE_THREADS], inner[SE_THREADS];
    const int t = threadIdx.x, img = blockIdx.x;
    const float* reduce = weights;
    const float* reduce_bias = reduce + hidden * channels;
    const float* expand = reduce_bias + hidden;
    const float* expand_bias = expand + channels * hidden;
    if (t < channels) {
        float s = 0.0f;
        for (int b = 0; b < bands; ++b) s += partial[((long long)img * bands + b) * channels + t];
        mean[t] = s / count;
    }
    __syncthreads();
    if (t < hidden) {
        float v = reduce_bias[t];
        for (int c = 0; c < channels; ++c) v += reduce[t * channels + c] * mean[c];
        inner[t] = fmaxf(v, 0.0f);
    }
    __syncthreads();
    if (t < channels) {
        float v = expand_bias[t];
        for (int k = 0; k < hidden; ++k) v += expand[t * hidden + k] * inner[k];
        gate[img * channels + t] = 1.0f / (1.0f + expf(-v));
    }
}

// out = in * gate[img][c] between NHWC slices of images h x w (channels a multiple of 8), rounded once. One thread
// per pixel and 8 channels.
extern "C" __global__ void channel_scale_nhwc(const half_t* __restrict__ in, int in_stride, half_t* __restrict__ out,
                                              int out_stride, int channels, int n, int h, int w,
                                              const float* __restrict__ gate) {
    const int groups = channels / 8;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * h * w * groups) return;
    const int g = (int)(i % groups);
    const long long p = i / groups;
    const int img = (int)(p / ((long long)h * w));
    union {
        uint4 bits;
        half_t h[8];
    } v;
    v.bits = *(const uint4*)(in + p * in_stride + g * 8);
    const float* scale = gate + img * channels + g * 8;
    for (int k = 0; k < 8; ++k) v.h[k] = f2h(h2f(v.h[k]) * scale[k]);
    *(uint4*)(out + p * out_stride + g * 8) = v.bits;
}
