// SPDX-License-Identifier: MPL-2.0
//! The Hopper path of the native engine's 3×3 convolutions over 64 channels (`kernels/srvgg_sm90.cu`): warpgroup
//! MMA with the weights resident in shared memory, input tiles brought in by TMA through a tensor map of each
//! activation buffer, persistent CTAs. Used on compute capability 9.0 (H100, H200), where it runs the hidden layers
//! 2.2× and the last layer 1.35× faster than the mma.sync kernels (docs/PERFORMANCE.md, attempts 11–13); the
//! mma.sync kernels remain for every other GPU and for the first layer.

use std::ffi::c_void;

use cudarc::driver::sys::{
    self as cu, CUdevice_attribute, CUfunction_attribute, CUtensorMapDataType, CUtensorMapFloatOOBfill,
    CUtensorMapInterleave, CUtensorMapL2promotion, CUtensorMapSwizzle,
};
use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg};

use super::graph::{Conv3x3, FEATURES};
use crate::cuda::GpuDevice;
use crate::error::{Error, Result};
use crate::frame::Size;

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
        let elements: [u32; 4] = [1; 4];
        let (address, _guard) = tensor.device_ptr(stream);
        let mut map = std::mem::MaybeUninit::<cu::CUtensorMap>::zeroed();
        // SAFETY: all arrays have the tensor's rank (4) and outlive the call; the address is a live allocation of
        // `tensor`, which the caller keeps as long as the map (the map only records the address).
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
                CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
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

/// The Hopper kernels of one engine: the hidden layer and the last layer for its shuffle factor.
pub(super) struct HopperKernels {
    hidden: CudaFunction,
    last: CudaFunction,
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
        for f in [&hidden, &last] {
            f.set_attribute(CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, SMEM_BYTES as i32)
                .map_err(Error::cuda("cuFuncSetAttribute"))?;
        }
        let blocks = device.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
        Ok(Some(Self { hidden, last, blocks }))
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
}
