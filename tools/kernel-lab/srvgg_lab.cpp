// SPDX-License-Identifier: MPL-2.0
// Kernel lab for the native engine's convolution kernels: compiles them with NVRTC exactly as the engine does,
// checks every variant against an fp32 reference convolution on random data (fresh inputs per size, poisoned
// outputs, odd sizes and batches), then times them with CUDA events at 1080p and 720p.
//
//   srvgg_lab SRC_DIR [ITERATIONS]     (SRC_DIR: src/native/kernels; needs libcuda.so.1 and libnvrtc.so.13)
//
// Built on the development machine (g++, CUDA headers only; the libraries are opened at run time) and run on the
// GPU host: see docs/PERFORMANCE.md for the procedure and the results of each attempt.
#include <cmath>
#include <random>
#include <vector>

#include "lab_common.h"

// ---- the fp32 reference (NHWC, 3x3, pad 1, bias, PReLU) ------------------------------------------------------------
static const char* REFERENCE = R"(
extern "C" __global__ void ref_conv(const unsigned short* in, const unsigned short* w, const float* bias,
                                    const float* slope, float* out, int n, int h, int wd) {
    // w: [out][in][3][3] fp16 bits; one thread per output value
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long total = (long long)n * h * wd * 64;
    if (i >= total) return;
    int co = i % 64; long long p = i / 64; int x = p % wd; long long q = p / wd; int y = q % h; int b = q / h;
    float acc = 0.0f;
    for (int ky = 0; ky < 3; ++ky) for (int kx = 0; kx < 3; ++kx) {
        int yy = y + ky - 1, xx = x + kx - 1;
        if (yy < 0 || yy >= h || xx < 0 || xx >= wd) continue;
        const unsigned short* px = in + (((long long)b * h + yy) * wd + xx) * 64;
        for (int ci = 0; ci < 64; ++ci) {
            float a, c;
            asm("cvt.f32.f16 %0, %1;" : "=f"(a) : "h"(px[ci]));
            asm("cvt.f32.f16 %0, %1;" : "=f"(c) : "h"(w[((co * 64 + ci) * 3 + ky) * 3 + kx]));
            acc += a * c;
        }
    }
    acc += bias[co];
    out[i] = acc >= 0.0f ? acc : acc * slope[co];
}

extern "C" __global__ void ref_last(const unsigned short* in, const unsigned short* w, const float* bias,
                                    const unsigned short* image, float* out, int n, int h, int wd, int r) {
    // w: [3 r^2][in][3][3]; out: planar [n][3][r h][r w], pixel shuffle (CRD) + the image upsampled (nearest)
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long oh = (long long)h * r, ow = (long long)wd * r, total = (long long)n * 3 * oh * ow;
    if (i >= total) return;
    int ox = i % ow; long long q = i / ow; int oy = q % oh; q /= oh; int c = q % 3; int b = q / 3;
    int y = oy / r, x = ox / r, co = c * r * r + (oy % r) * r + (ox % r);
    float acc = 0.0f;
    for (int ky = 0; ky < 3; ++ky) for (int kx = 0; kx < 3; ++kx) {
        int yy = y + ky - 1, xx = x + kx - 1;
        if (yy < 0 || yy >= h || xx < 0 || xx >= wd) continue;
        const unsigned short* px = in + (((long long)b * h + yy) * wd + xx) * 64;
        for (int ci = 0; ci < 64; ++ci) {
            float a, cw;
            asm("cvt.f32.f16 %0, %1;" : "=f"(a) : "h"(px[ci]));
            asm("cvt.f32.f16 %0, %1;" : "=f"(cw) : "h"(w[((co * 64 + ci) * 3 + ky) * 3 + kx]));
            acc += a * cw;
        }
    }
    float im;
    asm("cvt.f32.f16 %0, %1;" : "=f"(im) : "h"(image[(((long long)b * 3 + c) * h + y) * wd + x]));
    out[i] = acc + bias[co] + im;
}
)";

struct HiddenShape {
    int n, h, w, tiles_x, strips, tiles;
};
struct ConvShape {
    int n, h, w, tiles_x, tiles_y, tiles;
};

// A kernel under test: the Hopper kernels (kind SM90) take a tensor map; the mma.sync ones (kind BASE) raw pointers.
enum Kind { SM90, BASE };
struct Variant {
    std::string name;
    CUfunction f;
    Kind kind;
    int r;  // 0: hidden layer; 2..4: last layer with pixel shuffle by r
};

static const int SM90_SMEM = 2 * 66560 + 73728 + 2 * 64 * 144 + 32 + 1024;
static int base_smem(int nout) { return 9 * nout * 128 + 2 * 18 * 18 * 128 + 2 * nout * 4; }

struct Problem {
    int n, h, w, r;  // r: 0 for a hidden layer
    CUdeviceptr in, out, ref, image, w_sm90, w_base, w_ref, bias, slope;
    size_t out_vals;
};

static void launch(const Variant& v, const Problem& p, int sms) {
    const int nout = p.r ? ((3 * p.r * p.r + 15) / 16) * 16 : 64;
    if (v.kind == BASE) {
        ConvShape s{p.n, p.h, p.w, (p.w + 15) / 16, (p.h + 15) / 16, 0};
        s.tiles = p.n * s.tiles_x * s.tiles_y;
        void* hidden[] = {(void*)&p.in, (void*)&p.w_base, (void*)&p.bias, (void*)&p.slope, (void*)&p.out, &s};
        void* last[] = {(void*)&p.in, (void*)&p.w_base, (void*)&p.bias, (void*)&p.out, (void*)&p.image, &s};
        CK(p_cuLaunchKernel(v.f, std::min(sms, s.tiles), 1, 1, 256, 1, 1, base_smem(nout), nullptr,
                            p.r ? last : hidden, nullptr));
        return;
    }
    HiddenShape s{p.n, p.h, p.w, (p.w + 127) / 128, (p.h + 1) / 2, 0};
    s.tiles = p.n * s.tiles_x * s.strips;
    static CUtensorMap map;
    cuuint64_t dims[4] = {64, (cuuint64_t)p.w, (cuuint64_t)p.h, (cuuint64_t)p.n};
    cuuint64_t strides[3] = {128, (cuuint64_t)p.w * 128, (cuuint64_t)p.w * p.h * 128};
    cuuint32_t box[4] = {64, 130, 4, 1}, elem[4] = {1, 1, 1, 1};
    CK(p_cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4, (void*)p.in, dims, strides, box, elem,
                                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
    void* hidden[] = {&map, (void*)&p.w_sm90, (void*)&p.bias, (void*)&p.slope, (void*)&p.out, &s};
    void* last[] = {&map, (void*)&p.w_sm90, (void*)&p.bias, (void*)&p.out, (void*)&p.image, &s};
    CK(p_cuLaunchKernel(v.f, std::min(sms, s.tiles), 1, 1, 384, 1, 1, SM90_SMEM, nullptr, p.r ? last : hidden,
                        nullptr));
}

static CUfunction function(CUmodule m, const std::string& name, int smem) {
    CUfunction f;
    CK(p_cuModuleGetFunction(&f, m, name.c_str()));
    CK(p_cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem));
    return f;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SRC_DIR [ITERATIONS [profile]]\n", argv[0]);
        return 2;
    }
    std::string dir = argv[1];
    int iterations = argc > 2 ? atoi(argv[2]) : 30;
    // "profile": only the 1080p problems, for Nsight Compute
    bool profile = argc > 3 && strcmp(argv[3], "profile") == 0;
    const int sms = init_device();

    CUmodule sm90 = compile(read_file(dir + "/srvgg_sm90.cu"), "srvgg_sm90.cu", "compute_90a");
    CUmodule base = compile(read_file(dir + "/srvgg.cu"), "srvgg.cu", "compute_90");
    CUmodule refm = compile(REFERENCE, "ref.cu", "compute_90");
    CUfunction ref_conv, ref_last;
    CK(p_cuModuleGetFunction(&ref_conv, refm, "ref_conv"));
    CK(p_cuModuleGetFunction(&ref_last, refm, "ref_last"));
    std::vector<Variant> variants;
    for (const char* f : {"srvgg_hidden_sm90"})
        variants.push_back({f, function(sm90, f, SM90_SMEM), SM90, 0});
    variants.push_back({"srvgg_conv_hidden (mma.sync)", function(base, "srvgg_conv_hidden", base_smem(64)), BASE, 0});
    for (int r = 2; r <= 4; ++r) {
        int nout = ((3 * r * r + 15) / 16) * 16;
        for (std::string f : {"srvgg_last_sm90_r"})
            variants.push_back({f + std::to_string(r), function(sm90, f + std::to_string(r), SM90_SMEM), SM90, r});
        std::string b = "srvgg_conv_last_" + std::to_string(nout);
        variants.push_back({b + " (mma.sync)", function(base, b, base_smem(nout)), BASE, r});
    }
    for (auto& v : variants) {
        int regs, local;
        p_cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, v.f);
        p_cuFuncGetAttribute(&local, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, v.f);
        printf("  %-34s %3d registers, %d bytes local\n", v.name.c_str(), regs, local);
    }

    std::mt19937 rng(20261201);
    struct Case { int n, h, w, r; bool timed; } cases[] = {
        {2, 37, 61, 0, false}, {1, 5, 300, 0, false}, {1, 133, 257, 0, false}, {1, 720, 1280, 0, true},
        {1, 1080, 1920, 0, true}, {2, 37, 61, 2, false}, {2, 37, 61, 3, false}, {2, 37, 61, 4, false},
        {1, 133, 257, 4, false}, {1, 720, 1280, 4, true}, {1, 1080, 1920, 4, true}};
    std::vector<std::string> table;
    bool all_ok = true;
    for (auto& cs : cases) {
        if (profile && cs.h != 1080) continue;
        Problem p{cs.n, cs.h, cs.w, cs.r};
        size_t px = (size_t)p.n * p.h * p.w, vals = px * 64;
        int cout = p.r ? 3 * p.r * p.r : 64, nout = p.r ? ((cout + 15) / 16) * 16 : 64;
        p.out_vals = p.r ? px * 3 * p.r * p.r : vals;
        std::uniform_real_distribution<float> act(-1.0f, 1.0f), wd(-0.06f, 0.06f), bd(-0.1f, 0.1f), sd(0.0f, 0.3f),
            im(0.0f, 1.0f);
        std::vector<uint16_t> in(vals), image(px * 3), w_ref(cout * 64 * 9), w_sm90(64 * 64 * 9, 0),
            w_base(9 * nout * 64, 0);
        std::vector<float> bias(64, 0.0f), slope(64, 1.0f);
        for (auto& v : in) v = f2h(act(rng));
        for (auto& v : image) v = f2h(im(rng));
        for (int co = 0; co < cout; ++co) {
            bias[co] = bd(rng);
            slope[co] = sd(rng);
            for (int ci = 0; ci < 64; ++ci)
                for (int tap = 0; tap < 9; ++tap) {
                    uint16_t v = f2h(wd(rng));
                    w_ref[(co * 64 + ci) * 9 + tap] = v;
                    w_base[(tap * nout + co) * 64 + ci] = v;
                    int kc = ci / 16, khalf = (ci % 16) / 8, e = ci % 8, rg = co / 8, row = co % 8;
                    w_sm90[((((tap * 4 + kc) * 2 + khalf) * 8 + rg) * 8 + row) * 8 + e] = v;
                }
        }
        p.in = alloc(vals * 2);
        p.out = alloc(p.out_vals * 2);
        p.ref = alloc(p.out_vals * 4);
        p.image = alloc(image.size() * 2);
        p.w_ref = alloc(w_ref.size() * 2);
        p.w_sm90 = alloc(w_sm90.size() * 2);
        p.w_base = alloc(w_base.size() * 2);
        p.bias = alloc(256);
        p.slope = alloc(256);
        CK(p_cuMemcpyHtoD_v2(p.in, in.data(), vals * 2));
        CK(p_cuMemcpyHtoD_v2(p.image, image.data(), image.size() * 2));
        CK(p_cuMemcpyHtoD_v2(p.w_ref, w_ref.data(), w_ref.size() * 2));
        CK(p_cuMemcpyHtoD_v2(p.w_sm90, w_sm90.data(), w_sm90.size() * 2));
        CK(p_cuMemcpyHtoD_v2(p.w_base, w_base.data(), w_base.size() * 2));
        CK(p_cuMemcpyHtoD_v2(p.bias, bias.data(), 256));
        CK(p_cuMemcpyHtoD_v2(p.slope, slope.data(), 256));
        {
            int n = p.n, h = p.h, w = p.w, r = p.r;
            void* hidden[] = {&p.in, &p.w_ref, &p.bias, &p.slope, &p.ref, &n, &h, &w};
            void* last[] = {&p.in, &p.w_ref, &p.bias, &p.image, &p.ref, &n, &h, &w, &r};
            CK(p_cuLaunchKernel(p.r ? ref_last : ref_conv, (unsigned)((p.out_vals + 255) / 256), 1, 1, 256, 1, 1, 0,
                                nullptr, p.r ? last : hidden, nullptr));
            CK(p_cuCtxSynchronize());
        }
        std::vector<float> expect(p.out_vals);
        CK(p_cuMemcpyDtoH_v2(expect.data(), p.ref, p.out_vals * 4));
        double ref_sq = 0;
        for (float v : expect) ref_sq += (double)v * v;
        std::vector<uint16_t> got(p.out_vals);
        for (auto& v : variants) {
            if (v.r != p.r) continue;
            CK(p_cuMemsetD16_v2(p.out, 0x7e00, p.out_vals));  // poison: NaN where nothing was written
            launch(v, p, sms);
            CUresult r = p_cuCtxSynchronize();
            if (r != CUDA_SUCCESS) {
                const char* n = "?";
                p_cuGetErrorName(r, &n);
                printf("%dx%dx%d %-34s LAUNCH FAILED: %s\n", p.n, p.w, p.h, v.name.c_str(), n);
                return 1;
            }
            CK(p_cuMemcpyDtoH_v2(got.data(), p.out, p.out_vals * 2));
            double err_sq = 0, max_abs = 0;
            size_t unwritten = 0;
            for (size_t i = 0; i < p.out_vals; ++i) {
                float g = h2f(got[i]);
                if (std::isnan(g)) { ++unwritten; continue; }
                double e = (double)g - expect[i];
                err_sq += e * e;
                max_abs = std::max(max_abs, std::fabs(e));
            }
            double rel = std::sqrt(err_sq / std::max(ref_sq, 1e-30));
            bool ok = unwritten == 0 && rel < 2e-3;
            all_ok = all_ok && ok;
            char line[512];
            snprintf(line, sizeof line, "%4dx%-4d n=%d r=%d %-34s rel_l2 %.2e max_abs %.2e unwritten %zu %s", p.w, p.h,
                     p.n, p.r, v.name.c_str(), rel, max_abs, unwritten, ok ? "ok" : "WRONG");
            if (cs.timed && ok) {
                CUevent a, b;
                CK(p_cuEventCreate(&a, 0));
                CK(p_cuEventCreate(&b, 0));
                for (int i = 0; i < 5; ++i) launch(v, p, sms);
                CK(p_cuEventRecord(a, nullptr));
                for (int i = 0; i < iterations; ++i) launch(v, p, sms);
                CK(p_cuEventRecord(b, nullptr));
                CK(p_cuEventSynchronize(b));
                float ms;
                CK(p_cuEventElapsedTime(&ms, a, b));
                ms /= iterations;
                double tflops = 2.0 * px * 64 * (p.r ? 3 * p.r * p.r : 64) * 9 / (ms * 1e-3) / 1e12;
                char t[128];
                snprintf(t, sizeof t, "  %.4f ms  %.0f TFLOP/s (useful)", ms, tflops);
                strncat(line, t, sizeof line - strlen(line) - 1);
            }
            printf("%s\n", line);
            fflush(stdout);
            table.push_back(line);
        }
        for (CUdeviceptr d : {p.in, p.out, p.ref, p.image, p.w_ref, p.w_sm90, p.w_base, p.bias, p.slope})
            p_cuMemFree_v2(d);
    }
    printf("\n== summary (%s)\n", all_ok ? "all correct" : "SOME WRONG");
    for (auto& l : table) printf("%s\n", l.c_str());
    return all_ok ? 0 : 1;
}
