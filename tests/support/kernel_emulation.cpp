// SPDX-License-Identifier: MPL-2.0
// The CUDA kernels of resample.cu, compose.cu, temporal.cu and planar_to_nv12.cu run on the CPU: each thread of a
// launch in turn, with the CUDA built-ins they use written out here (fp16 conversions by the CPU's F16C
// instructions, which round to nearest even as cvt.rn does). Compiled without contraction (-ffp-contract=off), with
// IEEE single precision, so each kernel computes what the GPU computes under --fmad=false. Driven by
// tests/kernel_emulation.rs, which writes the cases (inputs and the CPU path's results) and compiles this file with
// the kernel sources as build.rs embeds them (kernels.inc, one namespace per module); it prints one line per check
// and exits non-zero if any result differs from the CPU path's by a single bit.
// Kernels that need more than one thread at a time (warp shuffles: frame_difference) are not run here.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
static dim3 threadIdx, blockIdx, blockDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __shfl_down_sync(mask, v, offset) (0u)
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    const unsigned long long old = *p;
    *p += v;
    return old;
}
inline unsigned short emulated_to_half_bits(float f) { return _cvtss_sh(f, 0); }
inline float emulated_from_half_bits(unsigned short h) { return _cvtsh_ss(h); }
struct float4 {
    float x, y, z, w;
};
struct uint4 {
    unsigned int x, y, z, w;
};
struct uint2 {
    unsigned int x, y;
};
inline uint2 make_uint2(unsigned int a, unsigned int b) { return uint2{a, b}; }
using std::max;
using std::min;

#include "kernels.inc"

template <class T> std::vector<T> rd(const std::string& dir, const char* name) {
    std::ifstream f(dir + "/" + name, std::ios::binary | std::ios::ate);
    if (!f) { fprintf(stderr, "missing %s/%s\n", dir.c_str(), name); exit(2); }
    size_t n = f.tellg(); f.seekg(0);
    std::vector<T> v(n / sizeof(T)); f.read((char*)v.data(), n); return v;
}
template <class F> void launch(unsigned gw, unsigned gh, F f) {
    blockDim.x = 32; blockDim.y = 8;
    for (unsigned by = 0; by < (gh + 7) / 8; ++by) for (unsigned bx = 0; bx < (gw + 31) / 32; ++bx)
        for (unsigned ty = 0; ty < 8; ++ty) for (unsigned tx = 0; tx < 32; ++tx) {
            blockIdx.x = bx; blockIdx.y = by; threadIdx.x = tx; threadIdx.y = ty; f();
        }
}
template <class T> size_t diff(const std::vector<T>& a, const std::vector<T>& b) {
    if (a.size() != b.size()) return (size_t)-1;
    size_t n = 0; for (size_t i = 0; i < a.size(); ++i) n += memcmp(&a[i], &b[i], sizeof(T)) != 0; return n;
}
static int failures = 0;
static void report(const std::string& what, size_t d) { printf("%-28s %s (%zu differ)\n", what.c_str(), d == 0 ? "OK" : "DIFFERENT", d); if (d) ++failures; }

int main(int argc, char** argv) {
    if (argc != 5) { fprintf(stderr, "usage: emulate DIR RESAMPLES COMPOSES FRAMES\n"); return 2; }
    const std::string root = argv[1];
    const int resamples = atoi(argv[2]), composes = atoi(argv[3]), frames = atoi(argv[4]);
    for (int n = 0; n < resamples; ++n) {
        std::string dir = root + "/resample" + std::to_string(n);
        std::ifstream m(dir + "/meta"); int iw, ih, ow, oh, tx, ty; m >> iw >> ih >> ow >> oh >> tx >> ty;
        auto src = rd<float>(dir, "src"); auto src16 = rd<unsigned short>(dir, "src16");
        auto xs = rd<int>(dir, "x_start"); auto xw = rd<float>(dir, "x_weights"); auto ys = rd<int>(dir, "y_start"); auto yw = rd<float>(dir, "y_weights");
        mod_resample::Axis fx{(unsigned long long)xs.data(), (unsigned long long)xw.data(), tx, iw}, fy{(unsigned long long)ys.data(), (unsigned long long)yw.data(), ty, ih};
        std::vector<float> out(3 * ow * oh);
        launch(ow, oh, [&] { mod_resample::resample_planar_f32(src.data(), out.data(), ow, oh, fx, fy); });
        report(dir + " f32", diff(out, rd<float>(dir, "expected")));
        launch(ow, oh, [&] { mod_resample::resample_planar_f16(src16.data(), out.data(), ow, oh, fx, fy); });
        report(dir + " f16", diff(out, rd<float>(dir, "expected16")));
    }
    for (int n = 0; n < composes; ++n) {
        std::string dir = root + "/compose" + std::to_string(n);
        std::ifstream m(dir + "/meta");
        int iw, ih, mw, mh, ow, oh, fp16, classic_only, temporal, ctx, cty, sx, sy; float sm, sc;
        m >> iw >> ih >> mw >> mh >> ow >> oh >> sm >> sc >> fp16 >> classic_only >> temporal >> ctx >> cty >> sx >> sy;
        auto model = rd<float>(dir, "model"); auto model16 = rd<unsigned short>(dir, "model16"); auto rgb = rd<float>(dir, "rgb");
        auto mask = rd<float>(dir, "mask"); auto history = rd<float>(dir, "history_in"); auto mat = rd<float>(dir, "matrix");
        auto cxs = rd<int>(dir, "cx_start"); auto cxw = rd<float>(dir, "cx_weights"); auto cys = rd<int>(dir, "cy_start"); auto cyw = rd<float>(dir, "cy_weights");
        std::vector<int> sxs, sys_; std::vector<float> sxw, syw;
        if (sx) { sxs = rd<int>(dir, "sx_start"); sxw = rd<float>(dir, "sx_weights"); sys_ = rd<int>(dir, "sy_start"); syw = rd<float>(dir, "sy_weights"); }
        int cw = (ow + 1) / 2, ch = (oh + 1) / 2;
        int y_pitch = ow + 7, uv_pitch = 2 * cw + 5;
        std::vector<unsigned char> yp(y_pitch * oh, 0xee), uvp(uv_pitch * ch, 0xee);
        mod_compose::ComposeArgs a{};
        a.model = classic_only ? 0 : (fp16 ? (unsigned long long)model16.data() : (unsigned long long)model.data());
        a.input_rgb = (unsigned long long)rgb.data();
        a.mask = temporal ? (unsigned long long)mask.data() : 0;
        a.history = temporal ? (unsigned long long)history.data() : 0;
        a.y_plane = (unsigned long long)yp.data(); a.uv_plane = (unsigned long long)uvp.data();
        if (sx) { a.shrink_x = mod_compose::Axis{(unsigned long long)sxs.data(), (unsigned long long)sxw.data(), sx, mw}; a.shrink_y = mod_compose::Axis{(unsigned long long)sys_.data(), (unsigned long long)syw.data(), sy, mh}; }
        a.classic_x = mod_compose::Axis{(unsigned long long)cxs.data(), (unsigned long long)cxw.data(), ctx, iw};
        a.classic_y = mod_compose::Axis{(unsigned long long)cys.data(), (unsigned long long)cyw.data(), cty, ih};
        memcpy(&a.rgb_to_yuv, mat.data(), 48);
        if (classic_only) { sm = 0.0f; sc = 1.0f; }
        a.strength_model = sm; a.strength_classic = sc; a.alpha = 0.8f;
        a.model_w = mw; a.model_h = mh; a.in_w = iw; a.in_h = ih; a.out_w = ow; a.out_h = oh; a.y_pitch = y_pitch; a.uv_pitch = uv_pitch;
        launch(cw, ch, [&] { if (fp16) mod_compose::compose_nv12_f16(a); else mod_compose::compose_nv12_f32(a); });
        std::vector<unsigned char> y(ow * oh), uv(2 * cw * ch);
        for (int r = 0; r < oh; ++r) memcpy(&y[r * ow], &yp[r * y_pitch], ow);
        for (int r = 0; r < ch; ++r) memcpy(&uv[r * 2 * cw], &uvp[r * uv_pitch], 2 * cw);
        report(dir + " y", diff(y, rd<unsigned char>(dir, "y")));
        report(dir + " uv", diff(uv, rd<unsigned char>(dir, "uv")));
        if (temporal) report(dir + " history", diff(history, rd<float>(dir, "history_out")));
    }
    for (int n = 0; n < 3; ++n) {
        std::string dir = root + "/mask" + std::to_string(n);
        std::ifstream m(dir + "/meta"); int w, h, valid; unsigned lo, hi; unsigned long long sum, limit; m >> w >> h >> lo >> hi >> sum >> limit >> valid;
        auto cur = rd<unsigned char>(dir, "cur"); auto prev = rd<unsigned char>(dir, "prev");
        std::vector<float> mask(w * h, -1.0f);
        launch(w, h, [&] { mod_temporal::temporal_mask(cur.data(), w, prev.data(), w, w, h, 2, lo, hi, &sum, limit, valid, mask.data()); });
        report(dir, diff(mask, rd<float>(dir, "mask")));
    }
    for (int n = 0; n < frames; ++n) {
        std::string dir = root + "/p2n" + std::to_string(n);
        std::ifstream m(dir + "/meta"); int w, h; m >> w >> h;
        auto t = rd<float>(dir, "t"); auto t16 = rd<unsigned short>(dir, "t16"); auto mat = rd<float>(dir, "matrix");
        mod_planar_to_nv12::Affine3x4 a; memcpy(&a, mat.data(), 48);
        int cw = (w + 1) / 2, ch = (h + 1) / 2;
        for (int pitch_pad : {0, 8, 3}) {
            int yp = w + pitch_pad, uvp = 2 * cw + pitch_pad;
            // like the host: vector when rows are multiples of 8 and pitches 8-aligned (our buffers are aligned)
            int vec = (w % 8 == 0) && (yp % 8 == 0) && (uvp % 8 == 0);
            for (int half_ : {0, 1}) {
                std::vector<unsigned char> Y(yp * h + 8, 0xee), UV(uvp * ch + 8, 0xee);
                // 8-aligned planes: vector stores need them
                unsigned char* y8 = (unsigned char*)(((uintptr_t)Y.data() + 7) & ~(uintptr_t)7);
                unsigned char* uv8 = (unsigned char*)(((uintptr_t)UV.data() + 7) & ~(uintptr_t)7);
                launch((cw + 3) / 4, ch, [&] {
                    if (half_) mod_planar_to_nv12::planar_to_nv12_f16(t16.data(), w, h, y8, yp, uv8, uvp, a, vec);
                    else mod_planar_to_nv12::planar_to_nv12_f32(t.data(), w, h, y8, yp, uv8, uvp, a, vec);
                });
                std::vector<unsigned char> y(w * h), uv(2 * cw * ch);
                for (int r = 0; r < h; ++r) memcpy(&y[r * w], &y8[r * yp], w);
                for (int r = 0; r < ch; ++r) memcpy(&uv[r * 2 * cw], &uv8[r * uvp], 2 * cw);
                std::string what = dir + (half_ ? " f16" : " f32") + " pad" + std::to_string(pitch_pad) + (vec ? " vec" : "");
                report(what + " y", diff(y, rd<unsigned char>(dir, half_ ? "y16" : "y")));
                report(what + " uv", diff(uv, rd<unsigned char>(dir, half_ ? "uv16" : "uv")));
            }
        }
    }
    return failures != 0;
}
