// SPDX-License-Identifier: MPL-2.0
// The per-pixel output conversion of the Hopper last layer that writes frames (src/native/kernels/frame_out.cuh) run
// on the CPU, pixel by pixel and chroma row by chroma row as FrameEpilogue calls it, with the CUDA built-ins it uses
// written out (emulation.h). Compiled without contraction (-ffp-contract=off), with IEEE single precision. Driven by tests/fused_output_emulation.rs,
// which writes the cases (the last convolution's channels, the residual image, the expected frame made by the CPU
// path) and compiles this file with the header (frame_out.inc, common.cuh inlined, the PTX conversions swapped for the
// emulated ones); it prints one line per case and exits non-zero if any byte differs.
#include "emulation.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "frame_out.inc"

// Writes the frame of one case into planes at `pitch` (poisoned first: a sample left out shows) and returns how many
// bytes of the rows differ from the expected planes.
template <int R, class S>
size_t run(const std::string& dir, int w, int h, int pitch) {
    const std::vector<unsigned short> staged = rd<unsigned short>(dir, "staged");  // [h][w][3 R^2]
    const std::vector<unsigned short> image = rd<unsigned short>(dir, "image");    // [3][h][w]
    const std::vector<float> matrix = rd<float>(dir, "matrix");
    Affine3x4 from_rgb;
    memcpy(from_rgb.m, matrix.data(), sizeof from_rgb.m);
    const int ow = R * w, oh = R * h, bytes = (int)sizeof(typename S::T);
    // 16-byte aligned planes, so that rows at aligned pitches take the wide stores
    std::vector<unsigned char> storage[2];
    unsigned char* plane[2];
    const int rows[2] = {oh, oh / 2};
    for (int p = 0; p < 2; ++p) {
        storage[p].assign((size_t)pitch * rows[p] + 16, 0xA5);
        plane[p] = (unsigned char*)(((uintptr_t)storage[p].data() + 15) & ~(uintptr_t)15);
    }
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            const unsigned short* channels = &staged[((size_t)y * w + x) * 3 * R * R];
            const auto at = [&](int ch) { return channels[ch]; };
            float res[3];
            for (int c = 0; c < 3; ++c) res[c] = emulated_from_half_bits(image[((size_t)c * h + y) * w + x]);
            for (int cy = 0; cy < R / 2; ++cy) {
                const size_t col = (size_t)R * x * bytes;
                frame_pixel<R, S>(at, res, from_rgb, cy, plane[0] + (size_t)(R * y + 2 * cy) * pitch + col, pitch,
                                  plane[1] + (size_t)((R / 2) * y + cy) * pitch + col);
            }
        }
    }
    size_t differ = 0;
    for (int p = 0; p < 2; ++p) {
        const std::vector<unsigned char> expected = rd<unsigned char>(dir, "plane" + std::to_string(p));
        const size_t row = (size_t)ow * bytes;
        if (expected.size() != row * rows[p]) return (size_t)-1;
        for (int r = 0; r < rows[p]; ++r) {
            for (size_t i = 0; i < row; ++i) differ += plane[p][(size_t)r * pitch + i] != expected[r * row + i];
        }
    }
    return differ;
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s DIR CASES\n", argv[0]);
        return 2;
    }
    int failures = 0;
    for (int i = 0; i < atoi(argv[2]); ++i) {
        const std::string dir = std::string(argv[1]) + "/case" + std::to_string(i);
        std::ifstream meta(dir + "/meta");
        std::string label;
        int r = 0, p010 = 0, w = 0, h = 0, pitch = 0;
        meta >> r >> p010 >> w >> h >> pitch;
        std::getline(meta >> std::ws, label);
        size_t d = (size_t)-1;
        if (r == 2 && !p010) d = run<2, Nv12Samples>(dir, w, h, pitch);
        if (r == 2 && p010) d = run<2, P010Samples>(dir, w, h, pitch);
        if (r == 4 && !p010) d = run<4, Nv12Samples>(dir, w, h, pitch);
        if (r == 4 && p010) d = run<4, P010Samples>(dir, w, h, pitch);
        printf("%-60s %s (%zu bytes differ)\n", label.c_str(), d == 0 ? "OK" : "DIFFERENT", d);
        failures += d != 0;
    }
    return failures ? 1 : 0;
}
