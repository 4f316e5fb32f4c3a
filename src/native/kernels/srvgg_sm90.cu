// SRVGGNetCompact's 3x3 convolutions over 64 input channels on Hopper (sm_90a): warpgroup MMA (wgmma) with both
// operands in shared memory, input tiles brought in by the tensor memory accelerator (TMA) two stages deep on
// mbarriers, persistent CTAs; bias + PReLU (hidden layers) or bias + pixel shuffle + residual (last layer) in the
// epilogue. Compiled by NVRTC for compute_90a; the mma.sync kernels of srvgg.cu serve other GPUs.
//
// Each convolution is an implicit GEMM per output tile of ROWS x COLS pixels: D[64 out][COLS px] = sum over 9 taps
// and 4 k-steps of 16 input channels of W[tap][64 out][16 in] x X[16 in][COLS px shifted by the tap]. A (the weights,
// output channels padded to 64) stays in shared memory for the whole kernel, in the canonical no-swizzle K-major
// layout. B is a window of the halo tile, which TMA writes as NHWC rows of 128 bytes (64 fp16 channels) with the
// 128-byte swizzle; a tap's window starts at any pixel row: the swizzle is a function of the shared-memory address
// (the descriptors' base offset stays 0: measured, docs/PERFORMANCE.md attempt 11), so shifted windows read right.
//
// Warp roles: warpgroups 0 and 1 consume, warpgroup 2 produces (one lane issues the TMA copies); the producer gives
// its registers to the consumers (setmaxnreg), which hold a 64-value accumulator set. Consumer warpgroup k computes row k of every tile; results leave through a per-warpgroup staging buffer
// in shared memory so that global stores are contiguous.
//
// No CUDA headers: NVRTC compiles this as is (build.rs inlines the local include), for the arch-specific target
// (wgmma, setmaxnreg):
// nvrtc: arch=compute_90a
// Contraction stays on for the convolutions; the fused output conversion (FrameEpilogue, frame_out.cuh) uses
// common.cuh's arithmetic, written with explicitly rounded intrinsics, so it equals planar_to_frame.cu (fmad=false)
// bit for bit.
#include "frame_out.cuh"
#include "sm90.cuh"

// Shape of one convolution launch (input size = output size before any pixel shuffle).
struct Sm90Shape {
    int n, h, w;   // batch and input size
    int tiles_x;   // ceil(w / COLS)
    int strips;    // ceil(h / ROWS)
    int tiles;     // n * strips * tiles_x
};

#define COLS 128
#define ROWS 2
#define HALO_W (COLS + 2)
#define HALO_H (ROWS + 2)
#define PIXEL_BYTES 128                                // 64 fp16 channels
#define STAGE_BYTES (HALO_W * HALO_H * PIXEL_BYTES)    // 66560 = 65 KiB, a multiple of the 1 KiB swizzle atom
#define STAGES 2
#define KSTEP_BYTES 2048                               // A of one k-step: 64 rows x 16 channels
#define WEIGHT_BYTES (9 * 4 * KSTEP_BYTES)             // 73728
#define EPI_PIXELS 64                                  // pixels staged per epilogue pass
#define EPI_ROW_BYTES 144                              // last layer: a staged channel row of 64 px, padded
#define EPI_BYTES (64 * EPI_ROW_BYTES)                 // per consumer warpgroup (hidden layers use 8 KiB of it)
#define CONSUMERS 2
#define THREADS ((CONSUMERS + 1) * 128)
#define OFF_WEIGHTS (STAGES * STAGE_BYTES)
#define OFF_EPI (OFF_WEIGHTS + WEIGHT_BYTES)
#define OFF_BARRIERS (OFF_EPI + CONSUMERS * EPI_BYTES)
#define SMEM_BYTES (OFF_BARRIERS + 4 * 8 + 1024)       // + room to align the base to 1 KiB

// The 36 MMAs of output row `row` of the tile in `stage` (halo rows row..row+2). Descriptor addresses are in 16-byte
// units in the low 14 bits, so offsets are added to the descriptors directly.
__device__ __forceinline__ void conv_row(float d[64], unsigned w_base, unsigned stage, int row) {
    const unsigned long long a0 = opaque(make_desc(w_base, 1024, 128, 0));
    const unsigned long long b0 = opaque(make_desc(stage + row * HALO_W * PIXEL_BYTES, 16, 1024, 1));
#pragma unroll
    for (int tap = 0; tap < 9; ++tap) {
        const int ky = tap / 3, kx = tap % 3;
#pragma unroll
        for (int kc = 0; kc < 4; ++kc) {
            const unsigned long long a = a0 + (unsigned)((tap * 4 + kc) * KSTEP_BYTES >> 4);
            const unsigned long long b = b0 + (unsigned)(((ky * HALO_W + kx) * PIXEL_BYTES + kc * 32) >> 4);
            wgmma_m64n128k16(d, a, b, tap | kc);
        }
    }
}

// What a consumer thread knows about itself and the tile row it stores.
struct Lane {
    int wq, lane, g, q, tid;  // warp in the warpgroup, lane, mma row group and column pair, thread in the warpgroup
    unsigned staging;         // this warpgroup's staging buffer
    int barrier;              // this warpgroup's named barrier
};

// D[ch][px]: d[4j + 2h + e] holds channel 16 wq + g + 8h, pixel 8j + 2q + e (the m64nNk16 accumulator layout).

// Hidden layers: bias, PReLU, NHWC fp16 [n, h, w, 64].
struct HiddenEpilogue {
    const float* bias;
    const float* slope;
    half_t* out;
    __device__ __forceinline__ void store(const float d[64], const Lane& l, const Sm90Shape& s, int img, int y,
                                          int xt) const {
        const int ch0 = 16 * l.wq + l.g, ch1 = ch0 + 8;
        const float b[2] = {bias[ch0], bias[ch1]}, sl[2] = {slope[ch0], slope[ch1]};
        half_t* row_out = out + ((size_t)img * s.h + y) * s.w * 64;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
#pragma unroll
            for (int jj = 0; jj < 8; jj += 2) {
                unsigned r4[4];
#pragma unroll
                for (int m = 0; m < 4; ++m) {
                    const int j = 8 * half + jj + (m >> 1), h = m & 1;
                    float v0 = d[4 * j + 2 * h] + b[h], v1 = d[4 * j + 2 * h + 1] + b[h];
                    v0 = v0 >= 0.0f ? v0 : v0 * sl[h];
                    v1 = v1 >= 0.0f ? v1 : v1 * sl[h];
                    r4[m] = pack2(v0, v1);
                }
                // transposed 8x8 blocks: lane gives row (pixel) lane & 7 of block lane >> 3; 16-byte chunks of a
                // pixel row are swizzled by the pixel so that the 8 rows of a block hit distinct banks
                const int m = l.lane >> 3, px = 8 * (jj + (m >> 1)) + (l.lane & 7), c = 2 * l.wq + (m & 1);
                stmatrix_x4_trans(l.staging + px * PIXEL_BYTES + ((c ^ (px & 7)) << 4), r4[0], r4[1], r4[2], r4[3]);
            }
            named_barrier(l.barrier);
#pragma unroll
            for (int m = 0; m < EPI_PIXELS * 8 / 128; ++m) {
                const int idx = l.tid + 128 * m, px = idx >> 3, c = idx & 7;
                const int x = xt + EPI_PIXELS * half + px;
                if (x < s.w) {
                    uint4 v;
                    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];"
                                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                                 : "r"(l.staging + px * PIXEL_BYTES + ((c ^ (px & 7)) << 4)));
                    *(uint4*)(row_out + (size_t)x * 64 + c * 8) = v;
                }
            }
            named_barrier(l.barrier);
        }
    }
};

// The last layer's 64 output channels (bias added, rounded to fp16) of pixels 64 half .. 64 half + 63 of the tile
// row, staged as [channel][64 px] fp16 in rows padded to 144 bytes (the 8 rows of a block on distinct banks).
__device__ __forceinline__ void stage_channels(const float d[64], const float b[2], const Lane& l, int half) {
#pragma unroll
    for (int jj = 0; jj < 8; jj += 2) {
        unsigned r4[4];
#pragma unroll
        for (int m = 0; m < 4; ++m) {
            const int j = 8 * half + jj + (m >> 1), h = m & 1;
            r4[m] = pack2(d[4 * j + 2 * h] + b[h], d[4 * j + 2 * h + 1] + b[h]);
        }
        const int m = l.lane >> 3, ch = 16 * l.wq + 8 * (m & 1) + (l.lane & 7), px = 8 * (jj + (m >> 1));
        stmatrix_x4(l.staging + ch * EPI_ROW_BYTES + px * 2, r4[0], r4[1], r4[2], r4[3]);
    }
}

// Last layer: bias, pixel shuffle by R (DepthToSpace CRD: channel c R^2 + dy R + dx), plus the input image
// upsampled by R with nearest neighbour; planar fp16 [n, 3, R h, R w]. Output channels 3 R^2 .. 63 are padding.
template <int R>
struct ShuffleEpilogue {
    const float* bias;    // 64 values, the padding zero
    const half_t* image;  // the model input, planar fp16 [n, 3, h, w]
    half_t* out;
    __device__ __forceinline__ void store(const float d[64], const Lane& l, const Sm90Shape& s, int img, int y,
                                          int xt) const {
        constexpr int RR = R * R;
        const float b[2] = {bias[16 * l.wq + l.g], bias[16 * l.wq + l.g + 8]};
        const size_t oh = (size_t)s.h * R, ow = (size_t)s.w * R;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            stage_channels(d, b, l, half);
            named_barrier(l.barrier);
            // per item: one plane c, output row R y + dy, two input pixels p, p + 1 = 2 R consecutive outputs (one
            // 16-byte store for R = 4), the R staged channels c R^2 + dy R + dx read as pixel pairs
            const int x0 = xt + EPI_PIXELS * half;
            for (int item = l.tid; item < 3 * R * (EPI_PIXELS / 2); item += 128) {
                const int pair = item % (EPI_PIXELS / 2), rest = item / (EPI_PIXELS / 2), dy = rest % R, c = rest / R;
                const int p = 2 * pair, x = x0 + p;
                if (x >= s.w) continue;
                const half_t* im = image + (((size_t)img * 3 + c) * s.h + y) * s.w + x;
                const float res0 = h2f(im[0]), res1 = x + 1 < s.w ? h2f(im[1]) : 0.0f;
                float v[2 * R];
#pragma unroll
                for (int dx = 0; dx < R; ++dx) {
                    unsigned w2;
                    asm volatile("ld.shared.u32 %0, [%1];"
                                 : "=r"(w2)
                                 : "r"(l.staging + (c * RR + dy * R + dx) * EPI_ROW_BYTES + p * 2));
                    v[dx] = h2f((half_t)(w2 & 0xffff)) + res0;
                    v[R + dx] = h2f((half_t)(w2 >> 16)) + res1;
                }
                half_t* o = out + (((size_t)img * 3 + c) * oh + (size_t)y * R + dy) * ow + (size_t)x * R;
                if (x + 1 < s.w && (R % 2 == 0) && ((size_t)o & 3) == 0) {
                    // both pixels inside, an even count of outputs starting 4-byte aligned (16 for R = 4 when the
                    // output row starts 16-byte aligned)
                    unsigned packed[R];
#pragma unroll
                    for (int e = 0; e < R; ++e) packed[e] = pack2(v[2 * e], v[2 * e + 1]);
                    if (R == 4 && ((size_t)o & 15) == 0) {
                        *(uint4*)o = make_uint4(packed[0], packed[1], packed[2], packed[3]);
                    } else {
#pragma unroll
                        for (int e = 0; e < R; ++e) ((unsigned*)o)[e] = packed[e];
                    }
                } else {
                    const int n = x + 1 < s.w ? 2 * R : R;
#pragma unroll
                    for (int e = 0; e < 2 * R; ++e)
                        if (e < n) o[e] = f2h(v[e]);
                }
            }
            named_barrier(l.barrier);
        }
    }
};

// Last layer with the output conversion fused (frame_out.cuh): bias and pixel shuffle as ShuffleEpilogue<R>, then
// per input pixel its outputs with the residual, rounded to fp16 as the planar output would hold them and converted as
// planar_to_frame.cu converts them, written into an NV12 or P010 frame of R h x R w at the planes' pitches. One image
// (batch 1): the frame is the whole output.
template <int R, typename S>
struct FrameEpilogue {
    const float* bias;    // 64 values, the padding zero
    const half_t* image;  // the model input, planar fp16 [1, 3, h, w]
    unsigned char* luma;
    int luma_pitch;
    unsigned char* chroma;
    int chroma_pitch;
    Affine3x4 from_rgb;  // RGB 0..1 -> code values (color::rgb_to_code)
    __device__ __forceinline__ void store(const float d[64], const Lane& l, const Sm90Shape& s, int, int y,
                                          int xt) const {
        const float b[2] = {bias[16 * l.wq + l.g], bias[16 * l.wq + l.g + 8]};
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            stage_channels(d, b, l, half);
            named_barrier(l.barrier);
            // per item: one input pixel x and one chroma row of its outputs (output rows R y + 2 cy, + 1)
            const int x0 = xt + EPI_PIXELS * half;
            for (int item = l.tid; item < (R / 2) * EPI_PIXELS; item += 128) {
                const int p = item % EPI_PIXELS, cy = item / EPI_PIXELS, x = x0 + p;
                if (x >= s.w) continue;
                float res[3];
#pragma unroll
                for (int c = 0; c < 3; ++c) res[c] = h2f(image[((size_t)c * s.h + y) * s.w + x]);
                const auto staged = [&](int ch) {
                    half_t h;
                    asm volatile("ld.shared.u16 %0, [%1];" : "=h"(h) : "r"(l.staging + ch * EPI_ROW_BYTES + p * 2));
                    return h;
                };
                const size_t at = (size_t)R * x * sizeof(typename S::T);
                frame_pixel<R, S>(staged, res, from_rgb, cy, luma + (size_t)(R * y + 2 * cy) * luma_pitch + at,
                                  luma_pitch, chroma + (size_t)((R / 2) * y + cy) * chroma_pitch + at);
            }
            named_barrier(l.barrier);
        }
    }
};

// The convolution. `map`: the NHWC input as (64 channels, w, h, n), fp16, 128-byte swizzle, box 64 x HALO_W x
// HALO_H x 1 (out-of-bounds boxes read zeros: the padding). `weights`: the shared-memory image of A,
// [tap][k-step][k-half][row group][8 rows][8 channels] fp16 (WEIGHT_BYTES). Both consumer warpgroups read every
// stage, warpgroup k computing row k of its tile (measured faster than giving each warpgroup whole tiles with two
// accumulator sets: docs/PERFORMANCE.md attempt 12).
template <typename Epilogue>
__device__ __forceinline__ void conv3x3_sm90(const TensorMap* map, const half_t* __restrict__ weights,
                                             const Epilogue& epi, const Sm90Shape& s) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const unsigned raw = smem_u32(smem_raw);
    const unsigned base = (raw + 1023) & ~1023u;
    unsigned char* smem = smem_raw + (base - raw);
    const unsigned w_base = base + OFF_WEIGHTS;
    const unsigned full0 = base + OFF_BARRIERS, empty0 = full0 + 16;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    // weights into shared memory (generic stores read by the tensor cores: proxy fence before the barrier)
    {
        const uint4* src = (const uint4*)weights;
        uint4* dst = (uint4*)(smem + OFF_WEIGHTS);
        for (int i = threadIdx.x; i < WEIGHT_BYTES / 16; i += THREADS) dst[i] = src[i];
    }
    if (threadIdx.x == 0) {
        for (int st = 0; st < STAGES; ++st) {
            mbar_init(full0 + 8 * st, 1);
            mbar_init(empty0 + 8 * st, CONSUMERS * 128);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();

    const int per_image = s.strips * s.tiles_x;
    if (warp >= CONSUMERS * 4) {
        // producer: one lane keeps the stages filled, in tile order
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
        if (warp == CONSUMERS * 4 && lane == 0) {
            int i = 0;
            for (int t = blockIdx.x; t < s.tiles; t += gridDim.x, ++i) {
                const int st = i % STAGES;
                if (i >= STAGES) mbar_wait(empty0 + 8 * st, ((i / STAGES) - 1) & 1);
                const unsigned full = full0 + 8 * st;
                mbar_expect_tx(full, STAGE_BYTES);
                const int img = t / per_image, r = t - img * per_image;
                tma_load_4d(base + st * STAGE_BYTES, map, 0, (r % s.tiles_x) * COLS - 1, (r / s.tiles_x) * ROWS - 1,
                            img, full);
            }
        }
    } else {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
        const int k = warp >> 2;
        Lane l;
        l.wq = warp & 3;
        l.lane = lane;
        l.g = lane >> 2;
        l.q = lane & 3;
        l.tid = threadIdx.x & 127;
        l.staging = base + OFF_EPI + k * EPI_BYTES;
        l.barrier = 1 + k;
        float d[64];
        int i = 0;
        for (int t = blockIdx.x; t < s.tiles; t += gridDim.x, ++i) {
            const int st = i % STAGES;
            mbar_wait(full0 + 8 * st, (i / STAGES) & 1);
            wgmma_fence();
            conv_row(d, w_base, base + st * STAGE_BYTES, k);
            wgmma_commit();
            wgmma_wait<0>();
            mbar_arrive(empty0 + 8 * st);
            const int img = t / per_image, r = t - img * per_image;
            const int y = (r / s.tiles_x) * ROWS + k;
            if (y < s.h) epi.store(d, l, s, img, y, (r % s.tiles_x) * COLS);  // uniform in the warpgroup
        }
    }
}

extern "C" __global__ void __launch_bounds__(THREADS, 1)
    srvgg_hidden_sm90(const __grid_constant__ TensorMap map, const half_t* weights, const float* bias,
                      const float* slope, half_t* out, Sm90Shape s) {
    conv3x3_sm90(&map, weights, HiddenEpilogue{bias, slope, out}, s);
}

#define LAST_LAYER(R)                                                                                               \
    extern "C" __global__ void __launch_bounds__(THREADS, 1)                                                        \
        srvgg_last_sm90_r##R(const __grid_constant__ TensorMap map, const half_t* weights, const float* bias,       \
                             half_t* out, const half_t* image, Sm90Shape s) {                                       \
        conv3x3_sm90(&map, weights, ShuffleEpilogue<R>{bias, image, out}, s);                                      \
    }
LAST_LAYER(2)
LAST_LAYER(3)
LAST_LAYER(4)

// The last layer writing an NV12 or P010 frame (FrameEpilogue): `luma`, `chroma` the frame's planes with their row
// pitches in bytes, `from_rgb` the frame's RGB -> code map.
#define LAST_LAYER_FRAME(NAME, R, SAMPLES)                                                                          \
    extern "C" __global__ void __launch_bounds__(THREADS, 1) srvgg_last_sm90_##NAME(                                \
        const __grid_constant__ TensorMap map, const half_t* weights, const float* bias, const half_t* image,      \
        unsigned char* luma, int luma_pitch, unsigned char* chroma, int chroma_pitch, Affine3x4 from_rgb,          \
        Sm90Shape s) {                                                                                              \
        conv3x3_sm90(&map, weights,                                                                                 \
                     FrameEpilogue<R, SAMPLES>{bias, image, luma, luma_pitch, chroma, chroma_pitch, from_rgb}, s); \
    }
LAST_LAYER_FRAME(r2_nv12, 2, Nv12Samples)
LAST_LAYER_FRAME(r2_p010, 2, P010Samples)
LAST_LAYER_FRAME(r4_nv12, 4, Nv12Samples)
LAST_LAYER_FRAME(r4_p010, 4, P010Samples)
