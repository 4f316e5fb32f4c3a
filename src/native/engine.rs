// SPDX-License-Identifier: MPL-2.0
//! Running an [`SrvggGraph`] with our kernels (`kernels/srvgg.cu`, `kernels/srvgg_sm90.cu`) on one CUDA stream, into
//! the planar output tensor or (Hopper, shuffle 2 or 4) straight into an NV12 or P010 frame.

mod profile;

pub(super) use profile::time_launches;

use std::sync::Arc;

use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg};

use super::graph::{Conv3x3, CubicResize, FEATURES, SrvggGraph};
use super::hopper::{self, HopperKernels, TensorMap};
use crate::color::Affine3x4;
use crate::cuda::{DeviceFrameMut, GpuDevice, PlanarTensor, PlanarTensorMut};
use crate::engine::EngineMemory;
use crate::error::{Error, Result};
use crate::frame::{ElementType, PixelFormat, Size};
use crate::model::ModelInfo;

/// Output pixels per side of the convolution kernels' tile; threads per block.
const TILE: u32 = 16;
const CONV_THREADS: u32 = 256;
/// The tile plus its one-pixel halo, in pixels; bytes of one pixel's 64 fp16 channels.
const HALO_PIXELS: usize = 18 * 18;
const ROW_BYTES: usize = FEATURES * 2;

/// Dynamic shared memory of a convolution kernel with `nout` output channels: all nine taps of the weights, two
/// input tiles, bias and slopes.
fn shared_bytes(nout: usize) -> usize {
    9 * nout * ROW_BYTES + 2 * HALO_PIXELS * ROW_BYTES + 2 * nout * 4
}

/// `struct ConvShape` in the kernels.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct ConvShape {
    n: i32,
    h: i32,
    w: i32,
    tiles_x: i32,
    tiles_y: i32,
    tiles: i32,
}

// SAFETY: `#[repr(C)]` plain integers, laid out as `struct ConvShape` in srvgg.cu.
unsafe impl DeviceRepr for ConvShape {}

fn f16_bits(values: impl Iterator<Item = f32>) -> Vec<u16> {
    values.map(|v| half::f16::from_f32(v).to_bits()).collect()
}

/// Weights as the convolution kernels read them: `[tap][out (padded to nout)][64 in]` fp16.
fn pack_taps(conv: &Conv3x3, nout: usize) -> Vec<u16> {
    let mut packed = vec![0f32; 9 * nout * FEATURES];
    for co in 0..conv.out_channels {
        for ci in 0..FEATURES {
            for tap in 0..9 {
                packed[(tap * nout + co) * FEATURES + ci] = conv.weights[(co * FEATURES + ci) * 9 + tap];
            }
        }
    }
    f16_bits(packed.into_iter())
}

/// Taps (input channel, ky, kx) of the first layer, padded with zeros to its GEMM depth.
const FIRST_K: usize = 32;
/// Warps per block of the first layer's kernel.
const FIRST_WARPS: u32 = 4;

/// The first layer's weights as its kernel reads them: `[64 out][32 taps]` fp16, taps `c·9 + ky·3 + kx`, the last
/// five zero.
fn first_taps(conv: &Conv3x3) -> Vec<u16> {
    let taps = 3 * 9;
    let mut packed = vec![0f32; FEATURES * FIRST_K];
    for co in 0..FEATURES {
        packed[co * FIRST_K..co * FIRST_K + taps].copy_from_slice(&conv.weights[co * taps..(co + 1) * taps]);
    }
    f16_bits(packed.into_iter())
}

fn padded(values: &[f32], n: usize, fill: f32) -> Vec<f32> {
    let mut v = values.to_vec();
    v.resize(n, fill);
    v
}

/// Whether `device` can run the convolution kernels with `shared` bytes of shared memory per block.
fn check_device(device: &GpuDevice, shared: usize) -> Result<()> {
    let (major, minor) = device.compute_capability();
    if major < 8 {
        return Err(Error::unavailable(
            "native kernels",
            format!(
                "they need compute capability 8.0 or newer (tensor core mma, cp.async); this GPU has {major}.{minor}"
            ),
        ));
    }
    let available = device.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?;
    if (available as usize) < shared {
        return Err(Error::unavailable(
            "native kernels",
            format!(
                "they need {} KiB of shared memory per block; this GPU allows {} KiB",
                shared.div_ceil(1024),
                available / 1024
            ),
        ));
    }
    Ok(())
}

/// Whether `device` can run the native kernels at all.
pub fn device_support(device: &GpuDevice) -> Result<()> {
    check_device(device, shared_bytes(FEATURES))
}

/// One convolution's parameters in device memory.
struct Layer<W> {
    weights: CudaSlice<W>,
    bias: CudaSlice<f32>,
    slope: CudaSlice<f32>,
}

/// The tensors for one batch and input size.
struct Buffers {
    batch: u32,
    size: Size,
    /// The model input, planar fp16 `[batch, 3, h, w]` (written by the caller).
    input: CudaSlice<u16>,
    /// Activations, NHWC fp16 `[batch, h, w, 64]`, ping-ponged between layers.
    activations: [CudaSlice<u16>; 2],
    /// The pixel-shuffled output before the final resize, planar fp16 `[batch, 3, r·h, r·w]`.
    shuffled: Option<CudaSlice<u16>>,
    /// The model output, planar fp16 `[batch, 3, scale·h, scale·w]` (read by the caller).
    output: CudaSlice<u16>,
    /// TMA descriptors of the two activation buffers, for the Hopper kernels.
    maps: Option<[TensorMap; 2]>,
}

/// The Hopper kernels with the weights packed for them.
struct Hopper {
    kernels: HopperKernels,
    hidden: Vec<CudaSlice<u16>>,
    last: CudaSlice<u16>,
    /// The last layer's bias padded to the kernels' 64 rows.
    last_bias: CudaSlice<f32>,
}

/// Which kernels run the 3×3 convolutions over 64 channels: the Hopper (wgmma) ones where the GPU has them, unless
/// `VFUPSCALE_NATIVE_KERNELS=mma` asks for the mma.sync ones (to compare the two on a Hopper GPU).
fn hopper_wanted() -> bool {
    std::env::var("VFUPSCALE_NATIVE_KERNELS").map_or(true, |v| v != "mma")
}

/// Whether the last layer may write output frames itself ([`NativeEngine::run_into_frame`]), unless
/// `VFUPSCALE_NO_FUSED_OUTPUT` (set, not `0`) asks for the separate conversion kernel (to time both).
fn fused_output_wanted() -> bool {
    std::env::var("VFUPSCALE_NO_FUSED_OUTPUT").map_or(true, |v| v.is_empty() || v == "0")
}

/// An SRVGGNetCompact network on our kernels: fp16 activations, fp32 accumulation, device-memory IO.
pub struct NativeEngine {
    stream: Arc<CudaStream>,
    model: ModelInfo,
    conv_first: CudaFunction,
    conv_hidden: CudaFunction,
    conv_last: CudaFunction,
    resize_cubic: CudaFunction,
    /// The resize by exactly 1/2 (the x2 models), a specialised kernel.
    resize_half: CudaFunction,
    /// The resize by exactly 3/4 (the x3 models), a specialised kernel.
    resize_three_quarters: CudaFunction,
    first: Layer<u16>,
    hidden: Vec<Layer<u16>>,
    last: Layer<u16>,
    /// Output channels of the last convolution as the kernel computes them (3 r² padded to 16).
    last_padded: usize,
    shuffle: u32,
    resize: Option<CubicResize>,
    scale: u32,
    /// Blocks of the persistent convolution kernels: one per multiprocessor.
    blocks: u32,
    weight_bytes: usize,
    buffers: Option<Buffers>,
    hopper: Option<Hopper>,
    /// Whether frames may be written by the last layer (see [`fused_output_wanted`]).
    fused_output: bool,
    /// What could not be honoured while opening (for the caller to log).
    warnings: Vec<String>,
}

impl NativeEngine {
    /// Compiles the kernels (once per context), checks the device can run them and uploads the weights.
    /// `model` is the contract of the ONNX model the graph came from.
    pub fn new(device: &GpuDevice, stream: Arc<CudaStream>, graph: &SrvggGraph, model: &ModelInfo) -> Result<Self> {
        let last_channels = graph.last.out_channels;
        let last_padded = last_channels.next_multiple_of(16);
        check_device(device, shared_bytes(FEATURES).max(shared_bytes(last_padded)))?;
        let scale = graph.scale();
        if scale.fract() != 0.0 || scale < 1.0 {
            return Err(Error::model(&model.path, format!("native kernels: scale {scale} is not an integer")));
        }
        let blocks = device.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;

        let module = device.module(&super::kernels::SRVGG)?;
        let function = |f: &str| module.function(f).cloned();
        let conv_hidden = function("srvgg_conv_hidden")?;
        let conv_last = function(&format!("srvgg_conv_last_{last_padded}"))?;
        for (f, nout) in [(&conv_hidden, FEATURES), (&conv_last, last_padded)] {
            f.set_attribute(
                CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                shared_bytes(nout) as i32,
            )
            .map_err(Error::cuda("cuFuncSetAttribute"))?;
        }

        let upload_f32 = |v: &[f32]| stream.clone_htod(v).map_err(Error::cuda("cuMemcpyHtoD"));
        let upload_f16 = |v: &[u16]| stream.clone_htod(v).map_err(Error::cuda("cuMemcpyHtoD"));
        let first = Layer {
            weights: upload_f16(&first_taps(&graph.first))?,
            bias: upload_f32(&graph.first.bias)?,
            slope: upload_f32(&graph.first.slope)?,
        };
        let hidden = graph
            .hidden
            .iter()
            .map(|c| {
                Ok(Layer {
                    weights: upload_f16(&pack_taps(c, FEATURES))?,
                    bias: upload_f32(&c.bias)?,
                    slope: upload_f32(&c.slope)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let last = Layer {
            weights: upload_f16(&pack_taps(&graph.last, last_padded))?,
            bias: upload_f32(&padded(&graph.last.bias, last_padded, 0.0))?,
            slope: upload_f32(&vec![1.0; last_padded])?,
        };
        let mut warnings = Vec::new();
        let hopper = match HopperKernels::load(device, graph.shuffle) {
            Ok(Some(kernels)) if hopper_wanted() => Some(Hopper {
                kernels,
                hidden: graph.hidden.iter().map(|c| upload_f16(&hopper::pack_weights(c))).collect::<Result<_>>()?,
                last: upload_f16(&hopper::pack_weights(&graph.last))?,
                last_bias: upload_f32(&padded(&graph.last.bias, hopper::ROWS_A, 0.0))?,
            }),
            Ok(_) => None,
            // a Hopper GPU on which they do not load: the mma.sync kernels still run the model, and the caller says so
            Err(e) => {
                warnings
                    .push(format!("the Hopper (wgmma) kernels are unavailable, the native engine uses mma.sync: {e}"));
                None
            }
        };
        let hopper_bytes = hopper.as_ref().map_or(0, |_| (graph.hidden.len() + 1) * hopper::WEIGHT_BYTES + 256);
        let weight_bytes = hopper_bytes
            + FEATURES * FIRST_K * 2
            + 2 * FEATURES * 4
            + hidden.len() * (9 * FEATURES * FEATURES * 2 + 2 * FEATURES * 4)
            + 9 * last_padded * FEATURES * 2
            + 2 * last_padded * 4;
        let mut model = model.clone();
        model.input_type = ElementType::F16;
        model.output_type = ElementType::F16;
        Ok(Self {
            conv_first: function("srvgg_conv_first")?,
            resize_cubic: function("srvgg_resize_cubic")?,
            resize_half: function("srvgg_resize_half")?,
            resize_three_quarters: function("srvgg_resize_three_quarters")?,
            stream,
            model,
            conv_hidden,
            conv_last,
            first,
            hidden,
            last,
            last_padded,
            shuffle: graph.shuffle,
            resize: graph.resize,
            scale: scale as u32,
            blocks,
            weight_bytes,
            buffers: None,
            hopper,
            fused_output: fused_output_wanted(),
            warnings,
        })
    }

    /// Things that could not be honoured while opening, for the caller to log.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The kernels running the 3×3 convolutions over 64 channels: `"wgmma"` (Hopper) or `"mma.sync"`.
    pub fn kernel_family(&self) -> &'static str {
        if self.hopper.is_some() { "wgmma" } else { "mma.sync" }
    }

    /// The model's contract as it runs here (fp16 input and output).
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// Device bytes per input pixel for one image: input, two activation buffers, shuffled and output tensors.
    fn bytes_per_pixel(&self) -> usize {
        let r2 = (self.shuffle * self.shuffle) as usize;
        let s2 = (self.scale * self.scale) as usize;
        2 * (3 + 2 * FEATURES + if self.resize.is_some() { 3 * r2 } else { 0 } + 3 * s2)
    }

    /// Device memory a run of `batch` images of `tile` needs, exactly: the kernels allocate nothing beyond their
    /// tensors and weights.
    pub fn estimate(&self, tile: Size, batch: u32) -> usize {
        tile.pixels() * batch as usize * self.bytes_per_pixel() + self.weight_bytes
    }

    /// Device memory held now: weights and the current tensors. There is no arena, so no peak to report.
    pub fn memory(&self) -> EngineMemory {
        let tensors = self.buffers.as_ref().map_or(0, |b| b.batch as usize * b.size.pixels() * self.bytes_per_pixel());
        EngineMemory { held: (self.weight_bytes + tensors) as u64, peak: None, limit: None }
    }

    /// Allocates (or keeps) the tensors for `batch` images of `size`.
    pub fn bind(&mut self, batch: u32, size: Size) -> Result<()> {
        if self.buffers.as_ref().is_some_and(|b| (b.batch, b.size) == (batch, size)) {
            return Ok(());
        }
        self.buffers = None; // free the old tensors first
        let px = batch as usize * size.pixels();
        let elements = px.checked_mul(FEATURES).filter(|&e| e <= i32::MAX as usize);
        if elements.is_none() || size.width == 0 || size.height == 0 {
            return Err(Error::InvalidConfig(format!("native kernels: {batch} x {size} is out of their range")));
        }
        let alloc = |n: usize| self.stream.alloc_zeros::<u16>(n).map_err(Error::cuda("cuMemAlloc"));
        let r2 = (self.shuffle * self.shuffle) as usize;
        let s2 = (self.scale * self.scale) as usize;
        let activations = [alloc(FEATURES * px)?, alloc(FEATURES * px)?];
        let maps = match &self.hopper {
            Some(_) => Some([
                TensorMap::activations(&activations[0], &self.stream, batch, size)?,
                TensorMap::activations(&activations[1], &self.stream, batch, size)?,
            ]),
            None => None,
        };
        self.buffers = Some(Buffers {
            batch,
            size,
            input: alloc(3 * px)?,
            activations,
            shuffled: if self.resize.is_some() { Some(alloc(3 * r2 * px)?) } else { None },
            output: alloc(3 * s2 * px)?,
            maps,
        });
        Ok(())
    }

    fn buffers(&self) -> Result<&Buffers> {
        self.buffers.as_ref().ok_or_else(|| Error::Usage("native kernels: no tensors bound".into()))
    }

    /// Image `slot` of the input tensor (planar fp16 `[batch, 3, h, w]`), written by the caller on our stream.
    pub fn input_tensor(&mut self, slot: u32) -> Result<PlanarTensorMut<'_>> {
        let b = self.buffers.as_mut().ok_or_else(|| Error::Usage("native kernels: no tensors bound".into()))?;
        let range = super::planar_image("input", slot, b.batch, b.size)?;
        PlanarTensorMut::from_view(b.input.slice_mut(range), &self.stream, b.size)
    }

    /// Image `slot` of the output tensor (planar fp16 `[batch, 3, scale·h, scale·w]`), read by the caller on our
    /// stream.
    pub fn output_tensor(&mut self, slot: u32) -> Result<PlanarTensor<'_>> {
        let b = self.buffers()?;
        let size = b.size.scaled(self.scale);
        let range = super::planar_image("output", slot, b.batch, size)?;
        PlanarTensor::from_view(b.output.slice(range), &self.stream, size)
    }

    /// The last layer's kernel that writes a `format` frame of `size` itself, or why there is none (no Hopper
    /// kernels, `VFUPSCALE_NO_FUSED_OUTPUT`, the format, the shuffle, a final resize, the bound tensors).
    fn frame_kernel(&self, format: PixelFormat, size: Size) -> std::result::Result<&'static str, String> {
        if self.hopper.is_none() {
            return Err("the Hopper (wgmma) kernels do not run the model here".into());
        }
        if !self.fused_output {
            return Err("VFUPSCALE_NO_FUSED_OUTPUT asks for the separate output conversion".into());
        }
        let b = self.buffers.as_ref().ok_or("no tensors are bound")?;
        hopper::frame_kernel(self.shuffle, self.resize.is_some(), b.batch, b.size, format, size)
    }

    /// Whether [`NativeEngine::run_into_frame`] can write `format` frames of `size` with the bound tensors: NV12 or
    /// P010 frames of the model's output size, from the Hopper kernels with shuffle 2 or 4, no final resize, batch 1.
    pub fn writes_frame(&self, format: PixelFormat, size: Size) -> bool {
        self.frame_kernel(format, size).is_ok()
    }

    /// Queues the whole network on the stream (no synchronisation).
    pub fn run(&mut self) -> Result<()> {
        self.launch_all(None, |_| Ok(()))
    }

    /// Queues the whole network with the last layer writing `frame` (its code values from RGB by `from_rgb`,
    /// [`crate::color::rgb_to_code`]) instead of the output tensor: the bytes `run` followed by
    /// `ConversionKernels::planar_to_frame` would write, without the planar output's round trip through memory.
    /// Only for frames [`NativeEngine::writes_frame`] accepts.
    ///
    /// # Safety
    /// The frame's memory must stay valid, touched by nothing else, until the work queued on the stream has
    /// completed, and be memory of the stream's context.
    pub unsafe fn run_into_frame(&mut self, frame: &mut DeviceFrameMut<'_>, from_rgb: &Affine3x4) -> Result<()> {
        self.launch_all(Some((frame, from_rgb)), |_| Ok(()))
    }

    /// Queues every kernel, the last one writing `frame` when given (else the output tensor), calling `after` with
    /// its name after each launch. Tensors and weights go to the kernels as cudarc allocations, so cudarc's access
    /// guards cover every launch.
    fn launch_all(
        &mut self,
        frame: Option<(&mut DeviceFrameMut<'_>, &Affine3x4)>,
        mut after: impl FnMut(&'static str) -> Result<()>,
    ) -> Result<()> {
        if let Some((frame, _)) = &frame {
            // before anything is queued: a frame the last layer cannot write is the caller's error
            self.frame_kernel(frame.format(), frame.size()).map_err(|why| {
                Error::Usage(format!("native kernels: the last layer cannot write the {} frame: {why}", frame.format()))
            })?;
        }
        let (shuffle, scale) = (self.shuffle, self.scale);
        let Self {
            stream,
            buffers,
            first,
            hidden,
            last,
            conv_first,
            conv_hidden,
            conv_last,
            resize_cubic,
            resize_half,
            resize_three_quarters,
            hopper,
            ..
        } = self;
        let b = buffers.as_mut().ok_or_else(|| Error::Usage("native kernels: no tensors bound".into()))?;
        let s: &CudaStream = stream;
        let (n, h, w) = (b.batch, b.size.height, b.size.width);
        let launch_error = Error::cuda("cuLaunchKernel");
        let (tiles_x, tiles_y) = (w.div_ceil(TILE), h.div_ceil(TILE));
        let shape = ConvShape {
            n: n as i32,
            h: h as i32,
            w: w as i32,
            tiles_x: tiles_x as i32,
            tiles_y: tiles_y as i32,
            tiles: (n * tiles_x * tiles_y) as i32,
        };
        let blocks = self.blocks;
        let conv_config = |nout: usize| LaunchConfig {
            grid_dim: (blocks.min(n * tiles_x * tiles_y), 1, 1),
            block_dim: (CONV_THREADS, 1, 1),
            shared_mem_bytes: shared_bytes(nout) as u32,
        };
        // first layer: one warp per 16 pixels of a row, looping; a few blocks of four warps per SM
        let first_tiles = n * h * w.div_ceil(16);
        let first_config = LaunchConfig {
            grid_dim: (first_tiles.div_ceil(FIRST_WARPS).min(blocks * 16), 1, 1),
            block_dim: (FIRST_WARPS * 32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (hi, wi, ni) = (h as i32, w as i32, n as i32);
        let Buffers { input, activations, shuffled, output, maps, .. } = b;
        let size = b.size;
        let [act0, act1] = activations;

        let mut args = s.launch_builder(conv_first);
        args.arg(&*input).arg(&first.weights).arg(&first.bias).arg(&first.slope).arg(&mut *act0);
        args.arg(&ni).arg(&hi).arg(&wi);
        // SAFETY: the tensors and weights are this engine's, sized for `shape` by `bind`; the argument list matches
        // srvgg_conv_first.
        unsafe { args.launch(first_config) }.map_err(launch_error)?;
        after("first")?;

        let mut current_is_first = true;
        for (i, layer) in hidden.iter().enumerate() {
            let (src, dst) = if current_is_first { (&*act0, &mut *act1) } else { (&*act1, &mut *act0) };
            if let (Some(hopper), Some(maps)) = (hopper.as_ref(), maps.as_ref()) {
                let map = &maps[usize::from(!current_is_first)];
                hopper.kernels.hidden(s, src, map, &hopper.hidden[i], &layer.bias, &layer.slope, dst, n, size)?;
                after("hidden-wgmma")?;
            } else {
                let mut args = s.launch_builder(conv_hidden);
                args.arg(src).arg(&layer.weights).arg(&layer.bias).arg(&layer.slope).arg(dst).arg(&shape);
                // SAFETY: as above; srvgg_conv_hidden reads one activation buffer and writes the other.
                unsafe { args.launch(conv_config(FEATURES)) }.map_err(launch_error)?;
                after("hidden")?;
            }
            current_is_first = !current_is_first;
        }

        let src = if current_is_first { &*act0 } else { &*act1 };
        let last_padded = self.last_padded;
        if let Some((frame, from_rgb)) = frame {
            let (Some(hopper), Some(maps)) = (hopper.as_ref(), maps.as_ref()) else {
                return Err(Error::Usage("native kernels: only the Hopper last layer writes frames".into()));
            };
            let map = &maps[usize::from(!current_is_first)];
            let format = frame.format();
            // SAFETY: the frame per run_into_frame's contract; it was checked above to be one this layer writes (no
            // resize follows).
            unsafe {
                hopper.kernels.last_into_frame(
                    s,
                    (src, map),
                    &hopper.last,
                    &hopper.last_bias,
                    &*input,
                    (frame, from_rgb),
                    (shuffle, size),
                )?
            };
            after(if format == PixelFormat::P010 { "last-wgmma-p010" } else { "last-wgmma-nv12" })?;
            return Ok(());
        }
        {
            let target: &mut CudaSlice<u16> = match shuffled.as_mut() {
                Some(shuffled) => shuffled,
                None => output,
            };
            if let (Some(hopper), Some(maps)) = (hopper.as_ref(), maps.as_ref()) {
                let map = &maps[usize::from(!current_is_first)];
                hopper.kernels.last(s, src, map, &hopper.last, &hopper.last_bias, &*input, target, n, size)?;
                after("last-wgmma")?;
            } else {
                let mut args = s.launch_builder(conv_last);
                args.arg(src).arg(&last.weights).arg(&last.bias).arg(target).arg(&*input).arg(&shape);
                // SAFETY: as above; the target holds 3 r² values per input pixel.
                unsafe { args.launch(conv_config(last_padded)) }.map_err(launch_error)?;
                after("last")?;
            }
        }

        if let (Some(resize), Some(shuffled)) = (self.resize, shuffled.as_ref()) {
            let (sh, sw) = (h * shuffle, w * shuffle);
            let (dh, dw) = (h * scale, w * scale);
            let (shi, swi, dhi, dwi) = (sh as i32, sw as i32, dh as i32, dw as i32);
            if resize.factor == 0.5 {
                let mut args = s.launch_builder(resize_half);
                args.arg(shuffled).arg(&shi).arg(&swi).arg(output).arg(&dhi).arg(&dwi).arg(&resize.a);
                // 4x4 outputs per thread, 64 x 4 threads per block (see the kernel)
                let grid = LaunchConfig {
                    grid_dim: (dw.div_ceil(4 * 64), dh.div_ceil(4 * 4), 3 * n),
                    block_dim: (64, 4, 1),
                    shared_mem_bytes: 0,
                };
                // SAFETY: as above; 3 × batch planes of sh × sw in, dh × dw out, dh = sh / 2 and dw = sw / 2.
                unsafe { args.launch(grid) }.map_err(launch_error)?;
            } else if resize.factor == 0.75 {
                let mut args = s.launch_builder(resize_three_quarters);
                args.arg(shuffled).arg(&shi).arg(&swi).arg(output).arg(&dhi).arg(&dwi).arg(&resize.a);
                // 6x6 outputs per thread, 64 x 4 threads per block (see the kernel)
                let grid = LaunchConfig {
                    grid_dim: (dw.div_ceil(6 * 64), dh.div_ceil(6 * 4), 3 * n),
                    block_dim: (64, 4, 1),
                    shared_mem_bytes: 0,
                };
                // SAFETY: as above; 3 × batch planes of sh × sw in, dh × dw out, dh = 3 sh / 4 and dw = 3 sw / 4.
                unsafe { args.launch(grid) }.map_err(launch_error)?;
            } else {
                let mut args = s.launch_builder(resize_cubic);
                args.arg(shuffled).arg(&shi).arg(&swi).arg(output).arg(&dhi).arg(&dwi);
                args.arg(&resize.factor).arg(&resize.factor).arg(&resize.a);
                // 64x16 outputs per block (see the kernel)
                let grid = LaunchConfig {
                    grid_dim: (dw.div_ceil(64), dh.div_ceil(16), 3 * n),
                    block_dim: (32, 8, 1),
                    shared_mem_bytes: 0,
                };
                // SAFETY: as above; 3 × batch planes of sh × sw in, dh × dw out.
                unsafe { args.launch(grid) }.map_err(launch_error)?;
            }
            after("resize")?;
        }
        Ok(())
    }
}
