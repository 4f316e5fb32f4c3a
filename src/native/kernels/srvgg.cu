// SRVGGNetCompact (Real-ESRGAN's compact VGG-style network: realesr-animevideov3, realesr-general-x4v3) on the
// tensor cores. The 3x3 convolutions over 64-channel NHWC fp16 activations run as implicit GEMMs (mma.sync
// m16n8k16, fp32 accumulation) with bias and PReLU (or the pixel shuffle and the residual input) fused into the
// epilogue, so each layer reads its input once and writes its output once. The first layer (3 input channels) is a
// GEMM over its 27 taps on the tensor cores; the optional final bicubic resize is a plain CUDA-core kernel.
//
// Needs sm_80 or newer (cp.async, ldmatrix, mma.m16n8k16). No CUDA headers: NVRTC compiles this as is.

typedef unsigned short half_t;  // IEEE binary16 bits

__device__ __forceinline__ half_t f2h(float f) {
    half_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float h2f(half_t h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// Two floats as one f16x2 word: `lo` in the low half (the lower channel or address).
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ unsigned smem_addr(const void* p) {
    unsigned long long a;
    asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(p));
    return (unsigned)a;
}

// 16 bytes global -> shared without a register round trip; `bytes` = 0 writes zeros (the convolution's padding).
__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(unsigned addr, unsigned r[4]) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// d += a (16x16, row-major) * b (16x8, column-major); fp16 inputs, fp32 accumulators.
__device__ __forceinline__ void mma16816(float d[4], const unsigned a[4], unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---------------------------------------------------------------------------------------------------------------
// 3x3 convolution, 64 input channels, NOUT (padded to a multiple of 16) output channels.
//
// Each block owns a 16x16 tile of output pixels at a time (persistent: it loops over tiles, loading the next input
// tile with cp.async while it computes the current one). Shared memory holds all 9 taps of the weights, two 18x18
// input tiles (the tile and its one-pixel halo), bias and slopes. Rows of 64 channels are 128 bytes: eight 16-byte
// chunks, stored at chunk ^ (row & 7) so that ldmatrix reads of 8 consecutive rows hit distinct banks.
// Warp w computes output rows 2w and 2w+1 (two m16 tiles of 16 pixels) for all output channels: per tap and per
// 16 input channels, A (pixels x input channels) is the input tile shifted by the tap, B the tap's weights.

#define TILE 16
#define HALO (TILE + 2)
#define HALO_PIXELS (HALO * HALO)
#define CIN 64
#define ROW_BYTES (CIN * 2)
#define WARPS 8

__device__ __forceinline__ unsigned swizzle(unsigned row, unsigned chunk) { return row * ROW_BYTES + ((chunk ^ (row & 7)) << 4); }

struct ConvShape {
    int n, h, w;           // batch and input (= output) size
    int tiles_x, tiles_y;  // 16x16 tiles per row and column
    int tiles;             // n * tiles_x * tiles_y
};

// Loads the 18x18 input tile around output tile `t` (zeros outside the image).
__device__ __forceinline__ void load_tile(const half_t* __restrict__ in, const ConvShape& s, int t, unsigned dst) {
    const int per_image = s.tiles_x * s.tiles_y;
    const int n = t / per_image;
    const int r = t - n * per_image;
    const int y0 = (r / s.tiles_x) * TILE - 1;
    const int x0 = (r % s.tiles_x) * TILE - 1;
    for (int i = threadIdx.x; i < HALO_PIXELS * 8; i += WARPS * 32) {
        const int p = i >> 3, chunk = i & 7;
        const int y = y0 + p / HALO, x = x0 + p % HALO;
        const bool inside = y >= 0 && y < s.h && x >= 0 && x < s.w;
        const half_t* src = inside ? in + (((size_t)n * s.h + y) * s.w + x) * CIN + chunk * 8 : in;
        cp_async16(dst + swizzle(p, chunk), src, inside ? 16 : 0);
    }
}

// Epilogue of the hidden layers: bias, PReLU, fp16 NHWC store.
struct HiddenOut {
    half_t* out;
    __device__ __forceinline__ void store(const ConvShape& s, int n, int y, int x, int co, float v0, float v1,
                                          const float* bias, const float* slope) const {
        v0 += bias[co];
        v1 += bias[co + 1];
        v0 = v0 >= 0.0f ? v0 : v0 * slope[co];
        v1 = v1 >= 0.0f ? v1 : v1 * slope[co + 1];
        *(unsigned*)(out + (((size_t)n * s.h + y) * s.w + x) * CIN + co) = pack2(v0, v1);
    }
};

// Epilogue of the last layer: bias, pixel shuffle (DepthToSpace CRD, block R), plus the nearest-upsampled input
// image; planar fp16 [n, 3, h*R, w*R] store.
template <int R>
struct ShuffleOut {
    half_t* out;
    const half_t* image;  // the model input, planar [n, 3, h, w]
    static constexpr int RR = R * R, CHANNELS = 3 * RR;
    // where output channel `co` of input pixel (y, x) lands: the element offset in `out`, and its plane
    __device__ __forceinline__ size_t place(const ConvShape& s, int n, int y, int x, int co, int& c) const {
        c = co / RR;
        const int rem = co - c * RR, dy = rem / R, dx = rem - dy * R;
        const size_t ow = (size_t)s.w * R, oh = (size_t)s.h * R;
        return (((size_t)n * 3 + c) * oh + (size_t)y * R + dy) * ow + (size_t)x * R + dx;
    }
    __device__ __forceinline__ float residual(const ConvShape& s, int n, int y, int x, int c) const {
        return h2f(image[(((size_t)n * 3 + c) * s.h + y) * s.w + x]);
    }
    __device__ __forceinline__ void store(const ConvShape& s, int n, int y, int x, int co, float v0, float v1,
                                          const float* bias, const float*) const {
        if (co >= CHANNELS) return;
        int c;
        const size_t at = place(s, n, y, x, co, c);
        if (R % 2 == 0) {
            // co is even and so is R: co + 1 is the next pixel of the same row and plane (one 4-byte store)
            const float r = residual(s, n, y, x, c);
            *(unsigned*)(out + at) = pack2(v0 + bias[co] + r, v1 + bias[co + 1] + r);
            return;
        }
        out[at] = f2h(v0 + bias[co] + residual(s, n, y, x, c));
        if (co + 1 >= CHANNELS) return;
        int c1;
        const size_t at1 = place(s, n, y, x, co + 1, c1);
        out[at1] = f2h(v1 + bias[co + 1] + residual(s, n, y, x, c1));
    }
};

template <int NOUT, typename Out>
__device__ void conv3x3(const half_t* __restrict__ in, const half_t* __restrict__ weights,
                        const float* __restrict__ bias_g, const float* __restrict__ slope_g, ConvShape s, Out out) {
    constexpr int NT = NOUT / 8;  // n8 tiles
    extern __shared__ __align__(128) unsigned char smem[];
    unsigned char* w_s = smem;                                  // [9][NOUT][64]
    unsigned char* in_s = w_s + 9 * NOUT * ROW_BYTES;            // [2][18*18][64]
    float* bias = (float*)(in_s + 2 * HALO_PIXELS * ROW_BYTES);  // [NOUT]
    float* slope = bias + NOUT;                                  // [NOUT]

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const unsigned w_base = smem_addr(w_s), in_base = smem_addr(in_s);
    for (int i = threadIdx.x; i < 9 * NOUT * 8; i += WARPS * 32) {
        cp_async16(w_base + swizzle(i >> 3, i & 7), weights + (size_t)i * 8, 16);
    }
    for (int i = threadIdx.x; i < NOUT; i += WARPS * 32) {
        bias[i] = bias_g[i];
        slope[i] = slope_g ? slope_g[i] : 1.0f;
    }
    int t = blockIdx.x;
    if (t < s.tiles) load_tile(in, s, t, in_base);
    cp_async_commit();

    // per-lane parts of the ldmatrix addresses
    const int a_row = lane & 15;               // pixel within the m16 tile
    const int a_chunk = lane >> 4;             // low or high 8 input channels of the k16 step
    const int b_row = ((lane >> 4) << 3) + (lane & 7);  // output channel within an n16 pair
    const int b_chunk = (lane >> 3) & 1;
    const int g = lane >> 2, q = lane & 3;     // mma fragment row group and column pair

    for (int i = 0; t < s.tiles; ++i, t += gridDim.x) {
        const int next = t + gridDim.x;
        if (next < s.tiles) load_tile(in, s, next, in_base + ((i + 1) & 1) * HALO_PIXELS * ROW_BYTES);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();

        const unsigned tile_base = in_base + (i & 1) * HALO_PIXELS * ROW_BYTES;
        float acc[2][NT][4];
#pragma unroll
        for (int m = 0; m < 2; ++m)
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
                for (int k = 0; k < 4; ++k) acc[m][j][k] = 0.0f;

#pragma unroll
        for (int tap = 0; tap < 9; ++tap) {
            const int ky = tap / 3, kx = tap % 3;
#pragma unroll
            for (int kc = 0; kc < 4; ++kc) {
                unsigned a[2][4];
#pragma unroll
                for (int m = 0; m < 2; ++m) {
                    const int p = (2 * warp + m + ky) * HALO + a_row + kx;
                    ldmatrix_x4(tile_base + swizzle(p, 2 * kc + a_chunk), a[m]);
                }
#pragma unroll
                for (int j = 0; j < NT / 2; ++j) {
                    unsigned b[4];
                    ldmatrix_x4(w_base + swizzle(tap * NOUT + 16 * j + b_row, 2 * kc + b_chunk), b);
#pragma unroll
                    for (int m = 0; m < 2; ++m) {
                        mma16816(acc[m][2 * j], a[m], b[0], b[1]);
                        mma16816(acc[m][2 * j + 1], a[m], b[2], b[3]);
                    }
                }
            }
        }

        const int per_image = s.tiles_x * s.tiles_y;
        const int n = t / per_image, r = t - n * per_image;
        const int y0 = (r / s.tiles_x) * TILE, x0 = (r % s.tiles_x) * TILE;
#pragma unroll
        for (int m = 0; m < 2; ++m) {
            const int y = y0 + 2 * warp + m;
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                const int co = 8 * j + 2 * q;
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int x = x0 + g + 8 * h;
                    if (y < s.h && x < s.w) out.store(s, n, y, x, co, acc[m][j][2 * h], acc[m][j][2 * h + 1], bias, slope);
                }
            }
        }
        __syncthreads();  // every warp is done with this input buffer before it is refilled
    }
    cp_async_wait<0>();
}

extern "C" __global__ void __launch_bounds__(WARPS * 32, 1)
    srvgg_conv_hidden(const half_t* in, const half_t* weights, const float* bias, const float* slope, half_t* out,
                      ConvShape s) {
    conv3x3<64>(in, weights, bias, slope, s, HiddenOut{out});
}

// NOUT: the 3 R^2 output channels padded to a multiple of 16
#define LAST_LAYER(NOUT, R)                                                                                        \
    extern "C" __global__ void __launch_bounds__(WARPS * 32, 1) srvgg_conv_last_##NOUT(                            \
        const half_t* in, const half_t* weights, const float* bias, half_t* out, const half_t* image, ConvShape s) { \
        conv3x3<NOUT>(in, weights, bias, nullptr, s, ShuffleOut<R>{out, image});                                   \
    }
LAST_LAYER(16, 2)
LAST_LAYER(32, 3)
LAST_LAYER(48, 4)

// ---------------------------------------------------------------------------------------------------------------
// First layer: 3x3 convolution 3 -> 64 with bias and PReLU, planar fp16 image in, NHWC fp16 out, on the tensor
// cores as a GEMM with K = 27 taps (c, ky, kx), padded with zeros to 32. Each warp takes 16 consecutive pixels of
// a row (M = 16) and all 64 output channels (8 n-tiles of 8) in two k-steps: its A fragments are gathered straight
// from the image (per lane: 2 pixels x 8 taps, zeros outside), B (the weights, [64][32] fp16) stays in registers
// for the whole kernel. The 16x64 result goes through shared memory (16-byte chunks swizzled by row, as in the
// hidden layers) so that it leaves as 2 KB of contiguous NHWC in 16-byte stores.

#define FIRST_WARPS 4
#define FIRST_K 32

extern "C" __global__ void __launch_bounds__(FIRST_WARPS * 32)
    srvgg_conv_first(const half_t* __restrict__ image, const half_t* __restrict__ weights,
                     const float* __restrict__ bias_g, const float* __restrict__ slope_g, half_t* __restrict__ out,
                     int images, int h, int w) {
    __shared__ __align__(16) unsigned char staged[FIRST_WARPS][16 * ROW_BYTES];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int group = lane >> 2, pair = (lane & 3) * 2;
    // B fragments: for n-tile j and k-step s, rows k = 16s + pair (+1) and + 8 of output channel 8j + group
    unsigned b[8][2][2];
    float bias[8][2], slope[8][2];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const half_t* wrow = weights + (8 * j + group) * FIRST_K;
#pragma unroll
        for (int st = 0; st < 2; ++st) {
            b[j][st][0] = *(const unsigned*)(wrow + 16 * st + pair);
            b[j][st][1] = *(const unsigned*)(wrow + 16 * st + pair + 8);
        }
        // the channels this lane's accumulators hold
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            bias[j][e] = bias_g[8 * j + pair + e];
            slope[j][e] = slope_g[8 * j + pair + e];
        }
    }
    // the 8 taps of this lane's A fragments: k = 16s + pair + {0, 1} + {0, 8}, as plane offset and shift
    int tap_plane[8], tap_dy[8], tap_dx[8];
    bool tap_used[8];
#pragma unroll
    for (int t = 0; t < 8; ++t) {
        const int k = 16 * (t >> 2) + pair + (t & 1) + 8 * ((t >> 1) & 1);
        tap_used[t] = k < 27;
        const int c = k / 9, r = k - 9 * (k / 9);
        tap_plane[t] = tap_used[t] ? c : 0;
        tap_dy[t] = r / 3 - 1;
        tap_dx[t] = r - 3 * (r / 3) - 1;
    }
    const int tiles_x = (w + 15) / 16, per_image = h * tiles_x, tiles = images * per_image;
    const size_t plane_size = (size_t)h * w;
    const unsigned stage = smem_addr(staged[warp]);
    for (int tile = blockIdx.x * FIRST_WARPS + warp; tile < tiles; tile += gridDim.x * FIRST_WARPS) {
        const int n = tile / per_image, r = tile - n * per_image;
        const int y = r / tiles_x, x0 = (r - y * tiles_x) * 16;
        const half_t* img = image + (size_t)n * 3 * plane_size;
        // A: rows (pixels) group and group + 8
        unsigned a[2][4];
#pragma unroll
        for (int st = 0; st < 2; ++st)
#pragma unroll
            for (int half_row = 0; half_row < 2; ++half_row)
#pragma unroll
                for (int khi = 0; khi < 2; ++khi) {
                    const int x = x0 + group + 8 * half_row;
                    half_t v[2];
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int t = 4 * st + 2 * khi + e;
                        const int yy = y + tap_dy[t], xx = x + tap_dx[t];
                        const bool inside = tap_used[t] && yy >= 0 && yy < h && xx >= 0 && xx < w;
                        v[e] = inside ? img[tap_plane[t] * plane_size + (size_t)yy * w + xx] : (half_t)0;
                    }
                    // register order of the m16n8k16 A fragment: (row, k), (row + 8, k), (row, k + 8), (row + 8, k + 8)
                    a[st][2 * khi + half_row] = (unsigned)v[0] | ((unsigned)v[1] << 16);
                }
        float acc[8][4];
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
            mma16816(acc[j], a[0], b[j][0][0], b[j][0][1]);
            mma16816(acc[j], a[1], b[j][1][0], b[j][1][1]);
        }
        // bias, PReLU, fp16 pairs into the swizzled staging tile: row = pixel, 16-byte chunk j = channels 8j..8j+7
#pragma unroll
        for (int j = 0; j < 8; ++j)
#pragma unroll
            for (int half_row = 0; half_row < 2; ++half_row) {
                const int row = group + 8 * half_row;
                float v0 = acc[j][2 * half_row] + bias[j][0], v1 = acc[j][2 * half_row + 1] + bias[j][1];
                v0 = v0 >= 0.0f ? v0 : v0 * slope[j][0];
                v1 = v1 >= 0.0f ? v1 : v1 * slope[j][1];
                const unsigned addr = stage + swizzle(row, j) + pair * 2;
                asm volatile("st.shared.u32 [%0], %1;" ::"r"(addr), "r"(pack2(v0, v1)));
            }
        __syncwarp();
        half_t* dst = out + (((size_t)n * h + y) * w + x0) * CIN;
#pragma unroll
        for (int q = lane; q < 16 * 8; q += 32) {
            const int row = q >> 3, chunk = q & 7;
            if (x0 + row < w) {
                uint4 v;
                asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];"
                             : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                             : "r"(stage + swizzle(row, chunk)));
                *(uint4*)(dst + row * CIN + chunk * 8) = v;
            }
        }
        __syncwarp();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ONNX Resize, mode cubic, coordinate_transformation_mode half_pixel, exclude_outside 0 (edge samples repeated):
// planar fp16 planes of sh x sw to dh x dw with the model's scale factors. The x2 and x3 realesr-animevideov3 models
// end with it (they are the x4 network followed by a bicubic downscale).

__device__ __forceinline__ void cubic_coeffs(float t, float a, float c[4]) {
    const float t1 = t + 1.0f, u = 1.0f - t, u1 = 2.0f - t;
    c[0] = ((a * t1 - 5.0f * a) * t1 + 8.0f * a) * t1 - 4.0f * a;
    c[1] = ((a + 2.0f) * t - (a + 3.0f)) * t * t + 1.0f;
    c[2] = ((a + 2.0f) * u - (a + 3.0f)) * u * u + 1.0f;
    c[3] = ((a * u1 - 5.0f * a) * u1 + 8.0f * a) * u1 - 4.0f * a;
}

// One block computes 64x16 outputs of one plane in two passes through shared memory: the source window (read
// with 4-byte loads, all issued before any is used, so enough are in flight to stream at memory speed), then each
// window row resampled horizontally, then the columns vertically; each thread writes two adjacent outputs as one
// f16x2 word. For the factors the matcher accepts (0.5 to 1) the window is at most 131 columns from an even
// start (+1) by 35 rows.
#define RESIZE_OUT_W 64
#define RESIZE_OUT_H 16
#define RESIZE_WIN_W 132
#define RESIZE_WIN_H 35
#define RESIZE_WIN_WORDS (RESIZE_WIN_W / 2)
#define RESIZE_THREADS 256
#define RESIZE_LOADS ((RESIZE_WIN_H * RESIZE_WIN_WORDS + RESIZE_THREADS - 1) / RESIZE_THREADS)

extern "C" __global__ void __launch_bounds__(RESIZE_THREADS)
    srvgg_resize_cubic(const half_t* __restrict__ src, int sh, int sw, half_t* __restrict__ dst, int dh, int dw,
                       float scale_y, float scale_x, float a) {
    __shared__ float window[RESIZE_WIN_H][RESIZE_WIN_W];
    __shared__ __align__(16) float rows[RESIZE_WIN_H][RESIZE_OUT_W];
    // per output column and row of the block: the four weights and the first tap's index in the window
    __shared__ float wx_s[RESIZE_OUT_W][4], wy_s[RESIZE_OUT_H][4];
    __shared__ int tx_s[RESIZE_OUT_W], ty_s[RESIZE_OUT_H];
    const int tid = threadIdx.y * 32 + threadIdx.x;
    const int plane = blockIdx.z;
    const int x0 = blockIdx.x * RESIZE_OUT_W, y0 = blockIdx.y * RESIZE_OUT_H;
    // the first source column (rounded down to even, for aligned word loads) and row any output here reads
    const int sx0 = ((int)floorf(((float)x0 + 0.5f) / scale_x - 0.5f) - 1) & ~1;
    const int sy0 = (int)floorf(((float)y0 + 0.5f) / scale_y - 0.5f) - 1;
    const half_t* p = src + (size_t)plane * sh * sw;
    // rows start 4-byte aligned when the width is even (always, for pixel-shuffled planes)
    const bool words_aligned = (sw & 1) == 0;
    unsigned words[RESIZE_LOADS];
#pragma unroll
    for (int k = 0; k < RESIZE_LOADS; ++k) {
        const int i = tid + k * RESIZE_THREADS;
        words[k] = 0;
        if (i < RESIZE_WIN_H * RESIZE_WIN_WORDS) {
            const int wy = i / RESIZE_WIN_WORDS, xx = sx0 + 2 * (i - wy * RESIZE_WIN_WORDS);
            // clamped here, so each tap below reads the edge sample exactly as a clamped index would
            const half_t* row = p + (size_t)min(max(sy0 + wy, 0), sh - 1) * sw;
            if (words_aligned && xx >= 0 && xx + 1 < sw) {
                words[k] = *(const unsigned*)(row + xx);
            } else {
                words[k] = (unsigned)row[min(max(xx, 0), sw - 1)] | ((unsigned)row[min(max(xx + 1, 0), sw - 1)] << 16);
            }
        }
    }
    if (tid < RESIZE_OUT_W) {
        const float f = ((float)(x0 + tid) + 0.5f) / scale_x - 0.5f, b = floorf(f);
        cubic_coeffs(f - b, a, wx_s[tid]);
        tx_s[tid] = (int)b - 1 - sx0;
    } else if (tid < RESIZE_OUT_W + RESIZE_OUT_H) {
        const int r = tid - RESIZE_OUT_W;
        const float f = ((float)(y0 + r) + 0.5f) / scale_y - 0.5f, b = floorf(f);
        cubic_coeffs(f - b, a, wy_s[r]);
        ty_s[r] = (int)b - 1 - sy0;
    }
#pragma unroll
    for (int k = 0; k < RESIZE_LOADS; ++k) {
        const int i = tid + k * RESIZE_THREADS;
        if (i < RESIZE_WIN_H * RESIZE_WIN_WORDS) {
            const int wy = i / RESIZE_WIN_WORDS, wx = 2 * (i - wy * RESIZE_WIN_WORDS);
            window[wy][wx] = h2f((half_t)(words[k] & 0xffffu));
            window[wy][wx + 1] = h2f((half_t)(words[k] >> 16));
        }
    }
    __syncthreads();
    for (int i = tid; i < RESIZE_WIN_H * RESIZE_OUT_W; i += RESIZE_THREADS) {
        const int r = i / RESIZE_OUT_W, c = i - r * RESIZE_OUT_W;
        const float* w = &window[r][tx_s[c]];
        const float* cx = wx_s[c];
        rows[r][c] = cx[0] * w[0] + cx[1] * w[1] + cx[2] * w[2] + cx[3] * w[3];
    }
    __syncthreads();
    const int c = 2 * threadIdx.x, x = x0 + c;
    half_t* out = dst + (size_t)plane * dh * dw;
#pragma unroll
    for (int k = 0; k < RESIZE_OUT_H / 8; ++k) {
        const int r = threadIdx.y + 8 * k, y = y0 + r;
        if (y >= dh || x >= dw) break;
        const float* cy = wy_s[r];
        const int t = ty_s[r];
        float2 v = make_float2(0.0f, 0.0f);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const float2 s = *(const float2*)&rows[t + j][c];
            v.x += cy[j] * s.x;
            v.y += cy[j] * s.y;
        }
        half_t* o = out + (size_t)y * dw + x;
        if ((dw & 1) == 0) {
            // x is even and so is the row start: an aligned word, both outputs inside the row
            *(unsigned*)o = pack2(v.x, v.y);
        } else {
            o[0] = f2h(v.x);
            if (x + 1 < dw) o[1] = f2h(v.y);
        }
    }
}

// The x2 models' final downscale by exactly 1/2 (ONNX Resize, cubic, half_pixel, edge samples repeated): output X
// reads source columns 2X-1 .. 2X+2 with the same four weights for every X (the cubic at t = 1/2: c0, c1, c1, c0),
// and likewise for rows. Each thread computes a 4x4 block of outputs from a 10x10 source window: per source row one
// 16-byte load of the 8 middle samples (when rows are 16-byte aligned and the window is inside the row) and two
// samples either side; horizontal then vertical passes in fp32; each output row leaves as one 8-byte store.
#define HALF_BLOCK_X 64
#define HALF_BLOCK_Y 4

// Samples sx0 .. sx0 + 9 of `row` (sw samples) in fp32, edges repeated: with `vector` (rows 16-byte aligned, sx0 + 1
// a multiple of 8 and the window inside the row) the 8 middle samples in one 16-byte load.
__device__ __forceinline__ void load_window_row(const half_t* row, int sx0, int sw, bool vector, float v[10]) {
    if (vector) {
        const uint4 mid = *(const uint4*)(row + sx0 + 1);
        const unsigned words[4] = {mid.x, mid.y, mid.z, mid.w};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            v[1 + 2 * k] = h2f((half_t)(words[k] & 0xffffu));
            v[2 + 2 * k] = h2f((half_t)(words[k] >> 16));
        }
        v[0] = h2f(row[max(sx0, 0)]);
        v[9] = h2f(row[sx0 + 9]);
    } else {
#pragma unroll
        for (int k = 0; k < 10; ++k) v[k] = h2f(row[min(max(sx0 + k, 0), sw - 1)]);
    }
}

extern "C" __global__ void __launch_bounds__(HALF_BLOCK_X * HALF_BLOCK_Y)
    srvgg_resize_half(const half_t* __restrict__ src, int sh, int sw, half_t* __restrict__ dst, int dh, int dw,
                      float a) {
    const int x0 = 4 * (blockIdx.x * HALF_BLOCK_X + threadIdx.x), y0 = 4 * (blockIdx.y * HALF_BLOCK_Y + threadIdx.y);
    if (x0 >= dw || y0 >= dh) return;
    float w[4];
    cubic_coeffs(0.5f, a, w);
    const half_t* plane = src + (size_t)blockIdx.z * sh * sw;
    const int sx0 = 2 * x0 - 1;  // first source column of the window
    const bool vector = (sw & 7) == 0 && sx0 + 9 < sw;
    float hr[10][4];
#pragma unroll
    for (int r = 0; r < 10; ++r) {
        float v[10];
        load_window_row(plane + (size_t)min(max(2 * y0 - 1 + r, 0), sh - 1) * sw, sx0, sw, vector, v);
#pragma unroll
        for (int k = 0; k < 4; ++k)
            hr[r][k] = w[0] * v[2 * k] + w[1] * v[2 * k + 1] + w[2] * v[2 * k + 2] + w[3] * v[2 * k + 3];
    }
    half_t* out = dst + (size_t)blockIdx.z * dh * dw;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int y = y0 + j;
        if (y >= dh) break;
        float o[4];
#pragma unroll
        for (int k = 0; k < 4; ++k)
            o[k] = w[0] * hr[2 * j][k] + w[1] * hr[2 * j + 1][k] + w[2] * hr[2 * j + 2][k] + w[3] * hr[2 * j + 3][k];
        half_t* p = out + (size_t)y * dw + x0;
        if ((dw & 3) == 0) {
            // x0 is a multiple of 4 and so is the row length: an aligned 8-byte store, all four inside
            *(uint2*)p = make_uint2(pack2(o[0], o[1]), pack2(o[2], o[3]));
        } else {
#pragma unroll
            for (int k = 0; k < 4; ++k)
                if (x0 + k < dw) p[k] = f2h(o[k]);
        }
    }
}

// The x3 models' final downscale by exactly 3/4 (ONNX Resize, cubic, half_pixel, edge samples repeated): output
// 3k + p reads source columns 4k - 1 + p .. 4k + 2 + p at the phase t = 1/6, 1/2, 5/6 for p = 0, 1, 2 (its source
// position (3k + p + 1/2) / (3/4) - 1/2 is 4k + 1/6, 4k + 3/2, 4k + 17/6), so three weight sets serve every output. Each thread computes 6x6 outputs (two phase groups each way) from a 10x10
// source window, the layout of srvgg_resize_half: per source row one 16-byte load of the 8 middle samples where rows
// are 16-byte aligned and the window inside, two samples either side; horizontal then vertical passes in fp32.
#define TQ_BLOCK_X 64
#define TQ_BLOCK_Y 4

// The four taps of output phase p (0..2) of a group whose window starts at index 4 g (g: the group, 0 or 1) of a
// 10-sample window: indices 4 g + p .. 4 g + p + 3.
__device__ __forceinline__ float tq_tap(const float* v, int g, int p, const float w[3][4]) {
    const float* s = v + 4 * g + p;
    return w[p][0] * s[0] + w[p][1] * s[1] + w[p][2] * s[2] + w[p][3] * s[3];
}

extern "C" __global__ void __launch_bounds__(TQ_BLOCK_X * TQ_BLOCK_Y)
    srvgg_resize_three_quarters(const half_t* __restrict__ src, int sh, int sw, half_t* __restrict__ dst, int dh,
                                int dw, float a) {
    const int m = blockIdx.x * TQ_BLOCK_X + threadIdx.x, n = blockIdx.y * TQ_BLOCK_Y + threadIdx.y;
    const int x0 = 6 * m, y0 = 6 * n;  // first output column and row; source windows start at 8 m - 1, 8 n - 1
    if (x0 >= dw || y0 >= dh) return;
    float w[3][4];
    cubic_coeffs(1.0f / 6.0f, a, w[0]);
    cubic_coeffs(0.5f, a, w[1]);
    cubic_coeffs(5.0f / 6.0f, a, w[2]);
    const half_t* plane = src + (size_t)blockIdx.z * sh * sw;
    const int sx0 = 8 * m - 1;
    const bool vector = (sw & 7) == 0 && sx0 + 9 < sw;
    float hr[10][6];
#pragma unroll
    for (int r = 0; r < 10; ++r) {
        float v[10];
        load_window_row(plane + (size_t)min(max(8 * n - 1 + r, 0), sh - 1) * sw, sx0, sw, vector, v);
#pragma unroll
        for (int k = 0; k < 6; ++k) hr[r][k] = tq_tap(v, k / 3, k % 3, w);
    }
    half_t* out = dst + (size_t)blockIdx.z * dh * dw;
#pragma unroll
    for (int j = 0; j < 6; ++j) {
        const int y = y0 + j;
        if (y >= dh) break;
        float col[10], o[6];
#pragma unroll
        for (int k = 0; k < 6; ++k) {
#pragma unroll
            for (int r = 0; r < 10; ++r) col[r] = hr[r][k];
            o[k] = tq_tap(col, j / 3, j % 3, w);
        }
        half_t* p = out + (size_t)y * dw + x0;
        if ((dw & 1) == 0 && x0 + 6 <= dw) {
            // x0 is even and so is the row length: three aligned words, all six inside
            unsigned* q = (unsigned*)p;
            q[0] = pack2(o[0], o[1]);
            q[1] = pack2(o[2], o[3]);
            q[2] = pack2(o[4], o[5]);
        } else {
#pragma unroll
            for (int k = 0; k < 6; ++k)
                if (x0 + k < dw) p[k] = f2h(o[k]);
        }
    }
}
