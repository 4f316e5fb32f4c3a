// Squeeze and excitation (Real-CUGAN) over an NHWC fp16 slice, in three launches: per-band channel sums of the
// image less an inset, the gate of each image (the mean, two small fully connected layers, relu and sigmoid) and the
// channel scale. Sums in fp32, in a fixed order: a run's result does not depend on scheduling.

#include "fp16.cuh"

// Threads of a block of squeeze_sums, and of excite_gate.
#define SUM_THREADS 256
#define GATE_THREADS 1024
// Pixels of a segment's row each lane of squeeze_sums adds.
#define LANE_PIXELS 8

// Channel sums of one tile of image blockIdx.z (the image less `inset` pixels on each side, cut into bands of
// `band_rows` rows and segments of lanes * LANE_PIXELS columns) into partial[img][band * gridDim.x + segment]
// [channels]. Threads: channel pairs x lanes (SUM_THREADS / (channels / 2) lanes; channels even, at most 2 *
// SUM_THREADS); lane l adds pixels l, l + lanes, ... of the segment's rows, the lanes are added in order.
extern "C" __global__ void squeeze_sums(const half_t* __restrict__ in, int in_stride, float* __restrict__ partial,
                                        int channels, int h, int w, int inset, int band_rows) {
    __shared__ float sums[SUM_THREADS][2];
    const int pairs = channels / 2, lanes = SUM_THREADS / pairs;
    const int pair = threadIdx.x % pairs, lane = threadIdx.x / pairs;
    const int segment = blockIdx.x, band = blockIdx.y, img = blockIdx.z;
    const int y0 = inset + band * band_rows, y1 = min(y0 + band_rows, h - inset);
    const int x0 = inset + segment * lanes * LANE_PIXELS, x1 = min(x0 + lanes * LANE_PIXELS, w - inset);
    float a = 0.0f, b = 0.0f;
    if (lane < lanes) {
        for (int y = y0; y < y1; ++y) {
            const half_t* row = in + ((long long)img * h + y) * w * in_stride + 2 * pair;
#pragma unroll
            for (int k = 0; k < LANE_PIXELS; ++k) {
                const int x = x0 + lane + k * lanes;
                if (x < x1) {
                    const unsigned two = *(const unsigned*)(row + (long long)x * in_stride);
                    a += h2f((half_t)(two & 0xffff));
                    b += h2f((half_t)(two >> 16));
                }
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
        const long long tile = (long long)blockIdx.y * gridDim.x + blockIdx.x;
        float* out = partial + ((long long)img * gridDim.x * gridDim.y + tile) * channels + 2 * pair;
        out[0] = a;
        out[1] = b;
    }
}

// The gate of image blockIdx.x: gate[img][c] = sigmoid(expand[c] . relu(reduce . mean + reduce_bias) + expand_bias[c]),
// mean the `tiles` partial sums over `count` pixels (thread t adds tiles t / channels, + GATE_THREADS / channels, ...
// of channel t % channels; the parts are added in order). `weights`: reduce [hidden][channels], reduce_bias [hidden],
// expand [channels][hidden], expand_bias [channels] (channels and hidden at most GATE_THREADS).
extern "C" __global__ void excite_gate(const float* __restrict__ partial, int tiles, float count,
                                       const float* __restrict__ weights, int channels, int hidden,
                                       float* __restrict__ gate) {
    __shared__ float sums[GATE_THREADS], inner[GATE_THREADS];
    const int t = threadIdx.x, img = blockIdx.x;
    const int parts = GATE_THREADS / channels, c = t % channels, part = t / channels;
    const float* reduce = weights;
    const float* reduce_bias = reduce + hidden * channels;
    const float* expand = reduce_bias + hidden;
    const float* expand_bias = expand + channels * hidden;
    float s = 0.0f;
    if (part < parts) {
        for (int i = part; i < tiles; i += parts) s += partial[((long long)img * tiles + i) * channels + c];
    }
    sums[t] = s;
    __syncthreads();
    if (t < channels) {
        float total = 0.0f;
        for (int p = 0; p < parts; ++p) total += sums[p * channels + t];
        sums[t] = total / count;  // the mean; only thread t reads and writes slot t here
    }
    __syncthreads();
    if (t < hidden) {
        float v = reduce_bias[t];
        for (int k = 0; k < channels; ++k) v += reduce[t * channels + k] * sums[k];
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
