// The dense model families' 3x3 convolutions on Hopper (sm_90a): RRDBNet's (realesrgan-x4plus and -anime) 64, 96,
// 128, 160 and 192 input channels to 32 or 64 outputs, over NHWC fp16 buffers whose channels are slices: a
// convolution reads `Cin` channels starting at any multiple of 8 of a buffer of any channel stride and writes its
// outputs into a channel slice of another, so a dense block's Concat costs nothing (src/native/program.rs).
// Prototyped and measured in tools/kernel-lab (docs/PERFORMANCE.md attempt 17).
//
// Implicit GEMM per tile of 4 rows x 128 pixels, accumulated in fp32 over 32-channel chunks of the input: a chunk is
// a TMA copy of its halo (6 rows x 130 pixels x 32 channels, NHWC rows of 64 bytes, 64-byte swizzle, out-of-bounds
// reads as zeros = the padding) into a ring of halo slots + a bulk copy of its weights (pre-packed in the
// shared-memory image of the A operands, src/native/conv_sm90.rs) into a ring of weight slots, on mbarriers
// (docs/PERFORMANCE.md attempts 20-21: shallower rings left the consumers waiting). Streaming the
// weights with the activations is what lets 192 -> 64 (221 KB of weights) run without them fitting at once.
//
//   Cout 64: A = W[tap] (64 output channels x 16 input channels per k-step), B = a 128-pixel window of the halo;
//            consumer warpgroup k computes output rows 2k and 2k+1 with two accumulator sets (18 MMAs per row and
//            chunk: 9 taps x 2 k-steps).
//   Cout 32: two output rows per instruction: A = [W(ky = h) ; W(ky = h - 1)] (rows 0-31: output row 2k, rows 32-63:
//            output row 2k+1) against halo row 2k + h, h = 0..3 (W(-1) and W(3) are zero): 4 x 3 taps x 2 k-steps =
//            24 MMAs per row pair and chunk instead of 36 with the output channels padded to 64. Per K-half the A
//            image is [0, W(2), W(1), W(0)] (16 row groups of 8 rows); the zeros after W(0) are the next slice's
//            leading ones, so only the weights (18 KB per chunk) are copied and the zero groups are written once.
//            Fewer than 32 outputs are rows padded with zero weights.
//   Cout 8 into planes (conv8_sm90: the model output, conv_last's 3 channels): pixels as M, A = 64 pixels of a halo
//            row, B = W[tap] (16 input channels x 8 outputs); per row and chunk 2 pixel blocks x 9 taps x 2 k-steps of
//            m64n8k16, an eighth of the Cout-32 kernel's MMA work with its 29 zero rows (docs/PERFORMANCE.md
//            attempt 22).
//   Cout 64 of the input upsampled by 2 (nearest; conv64up2_sm90, RRDBNet's conv_up1/conv_up2): without the
//            upsampled image. Output pixel (2x + px, 2y + py) reads input rows y - 1 + py .. y + py and columns
//            x - 1 + px .. x + px, each through the sum of the 3x3 taps that land on it (conv_sm90/weights.rs): a 2 x 2
//            convolution per phase, 4/9 of the MMAs. A tile is one phase of an input tile; its halo box starts
//            py - 1 rows and px - 1 columns off the tile, so the MMAs are those of Cout 64 with 2 x 2 taps.
//   Cout 64 of a 1x1 convolution (conv64pw_sm90, Real-CUGAN's around its space to depth and depth to space): one tap,
//            2 MMAs per row and chunk instead of 18; the halo box starts at the tile.
//
// Epilogue (fp32): v = alpha * act(acc + bias), act(v) = v >= 0 ? v : slope v (slope 1: none); Cout 64 adds
// beta res1 + gamma res2 (NHWC fp16 slices of any channel stride, same pixel as the output): an RDB's conv5 is alpha
// 0.2 + x; the RRDB's third conv5 folds the RRDB residual too (0.04 conv + 0.2 x + x_rrdb); conv_body + the trunk
// (not with the input upsampled).
// The residuals are loaded before any store of the same pass (they may not alias the output, and the loads then
// overlap each other instead of waiting behind the stores). Results are staged through shared memory (stmatrix)
// so that global stores are 16-byte and contiguous per pixel. Cout 8 writes planar fp16 instead (the model output,
// `planar` = the plane size in values): its first `out_channels` channels, one plane each.
//
// Warp roles: warpgroups 0 and 1 consume, warpgroup 2 produces (one lane per ring issues its copies); setmaxnreg
// moves the producer's registers to the consumers. Persistent CTAs, tiles in order.
//
// No CUDA headers: NVRTC compiles this as is (build.rs inlines sm90.cuh), for the arch-specific target:
// nvrtc: arch=compute_90a
#include "sm90.cuh"

struct ConvShape {
    int n, h, w;   // batch and size (output size = input size)
    int tiles_x;   // ceil(w / TILE_COLS)
    int strips;    // ceil(h / TILE_ROWS)
    int tiles;     // n * strips * tiles_x
    int chunks;    // Cin / 32
};

struct ConvEpilogue {
    const float* bias;   // the kernel's rows of values (64, 32 or 8; padding zero)
    half_t* out;         // first output channel of pixel 0 (planar: plane 0)
    int out_stride;      // channels per pixel of the output buffer (planar: unused)
    int out_channels;    // channels stored (a multiple of 8, or with `planar` any count up to 8)
    long long planar;    // 0: NHWC; else values per plane of a planar output
    float slope;         // negative slope of the activation (1: none)
    float alpha;         // scale after the activation
    const half_t* res1;  // Cout 64 only, may be null: first residual channel of pixel 0
    int res1_stride;
    float beta;
    const half_t* res2;  // Cout 64 only, may be null
    int res2_stride;
    float gamma;
};

#define TILE_COLS 128
#define TILE_ROWS 4
#define HALO_W (TILE_COLS + 2)
#define HALO_H (TILE_ROWS + 2)
#define CHUNK_BYTES_PX 64                              // 32 fp16 channels per pixel row
#define HALO_BYTES (HALO_W * HALO_H * CHUNK_BYTES_PX)  // 49920: what one TMA box delivers
#define HALO_STAGE 50176                               // rounded up to 1 KiB
#define KSTEP_BYTES 2048                               // Cout 64: A of one tap and k-step, 64 rows x 16 channels
#define W64_PART (9 * KSTEP_BYTES)                     // 18432: the nine taps of one k-step
#define SLICE_BYTES 2048                               // Cout 32: one K-half slice, 16 row groups
#define SLICE_LOAD 1536                                // of which W(2), W(1), W(0) are copied (the zeros stay)
#define W32_CHUNK (12 * SLICE_BYTES + 512)             // 25088 in shared memory (12 slices + the last zeros)
#define W32_LOAD (12 * SLICE_LOAD)                     // 18432 copied per chunk
#define W8_TAP 256                                     // Cout 8: B of one tap and k-step, [K-half][8 outputs][8]
#define W8_CHUNK (9 * 2 * W8_TAP)                      // 4608 per chunk
#define CONSUMERS 2
#define THREADS ((CONSUMERS + 1) * 128)

// Keep in step with conv_sm90/weights.rs (ConvKernel::smem_bytes). UP 2 (Cout 64 only): the input is read
// upsampled by 2 (below). K: the convolution's taps per dimension, 3, or 1 (Cout 64 only: a 1x1 convolution, whose
// halo box starts at the tile instead of a pixel before it).
template <int COUT, int UP = 1, int K = 3>
struct Layout {
    enum : int {
        TAPS = UP == 2 ? 2 : K,  // taps per dimension
        // the weight ring's unit: Cout 64 one k-step of a chunk (two parts per chunk), Cout 32 and 8 a whole chunk
        W_PARTS = COUT == 64 ? 2 : 1,
        // the weights' bytes per part in shared memory and in the packed weights (copied)
        W_PART = COUT == 64 ? TAPS * TAPS * KSTEP_BYTES : COUT == 8 ? W8_CHUNK : W32_CHUNK,
        W_LOAD = COUT == 64 ? TAPS * TAPS * KSTEP_BYTES : COUT == 8 ? W8_CHUNK : W32_LOAD,
        W_SLOT = (W_PART + 1023) / 1024 * 1024,
        // Two rings, each filled by its own producer lane: halos three deep; weights three chunks deep for Cout 32,
        // and for Cout 64, whose A is larger, four k-steps (two chunks), each released as soon as its MMAs are done
        // (attempt 21: with two halo slots its consumers waited on the halos 37 % of the time, with two whole-chunk
        // weight slots 24 % on the weights); the epilogue is staged in the halo of the tile's last chunk
        // (finish_tile), so there are no staging buffers
        HALOS = 3,
        // UP 2: 4 taps per part, twice the weights per MMA; K 1: one tap per part, 16 parts (8 chunks) in flight
        WEIGHTS = UP == 2 ? 8 : COUT == 64 ? (K == 1 ? 16 : 4) : 3,
        OFF_W = HALOS * HALO_STAGE,
        OFF_BARRIERS = OFF_W + WEIGHTS * W_SLOT,
        // + alignment room: 225392 (64), 228448 (32), 217264 (64, UP 2), 167008 (8), 184624 (64, K 1)
        SMEM = OFF_BARRIERS + 2 * (HALOS + WEIGHTS) * 8 + 1024,
    };
};

// B: halo row `first_row` of the stage, K-major with the 64-byte swizzle (a pixel's 32 channels in one 64-byte row,
// 8-pixel groups 512 bytes apart, LBO unused); b_offset: + h rows, + kx pixels, k-step ks (16 channels).
__device__ __forceinline__ unsigned long long halo_desc(unsigned stage, int first_row) {
    return opaque(make_desc(stage + first_row * HALO_W * CHUNK_BYTES_PX, 16, 512, 2));
}
__device__ __forceinline__ constexpr unsigned b_offset(int h, int kx, int ks) {
    return (unsigned)(((h * HALO_W + kx) * CHUNK_BYTES_PX + ks * 32) >> 4);
}

// The MMAs of one chunk for consumer warpgroup k.
// Cout 64, one k-step KS (16 of the chunk's 32 channels) per call: 18 MMAs for output rows 2k (d0) and 2k + 1 (d1):
// halo row 2k + h serves d0 with ky = h and d1 with ky = h - 1. A image per part: [tap][K-half][row group][8][8].
// Cout 32, both k-steps (KS unused): 24 MMAs for the row pair 2k, 2k + 1 (accumulator rows 0-31 and 32-63 of d0).
// A image per chunk: [kx][k-step][K-half][16 row groups: 0, W(ky 2), W(ky 1), W(ky 0)][8][8] + 4 zero groups.
// Cout 8 (KS unused): 72 MMAs into d0[0..16): row 2k pixel blocks 0, 1 at d0 + 0, + 4; row 2k + 1 at d0 + 8, + 12.
// B image per chunk: [tap][k-step][K-half][8 outputs][8].
// `first`: the tile's first chunk (the accumulators start from zero).
// UP 2 (Cout 64): the same over TAPS = 2 taps per dimension (8 MMAs per row and chunk); K 1: one tap (2 MMAs).
template <int COUT, int KS, int UP = 1, int K = 3>
__device__ __forceinline__ void mma_chunk(float d0[64], float d1[], unsigned halo, unsigned a, int k, bool first) {
    constexpr int slice = COUT == 64 ? 1024 : SLICE_BYTES;  // the K-half stride (LBO)
    constexpr int taps = Layout<COUT, UP, K>::TAPS;
    const unsigned long long a0 = opaque(make_desc(a, slice, 128, 0));
    const unsigned long long b0 = halo_desc(halo, 2 * k);
#pragma unroll
    for (int h = 0; h < taps + 1; ++h) {
#pragma unroll
        for (int kx = 0; kx < taps; ++kx) {
            if constexpr (COUT == 64) {
                const unsigned long long b = b0 + b_offset(h, kx, KS);
                const bool zero = first && KS == 0 && kx == 0;
                if (h < taps) {
                    const unsigned long long a = a0 + (unsigned)(((h * taps + kx) * KSTEP_BYTES) >> 4);
                    wgmma_m64n128k16(d0, a, b, zero && h == 0 ? 0 : 1);
                }
                if (h >= 1) {
                    const unsigned long long a = a0 + (unsigned)((((h - 1) * taps + kx) * KSTEP_BYTES) >> 4);
                    wgmma_m64n128k16(d1, a, b, zero && h == 1 ? 0 : 1);
                }
            } else if constexpr (COUT == 8) {
                const unsigned long long w0 = opaque(make_desc(a, 128, 256, 0));
#pragma unroll
                for (int ks = 0; ks < 2; ++ks) {
                    const bool zero = first && ks == 0 && kx == 0;
#pragma unroll
                    for (int blk = 0; blk < 2; ++blk) {
                        // the halo as A: pixels 64 blk + kx .. of halo row 2k + h
                        const unsigned long long px = b0 + b_offset(h, kx + 64 * blk, ks);
                        if (h <= 2) {
                            const unsigned long long w = w0 + (unsigned)((((h * 3 + kx) * 2 + ks) * W8_TAP) >> 4);
                            wgmma_m64n8k16(d0 + 4 * blk, px, w, zero && h == 0 ? 0 : 1);
                        }
                        if (h >= 1) {
                            const unsigned long long w =
                                w0 + (unsigned)(((((h - 1) * 3 + kx) * 2 + ks) * W8_TAP) >> 4);
                            wgmma_m64n8k16(d0 + 8 + 4 * blk, px, w, zero && h == 1 ? 0 : 1);
                        }
                    }
                }
            } else {
#pragma unroll
                for (int ks = 0; ks < 2; ++ks) {
                    const unsigned long long b = b0 + b_offset(h, kx, ks);
                    const unsigned long long a =
                        a0 + (unsigned)(((kx * 2 + ks) * 2 * slice + (3 - h) * 4 * 128) >> 4);
                    wgmma_m64n128k16(d0, a, b, first ? (h | kx | ks) : 1);
                }
            }
        }
    }
}

// What a consumer thread knows about itself.
struct Lane {
    int wq, lane, g, q, tid;  // warp in the warpgroup, lane, mma row group and column pair, thread in the warpgroup
    unsigned staging;         // this warpgroup's 8 KiB of epilogue staging (in a halo slot)
    int barrier;              // this warpgroup's named barrier
};

// D[row][px]: d[4j + 2h + e] holds accumulator row 16 wq + g + 8h, pixel 8j + 2q + e (the m64nNk16 layout).

__device__ __forceinline__ float activate(float v, const ConvEpilogue& e) {
    v = v >= 0.0f ? v : e.slope * v;
    return e.alpha * v;
}

// The four 8x8 blocks that one stmatrix.x4 stores: pixel blocks j0, j0 + 1 x accumulator rows g, g + 8 (bias b[0],
// b[1]), activated and packed to fp16 pairs.
__device__ __forceinline__ void pack_blocks(const float d[64], int j0, const float b[2], const ConvEpilogue& e,
                                            unsigned r4[4]) {
#pragma unroll
    for (int m = 0; m < 4; ++m) {
        const int j = j0 + (m >> 1), h = m & 1;
        r4[m] = pack2(activate(d[4 * j + 2 * h] + b[h], e), activate(d[4 * j + 2 * h + 1] + b[h], e));
    }
}

__device__ __forceinline__ uint4 ld_shared16(unsigned addr) {
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
    return v;
}

// f (8 fp32) += s * r (8 fp16).
__device__ __forceinline__ void add_scaled(float f[8], uint4 r, float s) {
    const unsigned w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        f[2 * i] += s * h2f((half_t)(w[i] & 0xffff));
        f[2 * i + 1] += s * h2f((half_t)(w[i] >> 16));
    }
}

// Cout 64, one output row (y < h): bias, activation, scale; staged as [64 px][64 channels] (16-byte chunks swizzled
// by the pixel), then 16-byte stores of 8 channels with the residuals added. UP 2: the row of phase (py, px) =
// (phase >> 1, phase & 1), whose pixel x is pixel (2x + px, 2y + py) of the output (no residuals).
template <int UP>
__device__ __forceinline__ void store_row64(const float d[64], const Lane& l, const ConvEpilogue& e,
                                            const ConvShape& s, int img, int y, int xt, int phase) {
    const int ch0 = 16 * l.wq + l.g;
    const float b[2] = {e.bias[ch0], e.bias[ch0 + 8]};
    const size_t row_px = ((size_t)img * s.h + y) * s.w;
    const size_t out_row =
        UP == 1 ? row_px : ((size_t)img * UP * s.h + UP * y + (phase >> 1)) * UP * s.w + (phase & 1);
    const bool residual = UP == 1 && (e.res1 || e.res2);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        // this pass's residuals first: eight independent 16-byte loads in flight during the staging
        uint4 r1[4], r2[4];
        if (residual) {
#pragma unroll
            for (int m = 0; m < 4; ++m) {
                const int idx = l.tid + 128 * m, px = idx >> 3, c = idx & 7;
                const int x = xt + 64 * half + px;
                const size_t p = row_px + x;
                const bool in = x < s.w;
                r1[m] = in && e.res1 ? *(const uint4*)(e.res1 + p * e.res1_stride + c * 8) : make_uint4(0, 0, 0, 0);
                r2[m] = in && e.res2 ? *(const uint4*)(e.res2 + p * e.res2_stride + c * 8) : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int jj = 0; jj < 8; jj += 2) {
            unsigned r4[4];
            pack_blocks(d, 8 * half + jj, b, e, r4);
            const int m = l.lane >> 3, px = 8 * (jj + (m >> 1)) + (l.lane & 7), c = 2 * l.wq + (m & 1);
            stmatrix_x4_trans(l.staging + px * 128 + ((c ^ (px & 7)) << 4), r4[0], r4[1], r4[2], r4[3]);
        }
        named_barrier(l.barrier);
#pragma unroll
        for (int m = 0; m < 4; ++m) {
            const int idx = l.tid + 128 * m, px = idx >> 3, c = idx & 7;
            const int x = xt + 64 * half + px;
            if (x < s.w && c * 8 < e.out_channels) {
                uint4 v = ld_shared16(l.staging + px * 128 + ((c ^ (px & 7)) << 4));
                if (residual) {
                    float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                    add_scaled(f, v, 1.0f);
                    add_scaled(f, r1[m], e.beta);
                    add_scaled(f, r2[m], e.gamma);
                    v = make_uint4(pack2(f[0], f[1]), pack2(f[2], f[3]), pack2(f[4], f[5]), pack2(f[6], f[7]));
                }
                *(uint4*)(e.out + (out_row + (size_t)UP * x) * e.out_stride + c * 8) = v;
            }
        }
        named_barrier(l.barrier);
    }
}

// Cout 32, the row pair y0, y0 + 1 of one accumulator (rows 0-31: y0, rows 32-63: y0 + 1): staged as [2 rows][64 px]
// [32 channels] (64-byte pixel rows, 16-byte chunks swizzled by (px >> 1) & 3: the 8 rows of a stmatrix block on
// distinct banks), then 16-byte stores.
__device__ __forceinline__ void store_pair32(const float d[64], const Lane& l, const ConvEpilogue& e,
                                             const ConvShape& s, int img, int y0, int xt) {
    const int orow = l.wq >> 1, ch0 = 16 * (l.wq & 1) + l.g;
    const float b[2] = {e.bias[ch0], e.bias[ch0 + 8]};
#pragma unroll
    for (int half = 0; half < 2; ++half) {
#pragma unroll
        for (int jj = 0; jj < 8; jj += 2) {
            unsigned r4[4];
            pack_blocks(d, 8 * half + jj, b, e, r4);
            const int m = l.lane >> 3, px = 8 * (jj + (m >> 1)) + (l.lane & 7), c = 2 * (l.wq & 1) + (m & 1);
            stmatrix_x4_trans(l.staging + orow * 4096 + px * 64 + ((c ^ ((px >> 1) & 3)) << 4), r4[0], r4[1], r4[2],
                              r4[3]);
        }
        named_barrier(l.barrier);
#pragma unroll
        for (int m = 0; m < 4; ++m) {
            const int idx = l.tid + 128 * m, r = idx >> 8, px = (idx >> 2) & 63, c = idx & 3;
            const int x = xt + 64 * half + px, y = y0 + r;
            if (x < s.w && y < s.h && c * 8 < e.out_channels) {
                const uint4 v = ld_shared16(l.staging + r * 4096 + px * 64 + ((c ^ ((px >> 1) & 3)) << 4));
                *(uint4*)(e.out + (((size_t)img * s.h + y) * s.w + x) * e.out_stride + c * 8) = v;
            }
        }
        named_barrier(l.barrier);
    }
}

// Tile t: its image, first row and column (of the input), and for UP 2 its phase. UP 2 runs the four phases of
// one input tile as tiles 4 t' .. 4 t' + 3, side by side in the grid, so that their halos come from L2.
struct Tile {
    int img, y, x, phase;
};
template <int UP>
__device__ __forceinline__ Tile tile_of(int t, const ConvShape& s) {
    const int phase = UP == 2 ? t & 3 : 0, base = UP == 2 ? t >> 2 : t;
    const int per_image = s.strips * s.tiles_x;
    const int img = base / per_image, r = base - img * per_image;
    return Tile{img, (r / s.tiles_x) * TILE_ROWS, (r % s.tiles_x) * TILE_COLS, phase};
}

// Cout 8 into planes, the row pair y0, y0 + 1 (pixels as M): d[8 r + 4 blk + 2 h + e] is output row y0 + r, pixel
// 64 blk + 16 wq + g + 8 h, channel 2q + e; 2-byte stores (8 lanes write 16 contiguous bytes of a plane).
__device__ __forceinline__ void store_narrow_planar(const float d[16], const Lane& l, const ConvEpilogue& e,
                                                    const ConvShape& s, int img, int y0, int xt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int y = y0 + r;
        if (y >= s.h) break;
#pragma unroll
        for (int c = 0; c < 2; ++c) {
            const int ch = 2 * l.q + c;
            if (ch >= e.out_channels) continue;
            const float bias = e.bias[ch];
            half_t* row = e.out + ((size_t)img * e.out_channels + ch) * e.planar + (size_t)y * s.w;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int blk = i >> 1, h = i & 1;
                const int x = xt + 64 * blk + 16 * l.wq + l.g + 8 * h;
                if (x < s.w) row[x] = f2h(activate(d[8 * r + 4 * blk + 2 * h + c] + bias, e));
            }
        }
    }
}

// The two rings in shared memory: halo slots, weight slots, then their full and empty mbarriers.
template <int COUT, int UP, int K>
struct Rings {
    typedef Layout<COUT, UP, K> L;
    unsigned base;
    __device__ unsigned halo(int j) const { return base + (j % L::HALOS) * HALO_STAGE; }
    __device__ unsigned weight(int j) const { return base + L::OFF_W + (j % L::WEIGHTS) * L::W_SLOT; }
    __device__ unsigned hfull(int j) const { return base + L::OFF_BARRIERS + 8 * (j % L::HALOS); }
    __device__ unsigned hempty(int j) const { return hfull(j) + 8 * L::HALOS; }
    __device__ unsigned wfull(int j) const { return base + L::OFF_BARRIERS + 16 * L::HALOS + 8 * (j % L::WEIGHTS); }
    __device__ unsigned wempty(int j) const { return wfull(j) + 8 * L::WEIGHTS; }
    // the phase of ring position j's full barrier, and of its empty barrier's previous use (j >= depth)
    __device__ static unsigned hphase(int j) { return (j / L::HALOS) & 1; }
    __device__ static unsigned wphase(int j) { return (j / L::WEIGHTS) & 1; }
};

// One tile's MMAs, chunk after chunk from ring position j on (advanced past the tile; the chunk's weight parts are
// positions W_PARTS j, ...). Each chunk's halo and weights are released once the MMAs after them are issued and
// their own are done (Cout 64: the first k-step's part mid-chunk); the last chunk's last part and halo stay held.
template <int COUT, int UP, int K>
__device__ __forceinline__ void tile_mmas(float d0[64], float d1[], const Rings<COUT, UP, K>& g, int& j, int k,
                                          int chunks) {
    typedef Layout<COUT, UP, K> L;
    for (int c = 0; c < chunks; ++c, ++j) {
        const int w = L::W_PARTS * j;
        mbar_wait(g.hfull(j), g.hphase(j));
        mbar_wait(g.wfull(w), g.wphase(w));
        wgmma_fence();
        if constexpr (COUT == 64) {
            mma_chunk<64, 0, UP, K>(d0, d1, g.halo(j), g.weight(w), k, c == 0);
            wgmma_commit();
            mbar_wait(g.wfull(w + 1), g.wphase(w + 1));
            mma_chunk<64, 1, UP, K>(d0, d1, g.halo(j), g.weight(w + 1), k, false);
            wgmma_commit();
            wgmma_wait<1>();  // all but the second k-step
            mbar_arrive(g.wempty(w));
        } else {
            mma_chunk<COUT, 0>(d0, d1, g.halo(j), g.weight(w), k, c == 0);
            wgmma_commit();
            if (c > 0) wgmma_wait<1>();
        }
        if (c > 0) {
            mbar_arrive(g.hempty(j - 1));
            mbar_arrive(g.wempty(w - 1));
        }
    }
}

// The epilogue of tile t, whose MMAs are done; `last`: the ring position of its last chunk.
template <int COUT, int UP, int K>
__device__ __forceinline__ void finish_tile(const float d0[64], const float d1[], Lane& l,
                                            const Rings<COUT, UP, K>& g, int last, int t, int k, const ConvEpilogue& e,
                                            const ConvShape& s) {
    mbar_arrive(g.wempty(Layout<COUT, UP, K>::W_PARTS * (last + 1) - 1));
    // staged in halo rows of the last chunk that only this warpgroup read (rows 0-1: warpgroup 0, rows 4-5:
    // warpgroup 1; the other warpgroup's MMAs may still read rows 2-5)
    l.staging = g.halo(last) + (k == 0 ? 0 : 4 * HALO_W * CHUNK_BYTES_PX);
    const Tile tile = tile_of<UP>(t, s);
    const int img = tile.img, y = tile.y + 2 * k, xt = tile.x;
    if (y < s.h) {  // uniform in the warpgroup
        if constexpr (COUT == 64) {
            store_row64<UP>(d0, l, e, s, img, y, xt, tile.phase);
            if (y + 1 < s.h) store_row64<UP>(d1, l, e, s, img, y + 1, xt, tile.phase);
        } else if constexpr (COUT == 8) {
            store_narrow_planar(d0, l, e, s, img, y, xt);
        } else {
            store_pair32(d0, l, e, s, img, y, xt);
        }
    }
    // the staging's generic accesses before the slot's next TMA write (async proxy)
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    mbar_arrive(g.hempty(last));
}

// The convolution. `map`: the input slice as (channels, w, h, n), fp16, 64-byte swizzle, box 32 x HALO_W x HALO_H
// x 1 (chunk c is the box at channel 32 c). `weights`: per chunk the shared-memory image of its A operands (Cout 8:
// of B), chunk after chunk, in Layout::W_PARTS parts of Layout::W_LOAD bytes; UP 2: phase after phase.
template <int COUT, int UP = 1, int K = 3>
__device__ __forceinline__ void conv(const TensorMap* map, const half_t* __restrict__ weights,
                                     const ConvEpilogue& e, const ConvShape& s) {
    typedef Layout<COUT, UP, K> L;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const unsigned raw = smem_u32(smem_raw);
    Rings<COUT, UP, K> g;
    g.base = (raw + 1023) & ~1023u;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        for (int st = 0; st < L::HALOS; ++st) {
            mbar_init(g.hfull(st), 1);
            mbar_init(g.hempty(st), CONSUMERS * 128);
        }
        for (int st = 0; st < L::WEIGHTS; ++st) {
            mbar_init(g.wfull(st), 1);
            mbar_init(g.wempty(st), CONSUMERS * 128);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    if constexpr (COUT == 32) {
        // the zero row groups of every weight slot's A image, written once (generic stores read by the tensor
        // cores: proxy fence before the barrier)
        for (int i = threadIdx.x; i < L::WEIGHTS * 13 * 32; i += THREADS) {
            const int st = i / (13 * 32), sl = (i / 32) % 13, q = i % 32;
            *(uint4*)(smem_raw + (g.base - raw) + L::OFF_W + st * L::W_SLOT + sl * SLICE_BYTES + q * 16) =
                make_uint4(0, 0, 0, 0);
        }
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    }
    __syncthreads();

    // this CTA's chunks, numbered j = tile-of-this-CTA * chunks + chunk
    const int total = (s.tiles > (int)blockIdx.x ? (s.tiles - 1 - blockIdx.x) / gridDim.x + 1 : 0) * s.chunks;
    if (warp >= CONSUMERS * 4) {
        // producers: one lane per ring, so that neither ring's refill waits behind the other's free slot
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
        if (warp == CONSUMERS * 4 && lane == 0) {
            for (int j = 0; j < total; ++j) {
                const int c = j % s.chunks, t = blockIdx.x + (j / s.chunks) * gridDim.x;
                const Tile tile = tile_of<UP>(t, s);
                // UP 2: phase (py, px)'s 2 x 2 taps start at row py - 1 and column px - 1 of the input; K 1: at the
                // tile
                const int reach = K == 1 ? 0 : 1;
                const int x0 = tile.x - reach + (tile.phase & 1), y0 = tile.y - reach + (tile.phase >> 1);
                if (j >= L::HALOS) mbar_wait(g.hempty(j), g.hphase(j) ^ 1);
                mbar_expect_tx(g.hfull(j), HALO_BYTES);
                tma_load_4d(g.halo(j), map, 32 * c, x0, y0, tile.img, g.hfull(j));
            }
        } else if (warp == CONSUMERS * 4 + 1 && lane == 0) {
            for (int j = 0; j < total * L::W_PARTS; ++j) {
                if (j >= L::WEIGHTS) mbar_wait(g.wempty(j), g.wphase(j) ^ 1);
                mbar_expect_tx(g.wfull(j), L::W_LOAD);
                // parts of a chunk are consecutive in the packed weights; UP 2: the tile's phase's weights
                const int per_tile = s.chunks * L::W_PARTS;
                const int phase = UP == 2 ? (blockIdx.x + (j / per_tile) * gridDim.x) & 3 : 0;
                const size_t part = (size_t)phase * per_tile + j % per_tile;
                const unsigned char* w = (const unsigned char*)weights + part * L::W_LOAD;
                if constexpr (COUT == 32) {
                    for (int sl = 0; sl < 12; ++sl)
                        bulk_load(g.weight(j) + sl * SLICE_BYTES + 512, w + sl * SLICE_LOAD, SLICE_LOAD, g.wfull(j));
                } else {
                    bulk_load(g.weight(j), w, L::W_LOAD, g.wfull(j));
                }
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
        l.barrier = 1 + k;
        float d0[64], d1[COUT == 64 ? 64 : 1];
        int j = 0;
        for (int t = blockIdx.x; t < s.tiles; t += gridDim.x) {
            tile_mmas<COUT, UP, K>(d0, d1, g, j, k, s.chunks);
            wgmma_wait<0>();
            finish_tile<COUT, UP, K>(d0, d1, l, g, j - 1, t, k, e, s);
        }
    }
}

extern "C" __global__ void __launch_bounds__(THREADS, 1)
    conv32_sm90(const __grid_constant__ TensorMap map, const half_t* weights, ConvEpilogue e, ConvShape s) {
    conv<32>(&map, weights, e, s);
}

extern "C" __global__ void __launch_bounds__(THREADS, 1)
    conv64_sm90(const __grid_constant__ TensorMap map, const half_t* weights, ConvEpilogue e, ConvShape s) {
    conv<64>(&map, weights, e, s);
}

extern "C" __global__ void __launch_bounds__(THREADS, 1)
    conv8_sm90(const __grid_constant__ TensorMap map, const half_t* weights, ConvEpilogue e, ConvShape s) {
    conv<8>(&map, weights, e, s);
}

// The input upsampled by 2 (nearest), then the 3x3 convolution: four phase convolutions of 2 x 2 taps over the input
// (ConvShape: the input's size; tiles: 4 per input tile).
extern "C" __global__ void __launch_bounds__(THREADS, 1)
    conv64up2_sm90(const __grid_constant__ TensorMap map, const half_t* weights, ConvEpilogue e, ConvShape s) {
    conv<64, 2>(&map, weights, e, s);
}

// A 1x1 convolution (Real-CUGAN's, around its space to depth and depth to space): Cout 64 with one tap, the halo box
// at the tile (its two extra rows and columns unread).
extern "C" __global__ void __launch_bounds__(THREADS, 1)
    conv64pw_sm90(const __grid_constant__ TensorMap map, const half_t* weights, ConvEpilogue e, ConvShape s) {
    conv<64, 1, 1>(&map, weights, e, s);
}
