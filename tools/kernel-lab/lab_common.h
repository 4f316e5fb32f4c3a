// SPDX-License-Identifier: MPL-2.0
// What the kernel labs share: the CUDA driver and NVRTC opened at run time (the labs build with the CUDA headers
// only), error checks, NVRTC compilation exactly as the engine does it, fp16 on the host, device allocation.
#pragma once
#include <cuda.h>
#include <dlfcn.h>
#include <nvrtc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

// ---- run-time loaded driver and NVRTC ---------------------------------------------------------------------------
#define DRIVER(X)                                                                                                     \
    X(cuInit) X(cuDeviceGet) X(cuDevicePrimaryCtxRetain) X(cuCtxSetCurrent) X(cuModuleLoadData) X(cuModuleGetFunction) \
    X(cuFuncSetAttribute) X(cuFuncGetAttribute) X(cuMemAlloc_v2) X(cuMemFree_v2) X(cuMemcpyHtoD_v2)                  \
    X(cuMemcpyDtoH_v2) X(cuMemsetD16_v2) X(cuLaunchKernel) X(cuEventCreate) X(cuEventRecord) X(cuEventSynchronize)   \
    X(cuEventElapsedTime) X(cuCtxSynchronize) X(cuTensorMapEncodeTiled) X(cuDeviceGetAttribute) X(cuGetErrorName)    \
    X(cuDeviceGetName) X(cuDriverGetVersion) X(cuEventQuery)
#define NVRTC(X)                                                                                                    \
    X(nvrtcCreateProgram) X(nvrtcCompileProgram) X(nvrtcGetProgramLogSize) X(nvrtcGetProgramLog) X(nvrtcGetPTXSize) \
    X(nvrtcGetPTX) X(nvrtcDestroyProgram) X(nvrtcVersion)

#define DECLARE(name) static decltype(&name) p_##name;
DRIVER(DECLARE)
NVRTC(DECLARE)

static void load_libraries() {
    void* cu = dlopen("libcuda.so.1", RTLD_NOW);
    void* rtc = dlopen("libnvrtc.so.13", RTLD_NOW);
    if (!cu || !rtc) {
        fprintf(stderr, "cannot open libcuda.so.1 / libnvrtc.so.13: %s\n", dlerror());
        exit(1);
    }
#define RESOLVE_CU(name)                                                 \
    p_##name = (decltype(&name))dlsym(cu, #name);                        \
    if (!p_##name) { fprintf(stderr, "missing %s\n", #name); exit(1); }
#define RESOLVE_RTC(name)                                                \
    p_##name = (decltype(&name))dlsym(rtc, #name);                       \
    if (!p_##name) { fprintf(stderr, "missing %s\n", #name); exit(1); }
    DRIVER(RESOLVE_CU)
    NVRTC(RESOLVE_RTC)
}

#define CK(call)                                                                          \
    do {                                                                                  \
        CUresult r_ = (call);                                                             \
        if (r_ != CUDA_SUCCESS) {                                                         \
            const char* n_ = "?";                                                         \
            p_cuGetErrorName(r_, &n_);                                                    \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, n_);     \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

static std::string read_file(const std::string& path) {
    std::ifstream f(path);
    if (!f) {
        fprintf(stderr, "cannot read %s\n", path.c_str());
        exit(1);
    }
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

static CUmodule compile(const std::string& source, const char* name, const char* arch, bool fmad = true) {
    nvrtcProgram prog;
    p_nvrtcCreateProgram(&prog, source.c_str(), name, 0, nullptr, nullptr);
    std::string a = std::string("--gpu-architecture=") + arch;
    const char* opts[] = {a.c_str(), "-std=c++17", fmad ? "--fmad=true" : "--fmad=false"};
    nvrtcResult r = p_nvrtcCompileProgram(prog, 3, opts);
    size_t n;
    p_nvrtcGetProgramLogSize(prog, &n);
    std::string log(n, '\0');
    p_nvrtcGetProgramLog(prog, log.data());
    if (r != NVRTC_SUCCESS) {
        fprintf(stderr, "NVRTC %s (%s) failed:\n%s\n", name, arch, log.c_str());
        exit(1);
    }
    p_nvrtcGetPTXSize(prog, &n);
    std::string ptx(n, '\0');
    p_nvrtcGetPTX(prog, ptx.data());
    p_nvrtcDestroyProgram(&prog);
    CUmodule m;
    CK(p_cuModuleLoadData(&m, ptx.c_str()));
    return m;
}

// ---- fp16 on the host --------------------------------------------------------------------------------------------
static uint16_t f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xff, m = x & 0x7fffff;
    if (e == 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
    int exp = (int)e - 127 + 15;
    if (exp >= 31) return sign | 0x7c00;
    if (exp <= 0) {
        if (exp < -10) return sign;
        m |= 0x800000;
        int shift = 14 - exp;
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) ++h;
        return sign | h;
    }
    uint32_t h = ((uint32_t)exp << 10) | (m >> 13), rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
    return sign | h;
}
static float h2f(uint16_t h) {
    uint32_t sign = (h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, x;
    if (e == 0) {
        if (m == 0) {
            x = sign;
        } else {
            int s = -1;
            do { ++s; m <<= 1; } while (!(m & 0x400));
            x = sign | ((uint32_t)(127 - 15 - s) << 23) | ((m & 0x3ff) << 13);
        }
    } else if (e == 31) {
        x = sign | 0x7f800000 | (m << 13);
    } else {
        x = sign | ((e - 15 + 127) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static CUdeviceptr alloc(size_t bytes) {
    CUdeviceptr p;
    CK(p_cuMemAlloc_v2(&p, bytes));
    return p;
}

// Opens the libraries, makes device 0's primary context current and prints what runs the lab; returns the
// multiprocessor count.
static int init_device() {
    load_libraries();
    CK(p_cuInit(0));
    CUdevice dev;
    CK(p_cuDeviceGet(&dev, 0));
    CUcontext ctx;
    CK(p_cuDevicePrimaryCtxRetain(&ctx, dev));
    CK(p_cuCtxSetCurrent(ctx));
    char name[256];
    p_cuDeviceGetName(name, sizeof name, dev);
    int sms, drv, rmaj, rmin;
    p_cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
    p_cuDriverGetVersion(&drv);
    p_nvrtcVersion(&rmaj, &rmin);
    printf("device %s, %d SMs, driver API %d, NVRTC %d.%d\n", name, sms, drv, rmaj, rmin);
    return sms;
}
