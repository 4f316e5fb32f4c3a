// SPDX-License-Identifier: MPL-2.0
//! The Hopper path of the native engine's 3×3 convolutions over 64 channels (`kernels/srvgg_sm90.cu`): warpgroup
//! MMA with the weights resident in shared memory, input tiles brought in by TMA through a tensor map of each
//! activation buffer, persistent CTAs. Used on compute capability 9.0 (H100, H200), where it runs the hidden layers
//! 2.2× and the last layer 1.35× faster than the mma.sync kernels (docs/PERFORMANCE.md, attempts 11–13); the
//! mma.sync kernels remain for every other GPU and for the first layer. For shuffles 2 and 4 the last layer can also
//! write an NV12 or P010 frame itself (the output conversion fused into its epilogue, bit for bit
//! `planar_to_frame`'s result: no planar fp16 output written and read again).

use std::ffi::c_void;

pub(super) use cudarc::driver::sys::CUtensorMapSwizzle;
use cudarc::driver::sys::{
    self as cu, CUdevice_attribute, CUfunction_attribute, CUtensorMapDataType, CUtensorMapFloatOOBfill,
    CUtensorMapInterleave, CUtensorMapL2promotion,
};
use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg};

use super::graph::{Conv3x3, FEATURES};
use crate::color::Affine3x4;
use crate::cuda::{DeviceFrameMut, GpuDevice};
use crate::error::{Error, Result};
use crate::frame::{PixelFormat, Size};

/// Output tile of the kernels (keep in step with `COLS`, `ROWS`, `THREADS`, `SMEM_BYTES` in srvgg_sm90.cu).
const COLS: u32 = 128;
const ROWS: u32 = 2;
const THREADS: u32 = 384;
/// Two halo stages of 4 × 130 pixels, the weights, two staging buffers, four mbarriers, 1 KiB of alignment room.
const SMEM_BYTES: usize = 2 * 66560 + 73728 + 2 * 64 * 144 + 32 + 1024;
/// Output channels of the kernels' A operand: the last layer's 3 r² channels are padded to it.
pub(super) const ROWS_A: usize = 64;
/// Bytes of one layer's packed weights.
pub(super) const WEIGHT_BYTES: usize = 9 * ROWS_A * FEATURES * 2;

/// `struct Sm90Shape` in the kernels.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Sm90Shape {
    n: i32,
    h: i32,
    w: i32,
    tiles_x: i32,
    strips: i32,
    tiles: i32,
}

// SAFETY: `#[repr(C)]` plain integers, laid out as `struct Sm90Shape` in srvgg_sm90.cu.
unsafe impl DeviceRepr for Sm90Shape {}

impl Sm90Shape {
    fn new(batch: u32, size: Size) -> Self {
        let (tiles_x, strips) = (size.width.div_ceil(COLS), size.height.div_ceil(ROWS));
        Self {
            n: batch as i32,
            h: size.height as i32,
            w: size.width as i32,
            tiles_x: tiles_x as i32,
            strips: strips as i32,
            tiles: (batch * tiles_x * strips) as i32,
        }
    }
}

/// A TMA descriptor of one NHWC fp16 activation tensor `[n, h, w, 64]`: 128-byte swizzle, boxes of the kernels'
/// halo (64 channels × 130 × 4 pixels), zeros outside the tensor (the convolution's padding). It holds the
/// tensor's address: made for one allocation, valid while it lives.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(super) struct TensorMap(cu::CUtensorMap);

// SAFETY: 128 plain bytes passed by value as `const __grid_constant__ TensorMap` (64-byte aligned) in the kernels.
unsafe impl DeviceRepr for TensorMap {}

impl TensorMap {
    pub(super) fn activations(tensor: &CudaSlice<u16>, stream: &CudaStream, batch: u32, size: Size) -> Result<Self> {
        let (w, h) = (size.width as u64, size.height as u64);
        if tensor.len() < (batch as u64 * h * w) as usize * FEATURES {
            return Err(Error::Usage(format!("an activation tensor too small for {batch} × {size}")));
        }
        let dims: [u64; 4] = [FEATURES as u64, w, h, batch as u64];
        let strides: [u64; 3] = [FEATURES as u64 * 2, w * FEATURES as u64 * 2, h * w * FEATURES as u64 * 2];
        let boxes: [u32; 4] = [FEATURES as u32, COLS + 2, ROWS + 2, 1];
        let (address, _guard) = tensor.device_ptr(stream);
        // SAFETY: the address is a live allocation of `tensor` holding `dims` at `strides` (checked above), which
        // the caller keeps as long as the map.
        unsafe { Self::fp16_4d(address, dims, strides, boxes, CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B) }
    }

    /// A descriptor of the fp16 tensor of `dims` (innermost first) at `address`, rows `strides` bytes apart, read in
    /// `boxes` with `swizzle`, zeros outside the tensor, promoted to L2 in 256-byte lines.
    ///
    /// # Safety
    /// `address` must be device memory holding the tensor (it is only recorded: the memory must outlive every
    /// launch that reads through the map).
    pub(super) unsafe fn fp16_4d(
        address: u64,
        dims: [u64; 4],
        strides: [u64; 3],
        boxes: [u32; 4],
        swizzle: CUtensorMapSwizzle,
    ) -> Result<Self> {
        let elements: [u32; 4] = [1; 4];
        let mut map = std::mem::MaybeUninit::<cu::CUtensorMap>::zeroed();
        // SAFETY: all arrays have the tensor's rank (4) and outlive the call; the address is the caller's.
        unsafe {
            cu::cuTensorMapEncodeTiled(
                map.as_mut_ptr(),
                CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                4,
                address as *mut c_void,
                dims.as_ptr(),
                strides.as_ptr(),
                boxes.as_ptr(),
                elements.as_ptr(),
                CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
                swizzle,
                CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
            )
        }
        .result()
        .map_err(Error::cuda("cuTensorMapEncodeTiled"))?;
        // SAFETY: initialised by the successful call.
        Ok(Self(unsafe { map.assume_init() }))
    }
}

/// A 3×3 convolution's weights as the kernels' shared-memory image of A: for each of the 9 taps and 4 k-steps of
/// 16 input channels, `[k-half (2)][row group (8)][8 rows][8 channels]` fp16, rows = output channels (padded with
/// zeros to 64), no swizzle (the canonical K-major layout: 16-byte core-matrix rows, row groups 128 bytes apart,
/// k-halves 1024).
pub(super) fn pack_weights(conv: &Conv3x3) -> Vec<u16> {
    let mut packed = vec![0u16; WEIGHT_BYTES / 2];
    for co in 0..conv.out_channels {
        for ci in 0..FEATURES {
            for tap in 0..9 {
                let (kc, khalf, e) = (ci / 16, (ci % 16) / 8, ci % 8);
                let (group, row) = (co / 8, co % 8);
                let at = ((((tap * 4 + kc) * 2 + khalf) * 8 + group) * 8 + row) * 8 + e;
                packed[at] = half::f16::from_f32(conv.weights[(co * FEATURES + ci) * 9 + tap]).to_bits();
            }
        }
    }
    packed
}

/// The last layer's entry point that writes a `format` frame of `output` itself, for a network with pixel shuffle
/// `shuffle` (followed by a resize or not) bound for `batch` images of `input`; otherwise why it cannot (the frame
/// is then converted from the planar output by its own kernel).
pub(super) fn frame_kernel(
    shuffle: u32,
    resized: bool,
    batch: u32,
    input: Size,
    format: PixelFormat,
    output: Size,
) -> std::result::Result<&'static str, String> {
    let name = match (shuffle, format) {
        (2, PixelFormat::Nv12) => "srvgg_last_sm90_r2_nv12",
        (2, PixelFormat::P010) => "srvgg_last_sm90_r2_p010",
        (4, PixelFormat::Nv12) => "srvgg_last_sm90_r4_nv12",
        (4, PixelFormat::P010) => "srvgg_last_sm90_r4_p010",
        (2 | 4, _) => return Err(format!("{format} frames are not written by the last layer (NV12 and P010 are)")),
        _ => return Err(format!("a pixel shuffle by {shuffle} can put a 2×2 chroma block across two input pixels")),
    };
    if resized {
        return Err("the network resizes its output after the pixel shuffle".into());
    }
    if batch != 1 {
        return Err(format!("the tensors are bound for {batch} images, the last layer writes one frame"));
    }
    if output != input.scaled(shuffle) {
        return Err(format!("the frame is {output}, the model's output {}", input.scaled(shuffle)));
    }
    Ok(name)
}

/// The Hopper kernels of one engine: the hidden layer and the last layer for its shuffle factor, planar or writing
/// frames.
pub(super) struct HopperKernels {
    hidden: CudaFunction,
    last: CudaFunction,
    /// The last layers writing frames, by entry point (none for shuffle 3).
    last_into_frame: Vec<(&'static str, CudaFunction)>,
    blocks: u32,
}

impl HopperKernels {
    /// The kernels, when `device` can run them (compute capability 9.0 exactly: they are sm_90a code; enough
    /// shared memory per block) and `shuffle` is one they cover; `Ok(None)` otherwise.
    pub(super) fn load(device: &GpuDevice, shuffle: u32) -> Result<Option<Self>> {
        if device.compute_capability() != (9, 0) || !(2..=4).contains(&shuffle) {
            return Ok(None);
        }
        let shared = device.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?;
        if (shared as usize) < SMEM_BYTES {
            return Ok(None);
        }
        let module = device.module(&super::kernels::SRVGG_SM90)?;
        let hidden = module.function("srvgg_hidden_sm90")?.clone();
        let last = module.function(&format!("srvgg_last_sm90_r{shuffle}"))?.clone();
        let one = Size::new(1, 1);
        let last_into_frame = [PixelFormat::Nv12, PixelFormat::P010]
            .into_iter()
            .filter_map(|format| frame_kernel(shuffle, false, 1, one, format, one.scaled(shuffle)).ok())
            .map(|name| Ok((name, module.function(name)?.clone())))
            .collect::<Result<Vec<_>>>()?;
        for f in [&hidden, &last].into_iter().chain(last_into_frame.iter().map(|(_, f)| f)) {
            f.set_attribute(CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, SMEM_BYTES as i32)
                .map_err(Error::cuda("cuFuncSetAttribute"))?;
        }
        let blocks = device.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
        Ok(Some(Self { hidden, last, last_into_frame, blocks }))
    }

    fn config(&self, shape: &Sm90Shape) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (self.blocks.min(shape.tiles as u32), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: SMEM_BYTES as u32,
        }
    }

    /// Queues a hidden layer: `input` (read through `map`, which describes it) → bias, PReLU → `output`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hidden(
        &self,
        stream: &CudaStream,
        input: &CudaSlice<u16>,
        map: &TensorMap,
        weights: &CudaSlice<u16>,
        bias: &CudaSlice<f32>,
        slope: &CudaSlice<f32>,
        output: &mut CudaSlice<u16>,
        batch: u32,
        size: Size,
    ) -> Result<()> {
        let shape = Sm90Shape::new(batch, size);
        // the kernel reads `input` through the tensor map: its access guard is held across the launch
        let (_, _input_guard) = input.device_ptr(stream);
        let mut args = stream.launch_builder(&self.hidden);
        args.arg(map).arg(weights).arg(bias).arg(slope).arg(output).arg(&shape);
        // SAFETY: the argument list matches srvgg_hidden_sm90; `map` describes `input` ([batch, h, w, 64] fp16),
        // `output` has the same shape, the weights hold the A image and bias/slope 64 values each.
        unsafe { args.launch(self.config(&shape)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Queues the last layer: `input` (through `map`) → bias, pixel shuffle, + the nearest-upsampled `image` →
    /// `output` (planar fp16 `[batch, 3, r·h, r·w]`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn last(
        &self,
        stream: &CudaStream,
        input: &CudaSlice<u16>,
        map: &TensorMap,
        weights: &CudaSlice<u16>,
        bias: &CudaSlice<f32>,
        image: &CudaSlice<u16>,
        output: &mut CudaSlice<u16>,
        batch: u32,
        size: Size,
    ) -> Result<()> {
        let shape = Sm90Shape::new(batch, size);
        let (_, _input_guard) = input.device_ptr(stream);
        let mut args = stream.launch_builder(&self.last);
        args.arg(map).arg(weights).arg(bias).arg(output).arg(image).arg(&shape);
        // SAFETY: the argument list matches srvgg_last_sm90_rN; `bias` holds 64 values (padding zero), `image` the
        // planar model input and `output` 3 r² values per input pixel.
        unsafe { args.launch(self.config(&shape)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Queues the last layer writing the frame `frame` (NV12 or P010 of `r·h × r·w`): `input` (through `map`) →
    /// bias, pixel shuffle, + the nearest-upsampled `image`, rounded to fp16, then `from_rgb` into code values and
    /// 4:2:0 chroma as `planar_to_frame` does ([`frame_kernel`] says which frames it can write).
    ///
    /// # Safety
    /// The frame's memory must stay valid, touched by nothing else, until the work queued on `stream` has completed,
    /// and be memory of the stream's context.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn last_into_frame(
        &self,
        stream: &CudaStream,
        (input, map): (&CudaSlice<u16>, &TensorMap),
        weights: &CudaSlice<u16>,
        bias: &CudaSlice<f32>,
        image: &CudaSlice<u16>,
        (frame, from_rgb): (&mut DeviceFrameMut<'_>, &Affine3x4),
        (shuffle, size): (u32, Size),
    ) -> Result<()> {
        let name = frame_kernel(shuffle, false, 1, size, frame.format(), frame.size())
            .map_err(|why| Error::Usage(format!("the last layer cannot write this frame: {why}")))?;
        let function = self.last_into_frame.iter().find(|(n, _)| *n == name).map(|(_, f)| f);
        let function = function.ok_or_else(|| Error::Usage(format!("the engine has no kernel {name} loaded")))?;
        let shape = Sm90Shape::new(1, size);
        let p = frame.planes();
        // pitches were checked against 32-bit indexing when the view was made
        let (luma_pitch, chroma_pitch) = (p.pitch[0] as i32, p.pitch[1] as i32);
        let (_, _input_guard) = input.device_ptr(stream);
        let mut args = stream.launch_builder(function);
        args.arg(map).arg(weights).arg(bias).arg(image).arg(&p.ptr[0]).arg(&luma_pitch).arg(&p.ptr[1]);
        args.arg(&chroma_pitch).arg(from_rgb).arg(&shape);
        // SAFETY: the argument list matches srvgg_last_sm90_rN_FORMAT; `map` describes `input` ([1, h, w, 64] fp16),
        // `image` holds the planar model input of `size`, `bias` 64 values; the frame view holds both planes of the
        // r·h × r·w frame at its pitches (checked when it was made), valid until the work completes per this
        // function's contract.
        unsafe { args.launch(self.config(&shape)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_layer_writes_nv12_and_p010_frames_of_the_model_output_for_shuffles_2_and_4() {
        let input = Size::new(1920, 1080);
        let frame = |shuffle: u32, format| frame_kernel(shuffle, false, 1, input, format, input.scaled(shuffle));
        assert_eq!(frame(4, PixelFormat::Nv12), Ok("srvgg_last_sm90_r4_nv12"));
        assert_eq!(frame(4, PixelFormat::P010), Ok("srvgg_last_sm90_r4_p010"));
        assert_eq!(frame(2, PixelFormat::Nv12), Ok("srvgg_last_sm90_r2_nv12"));
        assert_eq!(frame(2, PixelFormat::P010), Ok("srvgg_last_sm90_r2_p010"));
        // odd input sizes give even outputs
        let odd = Size::new(97, 61);
        assert!(frame_kernel(4, false, 1, odd, PixelFormat::Nv12, Size::new(388, 244)).is_ok());
        for format in [PixelFormat::Rgba, PixelFormat::Bgrx, PixelFormat::Rgb] {
            let e = frame(4, format).unwrap_err();
            assert!(e.contains(&format.to_string()) && e.contains("NV12 and P010"), "{e}");
        }
        let e = frame(3, PixelFormat::Nv12).unwrap_err();
        assert!(e.contains("shuffle by 3") && e.contains("chroma"), "{e}");
        let e = frame_kernel(4, true, 1, input, PixelFormat::Nv12, input.scaled(4)).unwrap_err();
        assert!(e.contains("resizes"), "{e}");
        let e = frame_kernel(4, false, 2, input, PixelFormat::Nv12, input.scaled(4)).unwrap_err();
        assert!(e.contains("2 images"), "{e}");
        let e = frame_kernel(4, false, 1, input, PixelFormat::Nv12, Size::new(3840, 2160)).unwrap_err();
        assert!(e.contains("3840") && e.contains("7680"), "{e}");
    }

    #[test]
    fn the_frame_writing_kernels_are_in_the_module_with_the_conversion_helpers_inlined() {
        let module = &super::super::kernels::SRVGG_SM90;
        let one = Size::new(1, 1);
        for (shuffle, format) in [2, 4].into_iter().flat_map(|r| [(r, PixelFormat::Nv12), (r, PixelFormat::P010)]) {
            let name = frame_kernel(shuffle, false, 1, one, format, one.scaled(shuffle)).unwrap();
            assert!(module.functions.contains(&name), "{name}: {:?}", module.functions);
        }
        for planar in ["srvgg_hidden_sm90", "srvgg_last_sm90_r2", "srvgg_last_sm90_r3", "srvgg_last_sm90_r4"] {
            assert!(module.functions.contains(&planar), "{planar}");
        }
        // frame_out.cuh and common.cuh's clamp, affine map and quantisation, inlined by build.rs; the module keeps
        // contraction on (the conversion's arithmetic is explicitly rounded)
        assert!(!module.source.contains("#include"));
        assert!(module.source.contains("struct Affine3x4") && module.source.contains("quantise(float v"));
        assert!(module.source.contains("void frame_pixel(") && module.source.contains("__fmul_rn("));
        assert_eq!((module.arch, module.fmad), (Some("compute_90a"), true));
    }
}
