// SPDX-License-Identifier: MPL-2.0
//! The Rust side of `kernels/conv_sm90.cu`: the Hopper convolutions over channel slices of NHWC buffers that run a
//! lowered [`super::program::Program`]: tensor maps of input slices and the launches; which kernel takes a
//! convolution and its packed weights are in `weights`, the steps that only move data in `super::nhwc_layout`.

use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg,
};

use super::hopper::{CUtensorMapSwizzle, TensorMap};
use crate::cuda::GpuDevice;
use crate::error::{Error, Result};
use crate::frame::Size;

mod weights;

pub(super) use weights::ConvKernel;

/// Output tile of the kernels and the threads of a block (keep in step with conv_sm90.cu).
const TILE_COLS: u32 = 128;
const TILE_ROWS: u32 = 4;
const THREADS: u32 = 384;
/// Input channels of one pipeline stage.
pub(super) const CHUNK: usize = 32;
/// Channels the model input is repacked to (one chunk).
pub(super) const INPUT_CHANNELS: usize = CHUNK;

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

/// A slice of an NHWC buffer as a kernel sees it: the buffer, the first channel, the channels per pixel.
#[derive(Clone, Copy)]
pub(super) struct SliceRef<'a> {
    pub buffer: &'a CudaSlice<u16>,
    pub offset: usize,
    pub stride: usize,
}

impl SliceRef<'_> {
    pub(super) fn address(&self, stream: &CudaStream) -> u64 {
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
    /// Up to two residuals with their factors ([`ConvKernel::Rows64`] only).
    pub residuals: &'a [(SliceRef<'a>, f32)],
}

/// Where a convolution writes.
pub(super) enum Output<'a> {
    /// A slice of an NHWC buffer: possibly the buffer the input or a residual is read from (a dense block writes
    /// its next channels beside the ones it reads), never channels that are read. Written through its address,
    /// like the buffers read through the tensor map: one stream orders every access.
    Slice(SliceRef<'a>),
    /// Planar fp16 `[batch][cout][h][w]` (the model output; Cout ≤ 8).
    Planar(&'a mut CudaSlice<u16>),
}

/// The kernels of one context.
pub(super) struct ConvKernels {
    /// One per [`ConvKernel::ALL`].
    convs: [CudaFunction; 5],
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
        let needed = ConvKernel::ALL.map(ConvKernel::smem_bytes).into_iter().max().unwrap_or(0);
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
        let mut convs = Vec::new();
        for kernel in ConvKernel::ALL {
            let f = module.function(kernel.function())?.clone();
            let bytes = kernel.smem_bytes() as i32;
            f.set_attribute(CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes)
                .map_err(Error::cuda("cuFuncSetAttribute"))?;
            convs.push(f);
        }
        Ok(Self {
            convs: convs.try_into().expect("one function per kernel"),
            blocks: device.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32,
        })
    }

    /// Queues one convolution on `kernel`: the input read through `map` (made by [`input_map`] for `input`, `cin`
    /// channels, of `size` per image), `weights` packed by [`ConvKernel::pack`] for `cout` outputs, into `output`
    /// (twice `size` for [`ConvKernel::Rows64Up2`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv(
        &self,
        stream: &CudaStream,
        kernel: ConvKernel,
        (input, map, cin): (&CudaSlice<u16>, &TensorMap, usize),
        weights: &CudaSlice<u16>,
        cout: usize,
        epilogue: &Epilogue<'_>,
        output: Output<'_>,
        batch: u32,
        size: Size,
    ) -> Result<()> {
        let upsample = if kernel == ConvKernel::Rows64Up2 { 2 } else { 1 };
        let pointwise = kernel == ConvKernel::Rows64Pointwise;
        let planar = matches!(output, Output::Planar(_));
        match ConvKernel::choose(cout, epilogue.residuals.len(), (upsample, pointwise), planar) {
            Ok(k) if k == kernel => {}
            Ok(k) => return Err(Error::Usage(format!("{kernel:?} for a convolution that {k:?} runs"))),
            Err(why) => return Err(Error::Usage(format!("a convolution no kernel takes: {why}"))),
        }
        if cin == 0 {
            // the kernels release the last chunk's slots after the tile: a tile without chunks has none
            return Err(Error::Usage("a convolution without input channels".into()));
        }
        let chunks = cin.div_ceil(CHUNK);
        let phases = kernel.phases();
        if weights.len() < phases * chunks * kernel.chunk_halves() || epilogue.bias.len() < kernel.rows() {
            return Err(Error::Usage("convolution weights or bias of the wrong size".into()));
        }
        let (w, h) = (size.width, size.height);
        let (tiles_x, strips) = (w.div_ceil(TILE_COLS), h.div_ceil(TILE_ROWS));
        // with the input upsampled, each input tile is four: one per phase
        let tiles = batch * tiles_x * strips * phases as u32;
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
        let out_pixels = pixels * phases;
        let (bias, _bias_guard) = epilogue.bias.device_ptr(stream);
        let residual = |i: usize| epilogue.residuals.get(i);
        for (r, _) in epilogue.residuals {
            if r.buffer.len() < out_pixels * r.stride
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
                if o.buffer.len() < out_pixels * o.stride
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
                if o.len() < pixels * cout {
                    return Err(Error::Usage("a planar output too small for the batch".into()));
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
        let function = &self.convs[ConvKernel::ALL.iter().position(|&k| k == kernel).expect("every kernel")];
        let mut args = stream.launch_builder(function);
        args.arg(map).arg(weights).arg(&e).arg(&shape);
        let config = LaunchConfig {
            grid_dim: (self.blocks.min(tiles), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: kernel.smem_bytes() as u32,
        };
        // SAFETY: the argument list matches every conv*_sm90; the map describes `cin` channels of a live buffer for
        // this batch and size, the weights hold every chunk's (and phase's) image for `kernel`, the bias its rows,
        // and every address in the epilogue lies in a live buffer with the checked extent.
        unsafe { args.launch(config) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }
}
