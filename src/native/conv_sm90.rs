// SPDX-License-Identifier: MPL-2.0
//! The Rust side of `kernels/conv_sm90.cu`: the Hopper convolutions over channel slices of NHWC buffers that run a
//! lowered [`super::program::Program`], their weights packed as the kernels' shared-memory images of A, tensor maps
//! of input slices, and the launches (the convolution, the input's repacking, nearest upsampling).

use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg,
};

use super::hopper::{CUtensorMapSwizzle, TensorMap};
use crate::cuda::GpuDevice;
use crate::error::{Error, Result};
use crate::frame::Size;

/// Output tile of the kernels and the threads of a block (keep in step with conv_sm90.cu).
const TILE_COLS: u32 = 128;
const TILE_ROWS: u32 = 4;
const THREADS: u32 = 384;
/// Input channels of one pipeline stage.
pub(super) const CHUNK: usize = 32;
/// Channels the model input is repacked to (one chunk).
pub(super) const INPUT_CHANNELS: usize = CHUNK;

/// `Layout<COUT>::SMEM` of the kernels: three halo slots of 50176 bytes, weight slots rounded to 1 KiB (Cout 64 four
/// of one k-step's A, Cout 32 three of a chunk's), two mbarriers per slot and 1 KiB of alignment room; the epilogue
/// is staged in a halo slot.
const fn smem_bytes(cout: usize) -> usize {
    let (a, weights): (usize, usize) = if cout == 64 { (18432, 4) } else { (25088, 3) };
    let halos = 3;
    halos * 50176 + weights * a.div_ceil(1024) * 1024 + 2 * (halos + weights) * 8 + 1024
}

/// Halves of packed A per 32-channel chunk: Cout 64, `[k-step][tap][K-half][8 row groups][8][8]` (the kernel copies
/// one k-step at a time); Cout 32, the weight slices only, `[kx][k-step][K-half][3 ky][4 row groups][8][8]` (the zero
/// groups live in shared memory).
const fn chunk_halves(cout: usize) -> usize {
    if cout == 64 { 18432 } else { 9216 }
}

/// `struct ConvShape` in the kernels.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct ConvShape {
    n: i32,
    h: i32,
    w: i32,
    tiles_x: i32,
    strips: i32,
    tiles: i32,
    chunks: i32,
}

// SAFETY: `#[repr(C)]` plain integers, laid out as `struct ConvShape` in conv_sm90.cu.
unsafe impl DeviceRepr for ConvShape {}

/// `struct ConvEpilogue` in the kernels: device addresses as the kernel reads them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct ConvEpilogue {
    bias: u64,
    out: u64,
    out_stride: i32,
    out_channels: i32,
    planar: i64,
    slope: f32,
    alpha: f32,
    res1: u64,
    res1_stride: i32,
    beta: f32,
    res2: u64,
    res2_stride: i32,
    gamma: f32,
}

// SAFETY: `#[repr(C)]` addresses, integers and floats, laid out as `struct ConvEpilogue` in conv_sm90.cu (8-byte
// fields on 8-byte offsets in both).
unsafe impl DeviceRepr for ConvEpilogue {}

/// The kernel (by its output rows) that computes `cout` output channels: 32 (row pairs) or 64.
pub(super) fn kernel_rows(cout: usize) -> Option<usize> {
    match cout {
        1..=32 => Some(32),
        33..=64 => Some(64),
        _ => None,
    }
}

/// A 3×3 convolution's weights (`[out][in][3][3]`, `cin` input channels, `cout` ≤ 64 outputs) as the kernels copy
/// them, chunk after chunk of 32 input channels; input channels beyond `cin` up to the next chunk are zero.
pub(super) fn pack_weights(weights: &[f32], cin: usize, cout: usize) -> Vec<u16> {
    let rows = kernel_rows(cout).expect("at most 64 output channels");
    let chunks = cin.div_ceil(CHUNK);
    let per_chunk = chunk_halves(rows);
    let mut a = vec![0u16; chunks * per_chunk];
    for co in 0..cout {
        for ci in 0..cin {
            let (c, ks, kh, e) = (ci / 32, (ci % 32) / 16, (ci % 16) / 8, ci % 8);
            for ky in 0..3 {
                for kx in 0..3 {
                    let at = if rows == 64 {
                        let tap = ky * 3 + kx;
                        ((((ks * 9 + tap) * 2 + kh) * 8 + co / 8) * 8 + co % 8) * 8 + e
                    } else {
                        // 12 row groups per K-half slice: W(ky 2) at groups 0-3, W(ky 1) 4-7, W(ky 0) 8-11
                        let group = (2 - ky) * 4 + co / 8;
                        ((((kx * 2 + ks) * 2 + kh) * 12 + group) * 8 + co % 8) * 8 + e
                    };
                    let w = weights[((co * cin + ci) * 3 + ky) * 3 + kx];
                    a[c * per_chunk + at] = half::f16::from_f32(w).to_bits();
                }
            }
        }
    }
    a
}

/// A slice of an NHWC buffer as a kernel sees it: the buffer, the first channel, the channels per pixel.
#[derive(Clone, Copy)]
pub(super) struct SliceRef<'a> {
    pub buffer: &'a CudaSlice<u16>,
    pub offset: usize,
    pub stride: usize,
}

impl SliceRef<'_> {
    fn address(&self, stream: &CudaStream) -> u64 {
        let (base, _guard) = self.buffer.device_ptr(stream);
        base + 2 * self.offset as u64
    }
}

/// The tensor map of the `channels` input channels of `input` for `batch` images of `size`: boxes of one chunk of
/// the halo (32 channels × 130 × 6 pixels), 64-byte swizzle, zeros outside (the convolution's padding).
pub(super) fn input_map(
    input: SliceRef<'_>,
    channels: usize,
    stream: &CudaStream,
    batch: u32,
    size: Size,
) -> Result<TensorMap> {
    let (w, h) = (size.width as u64, size.height as u64);
    let needed = (batch as u64 * h * w) as usize * input.stride;
    if input.buffer.len() < needed || input.offset + channels > input.stride {
        return Err(Error::Usage(format!("an input slice outside its buffer for {batch} × {size}")));
    }
    if !input.offset.is_multiple_of(8) || !input.stride.is_multiple_of(8) || !channels.is_multiple_of(CHUNK) {
        return Err(Error::Usage("input slices start and stride at multiples of 8 channels, 32 per chunk".into()));
    }
    let pitch = input.stride as u64 * 2;
    let dims = [channels as u64, w, h, batch as u64];
    let strides = [pitch, pitch * w, pitch * w * h];
    let boxes = [CHUNK as u32, TILE_COLS + 2, TILE_ROWS + 2, 1];
    // SAFETY: the slice's address lies in `input.buffer`, which holds `dims` at `strides` (checked above); the
    // caller keeps the buffer as long as the map.
    unsafe {
        TensorMap::fp16_4d(input.address(stream), dims, strides, boxes, CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_64B)
    }
}

/// A convolution's epilogue as [`ConvKernels::conv`] takes it.
pub(super) struct Epilogue<'a> {
    pub bias: &'a CudaSlice<f32>,
    pub slope: f32,
    pub alpha: f32,
    /// Up to two residuals with their factors (Cout 64 only).
    pub residuals: &'a [(SliceRef<'a>, f32)],
}

/// Where a convolution writes.
pub(super) enum Output<'a> {
    /// A slice of an NHWC buffer: possibly the buffer the input or a residual is read from (a dense block writes
    /// its next channels beside the ones it reads), never channels that are read. Written through its address,
    /// like the buffers read through the tensor map: one stream orders every access.
    Slice(SliceRef<'a>),
    /// Planar fp16 `[batch][cout][h][w]` (the model output; Cout ≤ 32).
    Planar(&'a mut CudaSlice<u16>),
}

/// The kernels of one context.
pub(super) struct ConvKernels {
    conv32: CudaFunction,
    conv64: CudaFunction,
    planar_to_nhwc32: CudaFunction,
    nearest: CudaFunction,
    blocks: u32,
}

impl ConvKernels {
    /// The kernels, when `device` runs them (compute capability 9.0 exactly: sm_90a code; enough shared memory), or
    /// why not.
    pub(super) fn load(device: &GpuDevice) -> Result<Self> {
        let (major, minor) = device.compute_capability();
        if (major, minor) != (9, 0) {
            return Err(Error::unavailable(
                "native dense kernels",
                format!("they are Hopper (sm_90a) code; this GPU has compute capability {major}.{minor}"),
            ));
        }
        let shared = device.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?;
        let needed = smem_bytes(32).max(smem_bytes(64));
        if (shared as usize) < needed {
            return Err(Error::unavailable(
                "native dense kernels",
                format!(
                    "they need {} KiB of shared memory per block, this GPU allows {}",
                    needed / 1024,
                    shared / 1024
                ),
            ));
        }
        let module = device.module(&super::kernels::CONV_SM90)?;
        let function = |name: &str| module.function(name).cloned();
        let (conv32, conv64) = (function("conv32_sm90")?, function("conv64_sm90")?);
        for (f, cout) in [(&conv32, 32), (&conv64, 64)] {
            f.set_attribute(
                CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                smem_bytes(cout) as i32,
            )
            .map_err(Error::cuda("cuFuncSetAttribute"))?;
        }
        Ok(Self {
            conv32,
            conv64,
            planar_to_nhwc32: function("planar_to_nhwc32")?,
            nearest: function("nearest_nhwc")?,
            blocks: device.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32,
        })
    }

    /// Queues one convolution: the input read through `map` (made by [`input_map`] for `input`, `cin` channels),
    /// `weights` packed by [`pack_weights`] for `cout` outputs, into `output`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv(
        &self,
        stream: &CudaStream,
        (input, map, cin): (&CudaSlice<u16>, &TensorMap, usize),
        weights: &CudaSlice<u16>,
        cout: usize,
        epilogue: &Epilogue<'_>,
        output: Output<'_>,
        batch: u32,
        size: Size,
    ) -> Result<()> {
        let rows = kernel_rows(cout).ok_or_else(|| Error::Usage(format!("{cout} output channels")))?;
        if cin == 0 {
            // the kernels release the last chunk's slots after the tile: a tile without chunks has none
            return Err(Error::Usage("a convolution without input channels".into()));
        }
        let chunks = cin.div_ceil(CHUNK);
        if weights.len() < chunks * chunk_halves(rows) || epilogue.bias.len() < rows {
            return Err(Error::Usage("convolution weights or bias of the wrong size".into()));
        }
        if epilogue.residuals.len() > 2 || (rows == 32 && !epilogue.residuals.is_empty()) {
            return Err(Error::Usage("residuals are taken by the 64-row kernel only, at most two".into()));
        }
        let (w, h) = (size.width, size.height);
        let (tiles_x, strips) = (w.div_ceil(TILE_COLS), h.div_ceil(TILE_ROWS));
        let tiles = batch * tiles_x * strips;
        let shape = ConvShape {
            n: batch as i32,
            h: h as i32,
            w: w as i32,
            tiles_x: tiles_x as i32,
            strips: strips as i32,
            tiles: tiles as i32,
            chunks: chunks as i32,
        };
        let pixels = batch as usize * size.pixels();
        let (bias, _bias_guard) = epilogue.bias.device_ptr(stream);
        let residual = |i: usize| epilogue.residuals.get(i);
        for (r, _) in epilogue.residuals {
            if r.buffer.len() < pixels * r.stride
                || r.offset + cout > r.stride
                || r.offset % 8 != 0
                || r.stride % 8 != 0
            {
                return Err(Error::Usage("a residual slice outside its buffer or not 8-channel aligned".into()));
            }
        }
        let res = |i: usize| residual(i).map_or((0, 0, 0.0), |(r, f)| (r.address(stream), r.stride as i32, *f));
        let ((res1, res1_stride, beta), (res2, res2_stride, gamma)) = (res(0), res(1));
        // the kernel writes the output through its address: the access guard is held across the launch
        let (_read_guard, _write_guard);
        let (out, out_stride, planar) = match output {
            Output::Slice(o) => {
                if o.buffer.len() < pixels * o.stride
                    || o.offset + cout > o.stride
                    || o.offset % 8 != 0
                    || !cout.is_multiple_of(8)
                {
                    return Err(Error::Usage("an output slice outside its buffer or not 8-channel aligned".into()));
                }
                let (address, guard) = o.buffer.device_ptr(stream);
                _read_guard = guard;
                (address + 2 * o.offset as u64, o.stride as i32, 0i64)
            }
            Output::Planar(o) => {
                if rows != 32 || o.len() < pixels * cout {
                    return Err(Error::Usage("a planar output of at most 32 channels, sized for the batch".into()));
                }
                let (address, guard) = o.device_ptr_mut(stream);
                _write_guard = guard;
                (address, 0, size.pixels() as i64)
            }
        };
        let e = ConvEpilogue {
            bias,
            out,
            out_stride,
            out_channels: cout as i32,
            planar,
            slope: epilogue.slope,
            alpha: epilogue.alpha,
            res1,
            res1_stride,
            beta,
            res2,
            res2_stride,
            gamma,
        };
        // the kernel reads the input through the map and the residuals through their addresses: their access
        // guards are held across the launch
        let (_, _input_guard) = input.device_ptr(stream);
        let _residual_guards: Vec<_> = epilogue.residuals.iter().map(|(r, _)| r.buffer.device_ptr(stream).1).collect();
        let function = if rows == 64 { &self.conv64 } else { &self.conv32 };
        let mut args = stream.launch_builder(function);
        args.arg(map).arg(weights).arg(&e).arg(&shape);
        let config = LaunchConfig {
            grid_dim: (self.blocks.min(tiles), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: smem_bytes(rows) as u32,
        };
        // SAFETY: the argument list matches conv{32,64}_sm90; the map describes `cin` channels of a live buffer for
        // this batch and size, the weights hold every chunk's A image, the bias `rows` values, and every address in
        // the epilogue lies in a live buffer with the checked extent.
        unsafe { args.launch(config) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Queues the repacking of the planar fp16 model input `[batch][3][h][w]` into `output` (NHWC, 32 channels,
    /// channels 3–31 zero).
    pub(super) fn pack_input(
        &self,
        stream: &CudaStream,
        input: &CudaSlice<u16>,
        output: &mut CudaSlice<u16>,
        batch: u32,
        size: Size,
    ) -> Result<()> {
        let pixels = batch as usize * size.pixels();
        if input.len() < 3 * pixels || output.len() < INPUT_CHANNELS * pixels {
            return Err(Error::Usage("input tensors too small for the batch".into()));
        }
        let (n, h, w) = (batch as i32, size.height as i32, size.width as i32);
        let mut args = stream.launch_builder(&self.planar_to_nhwc32);
        args.arg(input).arg(output).arg(&n).arg(&h).arg(&w);
        let config = LaunchConfig::for_num_elems(pixels as u32);
        // SAFETY: the argument list matches planar_to_nhwc32; both tensors hold `pixels` pixels (checked).
        unsafe { args.launch(config) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Queues nearest-neighbour upsampling by `factor` of `channels` channels of `input` (`size` per image) into
    /// `output` (`size × factor`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nearest(
        &self,
        stream: &CudaStream,
        input: SliceRef<'_>,
        output: SliceRef<'_>,
        channels: usize,
        factor: u32,
        batch: u32,
        size: Size,
    ) -> Result<()> {
        let pixels = batch as usize * size.pixels();
        let out_pixels = pixels * (factor * factor) as usize;
        let aligned = [input.offset, input.stride, output.offset, output.stride, channels].iter().all(|v| v % 8 == 0);
        if !aligned
            || input.buffer.len() < pixels * input.stride
            || output.buffer.len() < out_pixels * output.stride
            || input.offset + channels > input.stride
            || output.offset + channels > output.stride
        {
            return Err(Error::Usage("an upsampling slice outside its buffer or not 8-channel aligned".into()));
        }
        let in_address = input.address(stream);
        let (_, _in_guard) = input.buffer.device_ptr(stream);
        let out_address = output.address(stream);
        let (_, _out_guard) = output.buffer.device_ptr(stream);
        let (ins, outs, c) = (input.stride as i32, output.stride as i32, channels as i32);
        let (n, h, w, f) = (batch as i32, size.height as i32, size.width as i32, factor as i32);
        let mut args = stream.launch_builder(&self.nearest);
        args.arg(&in_address).arg(&ins).arg(&out_address).arg(&outs).arg(&c);
        args.arg(&n).arg(&h).arg(&w).arg(&f);
        let threads = out_pixels * channels / 8;
        let config = LaunchConfig::for_num_elems(u32::try_from(threads).map_err(|_| {
            Error::InvalidConfig(format!("upsampling {batch} × {size} by {factor} is out of the kernel's range"))
        })?);
        // SAFETY: the argument list matches nearest_nhwc; both slices lie in live buffers with the checked extents.
        unsafe { args.launch(config) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_memory_matches_the_kernels_layout() {
        // conv_sm90.cu: Layout<64>::SMEM 225392, Layout<32>::SMEM 228448 (the opt-in limit of sm_90 is 232448)
        assert_eq!(smem_bytes(64), 225392);
        assert_eq!(smem_bytes(32), 228448);
    }

    #[test]
    fn packed_weights_put_every_tap_once_and_pad_with_zeros() {
        for (cin, cout) in [(64, 32), (192, 64), (3, 64), (64, 3), (96, 48)] {
            let weights: Vec<f32> = (0..cout * cin * 9).map(|i| 1.0 + (i % 1000) as f32 / 1000.0).collect();
            let a = pack_weights(&weights, cin, cout);
            let rows = kernel_rows(cout).unwrap();
            assert_eq!(a.len(), cin.div_ceil(32) * chunk_halves(rows));
            let nonzero = a.iter().filter(|&&v| v != 0).count();
            assert_eq!(nonzero, cout * cin * 9, "{cin} -> {cout}");
            let sum: f64 = a.iter().map(|&v| half::f16::from_bits(v).to_f64()).sum();
            let expected: f64 = weights.iter().map(|&w| half::f16::from_f32(w).to_f64()).sum();
            assert!((sum - expected).abs() < 1e-6 * expected, "{cin} -> {cout}");
        }
    }

    /// Where `pack_weights` puts the one non-zero weight (output `co`, input `ci`, tap `ky`, `kx`) of a `cin` → `cout`
    /// convolution, with the input channel's chunk, k-step, K-half and element.
    fn packed_position(cin: usize, cout: usize, (co, ci, ky, kx): (usize, usize, usize, usize)) -> Option<usize> {
        let mut weights = vec![0.0f32; cout * cin * 9];
        weights[((co * cin + ci) * 3 + ky) * 3 + kx] = 1.0;
        pack_weights(&weights, cin, cout).iter().position(|&v| v != 0)
    }

    /// Chunk, k-step, K-half and element of input channel `ci`.
    fn split(ci: usize) -> (usize, usize, usize, usize) {
        (ci / 32, (ci % 32) / 16, (ci % 16) / 8, ci % 8)
    }

    #[test]
    fn cout64_weights_are_one_k_step_after_the_other() {
        // Cout 64: chunk ci / 32, then k-step, tap, K-half, output channel (the kernel copies one k-step per part)
        let (co, ci, ky, kx) = (45, 83, 2, 1);
        let (c, ks, kh, e) = split(ci);
        let at = c * 18432 + ks * 9216 + (((ky * 3 + kx) * 2 + kh) * 64 + co) * 8 + e;
        assert_eq!(packed_position(96, 64, (co, ci, ky, kx)), Some(at));
    }

    #[test]
    fn row_pair_weights_sit_where_the_kernel_reads_them() {
        // Cout 32: output channel co, input ci, ky, kx in chunk ci / 32, slice (kx, ks, kh), group (2 - ky) * 4 + co / 8
        let (co, ci, ky, kx) = (13, 41, 0, 2);
        let (c, ks, kh, e) = split(ci);
        let at = c * 9216 + ((((kx * 2 + ks) * 2 + kh) * 12 + (2 - ky) * 4 + co / 8) * 8 + co % 8) * 8 + e;
        assert_eq!(packed_position(64, 32, (co, ci, ky, kx)), Some(at));
    }
}
