// The data movement of a lowered program (src/native/program.rs) around the Hopper convolutions of conv_sm90.cu:
// the model input into the first convolution's layout, nearest upsampling, edge padding, a UNet's space to depth and
// depth to space (adding its skip connection), and the depth to space or crop that writes the model output. Plain
// loads and stores on any GPU; each is a small share of a frame's time next to the convolutions
// (docs/PERFORMANCE.md).

#include "fp16.cuh"

// The model input, planar fp16 [n][3][h][w], as the first convolution reads it: NHWC fp16 [n][rh][rw][32], channels
// 3-31 zero (one 32-channel chunk), at the program's run size rh x rw (h x w rounded up to its size class) with the
// last row and column repeated. One thread per pixel of the run size.
extern "C" __global__ void planar_to_nhwc32(const half_t* __restrict__ in, half_t* __restrict__ out, int n, int h,
                                            int w, int rh, int rw) {
    const long long plane = (long long)h * w, run_plane = (long long)rh * rw;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n * run_plane) return;
    const long long img = p / run_plane, at = p - img * run_plane;
    const int y = min((int)(at / rw), h - 1), x = min((int)(at % rw), w - 1);
    const half_t* src = in + img * 3 * plane + (long long)y * w + x;
    const unsigned rg = (unsigned)src[0] | ((unsigned)src[plane] << 16);
    uint4* dst = (uint4*)(out + p * 32);
    dst[0] = make_uint4(rg, (unsigned)src[2 * plane], 0, 0);
    dst[1] = make_uint4(0, 0, 0, 0);
    dst[2] = make_uint4(0, 0, 0, 0);
    dst[3] = make_uint4(0, 0, 0, 0);
}

// Nearest-neighbour upsampling by `factor` of an NHWC fp16 slice (`channels` a multiple of 8) into another: output
// pixel (x, y) is input pixel (x / factor, y / factor). One thread per output pixel and 8 channels.
extern "C" __global__ void nearest_nhwc(const half_t* __restrict__ in, int in_stride, half_t* __restrict__ out,
                                        int out_stride, int channels, int n, int h, int w, int factor) {
    const int groups = channels / 8;
    const int oh = h * factor, ow = w * factor;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * oh * ow * groups) return;
    const int g = (int)(i % groups);
    const long long p = i / groups;
    const int x = (int)(p % ow);
    const long long rest = p / ow;
    const int y = (int)(rest % oh), img = (int)(rest / oh);
    const long long src = ((long long)img * h + y / factor) * w + x / factor;
    *(uint4*)(out + p * out_stride + g * 8) = *(const uint4*)(in + src * in_stride + g * 8);
}

// Edge padding of an NHWC fp16 slice (`channels` a multiple of 8) of images h x w into one `pad` pixels larger on
// each side: output pixel (x, y) is input pixel (clamp(x - pad), clamp(y - pad)). One thread per output pixel and 8
// channels.
extern "C" __global__ void edge_pad_nhwc(const half_t* __restrict__ in, int in_stride, half_t* __restrict__ out,
                                         int out_stride, int channels, int n, int h, int w, int pad) {
    const int groups = channels / 8;
    const int oh = h + 2 * pad, ow = w + 2 * pad;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * oh * ow * groups) return;
    const int g = (int)(i % groups);
    const long long p = i / groups;
    const int x = (int)(p % ow);
    const long long rest = p / ow;
    const int y = (int)(rest % oh), img = (int)(rest / oh);
    const int sx = min(max(x - pad, 0), w - 1), sy = min(max(y - pad, 0), h - 1);
    const long long src = ((long long)img * h + sy) * w + sx;
    *(uint4*)(out + p * out_stride + g * 8) = *(const uint4*)(in + src * in_stride + g * 8);
}

// A residual of a depth to space: NHWC slice `at` (`stride` channels per pixel) of images rh x rw, read `offset`
// pixels further along both axes than the output pixel it is added to, times `beta`; `at == 0`: none.
struct ShuffleResidual {
    const half_t* at;
    int stride, offset, rh, rw;
    float beta;
};

// Value `c` of output pixel (x, y) of image `img` plus the residual's: the sum in fp32, rounded once.
__device__ __forceinline__ half_t with_residual(half_t v, const ShuffleResidual& r, long long img, int x, int y,
                                                int c) {
    if (!r.at) return v;
    const long long at = ((img * r.rh + y + r.offset) * r.rw + x + r.offset) * r.stride + c;
    return f2h(h2f(v) + r.beta * h2f(r.at[at]));
}

// Depth to space into planes (the model output): output pixel (x, y), channel c of planar fp16 [n][channels][oh][ow]
// is input pixel (offset + x / factor, offset + y / factor), channel ((y % factor) * factor + x % factor) *
// channels + c of an NHWC slice of images h x w, plus the residual. oh x ow may be less than the input gives (the
// crop of an image run at its size class). One thread per output pixel; neighbouring threads write neighbouring
// pixels of each plane.
extern "C" __global__ void depth_to_planes(const half_t* __restrict__ in, int in_stride, half_t* __restrict__ out,
                                           int channels, int n, int h, int w, int factor, int offset, int oh, int ow,
                                           ShuffleResidual residual) {
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long plane = (long long)oh * ow;
    if (p >= n * plane) return;
    const long long img = p / plane, at = p - img * plane;
    const int y = (int)(at / ow), x = (int)(at - (long long)y * ow);
    const long long src = (img * h + offset + y / factor) * w + offset + x / factor;
    const half_t* from = in + src * in_stride + ((y % factor) * factor + x % factor) * channels;
    half_t* to = out + img * channels * plane + at;
    for (int c = 0; c < channels; ++c) to[c * plane] = with_residual(from[c], residual, img, x, y, c);
}

// Depth to space between NHWC slices (a UNet's upsampling, in its skip connection's layout): output pixel
// (shift + factor * x + rx, shift + factor * y + ry), channel c is input pixel (offset + x, offset + y), channel
// (ry * factor + rx) * channels + c, plus the residual at that output pixel, for the pixels inside the output's
// oh x ow; the `shift` pixels around are left as they are. Channels are written 8 at a time: past `channels` (3, of
// a 12-channel phase output) with zeros. One thread per output pixel and 8 channels.
extern "C" __global__ void depth_to_space_nhwc(const half_t* __restrict__ in, int in_stride, half_t* __restrict__ out,
                                               int out_stride, int channels, int n, int h, int w, int factor,
                                               int offset, int shift, int oh, int ow, ShuffleResidual residual) {
    const int groups = (channels + 7) / 8;
    const int sh = min(factor * (h - 2 * offset), oh - shift), sw = min(factor * (w - 2 * offset), ow - shift);
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (sh <= 0 || sw <= 0 || i >= (long long)n * sh * sw * groups) return;
    const int g = (int)(i % groups);
    const long long p = i / groups;
    const int x = (int)(p % sw);
    const long long rest = p / sw;
    const int y = (int)(rest % sh), img = (int)(rest / sh);
    const long long src = ((long long)img * h + offset + y / factor) * w + offset + x / factor;
    const half_t* from = in + src * in_stride + ((y % factor) * factor + x % factor) * channels + g * 8;
    const int tx = shift + x, ty = shift + y;
    union {
        uint4 bits;
        half_t h[8];
    } v;
    if (channels % 8 == 0) {
        v.bits = *(const uint4*)from;
        if (residual.at) {
            const long long r = ((img * residual.rh + ty + residual.offset) * residual.rw + tx + residual.offset) *
                                    residual.stride + g * 8;
            union {
                uint4 bits;
                half_t h[8];
            } add;
            add.bits = *(const uint4*)(residual.at + r);
            for (int k = 0; k < 8; ++k) v.h[k] = f2h(h2f(v.h[k]) + residual.beta * h2f(add.h[k]));
        }
    } else {
        for (int k = 0; k < 8; ++k) {
            const int c = g * 8 + k;
            v.h[k] = c < channels ? with_residual(from[k], residual, img, tx, ty, c) : (half_t)0;
        }
    }
    *(uint4*)(out + (((long long)img * oh + ty) * ow + tx) * out_stride + g * 8) = v.bits;
}

// Space to depth by 2 between NHWC slices (a 2x2 stride-2 convolution's input): output pixel (x, y), channel
// (dy * 2 + dx) * channels + c is input pixel (offset + 2x + dx, offset + 2y + dy), channel c, for the oh x ow output
// pixels. One thread per output pixel, phase and 8 channels.
extern "C" __global__ void space_to_depth_nhwc(const half_t* __restrict__ in, int in_stride, half_t* __restrict__ out,
                                               int out_stride, int channels, int n, int h, int w, int offset, int oh,
                                               int ow) {
    const int groups = channels / 8;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * oh * ow * 4 * groups) return;
    const int g = (int)(i % groups);
    const int d = (int)((i / groups) % 4);
    const long long p = i / (4 * groups);
    const int x = (int)(p % ow);
    const long long rest = p / ow;
    const int y = (int)(rest % oh), img = (int)(rest / oh);
    const long long src = ((long long)img * h + offset + 2 * y + d / 2) * w + offset + 2 * x + d % 2;
    *(uint4*)(out + p * out_stride + d * channels + g * 8) = *(const uint4*)(in + src * in_stride + g * 8);
}
