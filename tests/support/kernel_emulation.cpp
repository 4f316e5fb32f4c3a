// SPDX-License-Identifier: MPL-2.0
// The CUDA kernels of resample.cu, compose.cu, temporal.cu and planar_to_frame.cu run on the CPU: each thread of a
// launch in turn, with the CUDA built-ins they use written out here and in emulation.h (fp16 conversions by the CPU's
// F16C instructions, which round to nearest even as cvt.rn does). Compiled without contraction (-ffp-contract=off), with
// IEEE single precision, so each kernel computes what the GPU computes under --fmad=false. Driven by
// tests/kernel_emulation.rs, which writes the cases (inputs and the CPU path's results) and compiles this file with
// the kernel sources as build.rs embeds them (kernels.inc, one namespace per module); it prints one line per check
// and exits non-zero if any result differs from the CPU path's by a single bit.
// Kernels that need more than one thread at a time (warp shuffles: frame_difference) are not run here.
#include "emulation.h"

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
#define __restrict__
#define __shfl_down_sync(mask, v, offset) (0u)
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    const unsigned long long old = *p;
    *p += v;
    return old;
}
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
inline uint4 make_uint4(unsigned int a, unsigned int b, unsigned int c, unsigned int d) { return uint4{a, b, c, d}; }
using std::max;
using std::min;

#include "kernels.inc"

// Each module has its own FormatLayout (the same struct): the harness fills the one of the kernel it calls.
using FormatLayout_compose = mod_compose::FormatLayout;
using FormatLayout_temporal = mod_temporal::FormatLayout;
using FormatLayout_frame = mod_planar_to_frame::FormatLayout;

// Runs `f` for every thread of a grid of 32x8 blocks covering gw x gh threads, one after another.
template <class F>
void launch(unsigned gw, unsigned gh, F f) {
    blockDim.x = 32;
    blockDim.y = 8;
    for (unsigned by = 0; by < (gh + 7) / 8; ++by)
        for (unsigned bx = 0; bx < (gw + 31) / 32; ++bx)
            for (unsigned ty = 0; ty < 8; ++ty)
                for (unsigned tx = 0; tx < 32; ++tx) {
                    blockIdx.x = bx, blockIdx.y = by, threadIdx.x = tx, threadIdx.y = ty;
                    f();
                }
}

template <class T>
size_t differing(const std::vector<T>& a, const std::vector<T>& b) {
    if (a.size() != b.size()) return (size_t)-1;
    size_t n = 0;
    for (size_t i = 0; i < a.size(); ++i) n += memcmp(&a[i], &b[i], sizeof(T)) != 0;
    return n;
}

static int failures = 0;
static void report(const std::string& what, size_t d) {
    printf("%-36s %s (%zu differ)\n", what.c_str(), d == 0 ? "OK" : "DIFFERENT", d);
    if (d) ++failures;
}

// A format layout and a frame's plane geometry from a case's numbers (layout_numbers in the test).
template <class Layout>
struct Geometry {
    Layout fmt;
    int row[2], rows[2];
};

template <class Layout>
Geometry<Layout> geometry(std::istream& m) {
    Geometry<Layout> g{};
    m >> g.fmt.sample_bytes >> g.fmt.shift >> g.fmt.max_code >> g.fmt.step[0] >> g.fmt.step[1] >> g.fmt.plane[0] >>
        g.fmt.plane[1] >> g.fmt.plane[2] >> g.fmt.offset[0] >> g.fmt.offset[1] >> g.fmt.offset[2] >> g.fmt.extra;
    m >> g.row[0] >> g.rows[0] >> g.row[1] >> g.rows[1];
    return g;
}

// Planes with padded, 16-byte aligned rows (pitch = row bytes + pad rounded to 16 when `aligned`).
struct Planes {
    std::vector<unsigned char> storage[2];
    unsigned char* ptr[2] = {nullptr, nullptr};
    int pitch[2] = {0, 0};
    Planes(const int row[2], const int rows[2], int pad, bool aligned) {
        for (int p = 0; p < 2; ++p) {
            pitch[p] = row[p] + pad;
            if (aligned) pitch[p] = (pitch[p] + 15) / 16 * 16;
            storage[p].assign((size_t)pitch[p] * rows[p] + 16, 0);
            ptr[p] = (unsigned char*)(((uintptr_t)storage[p].data() + 15) & ~(uintptr_t)15);
        }
    }
    std::vector<unsigned char> tight(int p, int row, int rows) const {
        std::vector<unsigned char> out((size_t)row * rows);
        for (int r = 0; r < rows; ++r) memcpy(&out[(size_t)r * row], ptr[p] + (size_t)r * pitch[p], row);
        return out;
    }
};

int main(int argc, char** argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: emulate DIR RESAMPLES COMPOSES MASKS CONVERSIONS\n");
        return 2;
    }
    const std::string root = argv[1];
    const int resamples = atoi(argv[2]), composes = atoi(argv[3]), masks = atoi(argv[4]), conversions = atoi(argv[5]);
    for (int n = 0; n < resamples; ++n) {
        const std::string dir = root + "/resample" + std::to_string(n);
        std::ifstream m(dir + "/meta");
        int iw, ih, ow, oh, tx, ty;
        m >> iw >> ih >> ow >> oh >> tx >> ty;
        auto src = rd<float>(dir, "src");
        auto src16 = rd<unsigned short>(dir, "src16");
        auto xs = rd<int>(dir, "x_start"), ys = rd<int>(dir, "y_start");
        auto xw = rd<float>(dir, "x_weights"), yw = rd<float>(dir, "y_weights");
        mod_resample::Axis fx{(unsigned long long)xs.data(), (unsigned long long)xw.data(), tx, iw};
        mod_resample::Axis fy{(unsigned long long)ys.data(), (unsigned long long)yw.data(), ty, ih};
        std::vector<float> out(3 * ow * oh);
        launch(ow, oh, [&] { mod_resample::resample_planar_f32(src.data(), out.data(), ow, oh, fx, fy); });
        report(dir + " f32", differing(out, rd<float>(dir, "expected")));
        launch(ow, oh, [&] { mod_resample::resample_planar_f16(src16.data(), out.data(), ow, oh, fx, fy); });
        report(dir + " f16", differing(out, rd<float>(dir, "expected16")));
    }
    for (int n = 0; n < composes; ++n) {
        const std::string dir = root + "/compose" + std::to_string(n);
        std::ifstream m(dir + "/meta");
        int iw, ih, mw, mh, ow, oh, fp16, classic_only, temporal, ctx, cty, sx, sy;
        float sm, sc;
        m >> iw >> ih >> mw >> mh >> ow >> oh >> sm >> sc >> fp16 >> classic_only >> temporal >> ctx >> cty >> sx >> sy;
        auto g = geometry<FormatLayout_compose>(m);
        auto model = rd<float>(dir, "model");
        auto model16 = rd<unsigned short>(dir, "model16");
        auto rgb = rd<float>(dir, "rgb"), mask = rd<float>(dir, "mask"), history = rd<float>(dir, "history_in");
        auto matrix = rd<float>(dir, "matrix");
        auto cxs = rd<int>(dir, "cx_start"), cys = rd<int>(dir, "cy_start");
        auto cxw = rd<float>(dir, "cx_weights"), cyw = rd<float>(dir, "cy_weights");
        std::vector<int> sxs, sys;
        std::vector<float> sxw, syw;
        if (sx) {
            sxs = rd<int>(dir, "sx_start"), sys = rd<int>(dir, "sy_start");
            sxw = rd<float>(dir, "sx_weights"), syw = rd<float>(dir, "sy_weights");
        }
        Planes planes(g.row, g.rows, 5, false);
        mod_compose::ComposeArgs a{};
        a.model = classic_only ? 0 : (fp16 ? (unsigned long long)model16.data() : (unsigned long long)model.data());
        a.input_rgb = (unsigned long long)rgb.data();
        a.mask = temporal ? (unsigned long long)mask.data() : 0;
        a.history = temporal ? (unsigned long long)history.data() : 0;
        a.plane0 = (unsigned long long)planes.ptr[0];
        a.plane1 = (unsigned long long)planes.ptr[1];
        if (sx) {
            a.shrink_x = mod_compose::Axis{(unsigned long long)sxs.data(), (unsigned long long)sxw.data(), sx, mw};
            a.shrink_y = mod_compose::Axis{(unsigned long long)sys.data(), (unsigned long long)syw.data(), sy, mh};
        }
        a.classic_x = mod_compose::Axis{(unsigned long long)cxs.data(), (unsigned long long)cxw.data(), ctx, iw};
        a.classic_y = mod_compose::Axis{(unsigned long long)cys.data(), (unsigned long long)cyw.data(), cty, ih};
        memcpy(&a.from_rgb, matrix.data(), 48);
        a.fmt = g.fmt;
        a.strength_model = classic_only ? 0.0f : sm;
        a.strength_classic = classic_only ? 1.0f : sc;
        a.alpha = 0.8f;
        a.model_w = mw, a.model_h = mh, a.in_w = iw, a.in_h = ih, a.out_w = ow, a.out_h = oh;
        a.pitch0 = planes.pitch[0], a.pitch1 = planes.pitch[1];
        const int block = g.fmt.step[1] > 0 ? 2 : 1;
        launch((ow + block - 1) / block, (oh + block - 1) / block, [&] {
            if (fp16) mod_compose::compose_frame_f16(a);
            else mod_compose::compose_frame_f32(a);
        });
        for (int p = 0; p < 2; ++p) {
            report(dir + " plane " + std::to_string(p), differing(planes.tight(p, g.row[p], g.rows[p]),
                                                                 rd<unsigned char>(dir, "plane" + std::to_string(p))));
        }
        if (temporal) report(dir + " history", differing(history, rd<float>(dir, "history_out")));
    }
    for (int n = 0; n < masks; ++n) {
        const std::string dir = root + "/mask" + std::to_string(n);
        std::ifstream m(dir + "/meta");
        int w, h, valid;
        unsigned lo, hi;
        unsigned long long sum, limit;
        m >> w >> h >> lo >> hi >> sum >> limit >> valid;
        auto g = geometry<FormatLayout_temporal>(m);
        auto cur = rd<unsigned char>(dir, "curplane0"), prev = rd<unsigned char>(dir, "prevplane0");
        std::vector<float> mask(w * h, -1.0f);
        launch(w, h, [&] {
            mod_temporal::temporal_mask(cur.data(), g.row[0], prev.data(), g.row[0], w, h, g.fmt, 2, lo, hi, &sum,
                                        limit, valid, mask.data());
        });
        report(dir, differing(mask, rd<float>(dir, "mask")));
    }
    for (int n = 0; n < conversions; ++n) {
        const std::string dir = root + "/p2n" + std::to_string(n);
        std::ifstream m(dir + "/meta");
        int w, h;
        m >> w >> h;
        auto g = geometry<FormatLayout_frame>(m);
        auto t = rd<float>(dir, "t");
        auto t16 = rd<unsigned short>(dir, "t16");
        auto matrix = rd<float>(dir, "matrix");
        mod_planar_to_frame::Affine3x4 from_rgb;
        memcpy(&from_rgb, matrix.data(), 48);
        const bool semi_planar = g.fmt.step[0] == 1 && g.fmt.step[1] == 2 && g.fmt.plane[1] == 1;
        for (int pad : {0, 16, 3}) {
            Planes planes(g.row, g.rows, pad, pad != 3);
            // as the host decides: semi-planar, rows of a multiple of 8 pixels, pitches aligned to the stores
            const int store = 8 * g.fmt.sample_bytes;
            const int vector = semi_planar && w % 8 == 0 && planes.pitch[0] % store == 0 && planes.pitch[1] % store == 0;
            const int threads_w = semi_planar ? ((w + 1) / 2 + 3) / 4 : w, threads_h = semi_planar ? (h + 1) / 2 : h;
            for (int half : {0, 1}) {
                launch(threads_w, threads_h, [&] {
                    if (half)
                        mod_planar_to_frame::planar_to_frame_f16(t16.data(), w, h, planes.ptr[0], planes.pitch[0],
                                                                 planes.ptr[1], planes.pitch[1], g.fmt, from_rgb, vector);
                    else
                        mod_planar_to_frame::planar_to_frame_f32(t.data(), w, h, planes.ptr[0], planes.pitch[0],
                                                                 planes.ptr[1], planes.pitch[1], g.fmt, from_rgb, vector);
                });
                const std::string what = dir + (half ? " f16" : " f32") + " pad " + std::to_string(pad) + (vector ? " vector" : "");
                for (int p = 0; p < 2; ++p) {
                    const std::string name = (half ? "f16_plane" : "plane") + std::to_string(p);
                    report(what + " plane " + std::to_string(p),
                           differing(planes.tight(p, g.row[p], g.rows[p]), rd<unsigned char>(dir, name)));
                }
            }
        }
    }
    return failures != 0;
}
