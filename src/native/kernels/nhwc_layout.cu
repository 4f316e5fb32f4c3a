// The data movement of a lowered program (src/native/program.rs) around the Hopper convolutions of conv_sm90.cu:
// the model input into the first convolution's layout, nearest upsampling, edge padding and the depth to space that
// writes the model output. Plain loads and stores on any GPU; each is a small share of a frame's time next to the
// convolutions (docs/PERFORMANCE.md).

typedef unsigned short half_t;

// The model input, planar fp16 [n][3][h][w], as the first convolution reads it: NHWC fp16 [n][h][w][32], channels
// 3-31 zero (one 32-channel chunk). One thread per pixel.
extern "C" __global__ void planar_to_nhwc32(const half_t* __restrict__ in, half_t* __restrict__ out, int n, int h,
                                            int w) {
    const long long plane = (long long)h * w;
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n * plane) return;
    const long long img = p / plane, at = p - img * plane;
    const half_t* src = in + img * 3 * plane + at;
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

// Depth to space into planes (the model output): output pixel (x, y), channel c of planar fp16 [n][channels][oh][ow]
// is input pixel (offset + x / factor, offset + y / factor), channel ((y % factor) * factor + x % factor) *
// channels + c of an NHWC slice of images h x w. One thread per output pixel; neighbouring threads write
// neighbouring pixels of each plane.
extern "C" __global__ void depth_to_planes(const half_t* __restrict__ in, int in_stride, half_t* __restrict__ out,
                                           int channels, int n, int h, int w, int factor, int offset, int oh, int ow) {
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long plane = (long long)oh * ow;
    if (p >= n * plane) return;
    const long long img = p / plane, at = p - img * plane;
    const int y = (int)(at / ow), x = (int)(at - (long long)y * ow);
    const long long src = (img * h + offset + y / factor) * w + offset + x / factor;
    const half_t* from = in + src * in_stride + ((y % factor) * factor + x % factor) * channels;
    half_t* to = out + img * channels * plane + at;
    for (int c = 0; c < channels; ++c) to[c * plane] = from[c];
}
