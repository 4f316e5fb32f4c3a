// SPDX-License-Identifier: MPL-2.0
// What the CPU emulations of CUDA sources share (kernel_emulation.cpp, fused_output_emulation.cpp): the CUDA
// built-ins both use, written out (fp16 conversions by the CPU's F16C instructions, which round to nearest even as
// cvt.rn does; multiplies and adds rounded on their own, as the harnesses are compiled with -ffp-contract=off), and
// reading a case's arrays.
#pragma once
#include <immintrin.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#define __device__
#define __forceinline__ inline
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline unsigned short emulated_to_half_bits(float f) { return _cvtss_sh(f, 0); }
inline float emulated_from_half_bits(unsigned short h) { return _cvtsh_ss(h); }

// The array `dir`/`name` of raw `T`s (exits with a message when it is missing).
template <class T>
std::vector<T> rd(const std::string& dir, const std::string& name) {
    std::ifstream f(dir + "/" + name, std::ios::binary | std::ios::ate);
    if (!f) {
        fprintf(stderr, "missing %s/%s\n", dir.c_str(), name.c_str());
        exit(2);
    }
    const size_t n = f.tellg();
    f.seekg(0);
    std::vector<T> v(n / sizeof(T));
    f.read((char*)v.data(), n);
    return v;
}
