// SPDX-License-Identifier: MPL-2.0
//! The Rust side of `kernels/squeeze_excite.cu`: a program's squeeze-and-excitation step (Real-CUGAN) as three
//! launches: channel sums per band of rows, each image's gate, the channel scale.

use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg};

use super::conv_sm90::SliceRef;
use crate::cuda::GpuDevice;
use crate::error::{Error, Result};
use crate::frame::Size;

/// Threads of a block of the sums (`SUM_THREADS` in the kernels) and of the gate (`GATE_THREADS`): a step has at
/// most the gate's channels and hidden units, and an even number of channels, at most 2 per thread of the sums.
const SUM_THREADS: usize = 256;
const GATE_THREADS: usize = 1024;
pub(super) const MAX_CHANNELS: usize = 2 * SUM_THREADS;
pub(super) const MAX_HIDDEN: usize = GATE_THREADS;
/// Pixels of a segment's row each lane of the sums adds (`LANE_PIXELS`).
const LANE_PIXELS: u32 = 8;
/// Tiles (partial sums) per image the sums aim at: about a thousand blocks fill the GPU at the sizes users run, and
/// the gate's 1024 threads add them in a few loads each.
const TILES: u32 = 1024;

/// How the sums cut an image of `inner` pixels (less the inset) of `channels`: segments of columns, bands of rows,
/// the rows of a band.
fn tiles(channels: usize, inner: Size) -> (u32, u32, u32) {
    let lanes = (SUM_THREADS / (channels / 2).max(1)) as u32;
    let segments = inner.width.div_ceil(lanes * LANE_PIXELS).max(1);
    let band_rows = inner.height.div_ceil((TILES / segments).max(1)).max(1);
    (segments, inner.height.div_ceil(band_rows).max(1), band_rows)
}

/// The image of `size` less `inset` pixels on each side.
fn inner(size: Size, inset: u32) -> Size {
    Size::new(size.width.saturating_sub(2 * inset), size.height.saturating_sub(2 * inset))
}

/// Scratch `partial` floats the sums of `batch` images of `channels` channels need, for an input of `size` less
/// `inset` pixels on each side.
pub(super) fn partial_floats(batch: u32, channels: usize, size: Size, inset: u32) -> usize {
    let (segments, bands, _) = tiles(channels, inner(size, inset));
    batch as usize * (segments * bands) as usize * channels
}

/// The weights of one step as the gate reads them: reduce `[hidden][channels]`, reduce bias, expand
/// `[channels][hidden]`, expand bias.
pub(super) fn pack(reduce: &[f32], reduce_bias: &[f32], expand: &[f32], expand_bias: &[f32]) -> Vec<f32> {
    [reduce, reduce_bias, expand, expand_bias].concat()
}

/// The kernels of one context.
pub(super) struct ExciteKernels {
    sums: CudaFunction,
    gate: CudaFunction,
    scale: CudaFunction,
}

/// One step's shape: channels, hidden units, the inset of the mean.
pub(super) struct ExciteShape {
    pub channels: usize,
    pub hidden: usize,
    pub inset: u32,
}

/// The scratch of one launch: the partial sums and the gates (fp32).
pub(super) struct ExciteScratch<'a> {
    pub partial: &'a mut CudaSlice<f32>,
    pub gate: &'a mut CudaSlice<f32>,
}

impl ExciteKernels {
    pub(super) fn load(device: &GpuDevice) -> Result<Self> {
        let module = device.module(&super::kernels::SQUEEZE_EXCITE)?;
        let function = |name: &str| module.function(name).cloned();
        Ok(Self {
            sums: function("squeeze_sums")?,
            gate: function("excite_gate")?,
            scale: function("channel_scale_nhwc")?,
        })
    }

    /// Queues `output = input · gate` for `batch` images of `size`, the gate from the mean of `input` less
    /// `shape.inset` pixels on each side and `weights` ([`pack`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        &self,
        stream: &CudaStream,
        (input, output): (SliceRef<'_>, SliceRef<'_>),
        shape: &ExciteShape,
        weights: &CudaSlice<f32>,
        scratch: ExciteScratch<'_>,
        batch: u32,
        size: Size,
    ) -> Result<()> {
        let ExciteShape { channels, hidden, inset } = *shape;
        let inner = inner(size, inset);
        if inner.width == 0 || inner.height == 0 {
            return Err(Error::InvalidConfig(format!(
                "squeeze and excitation: {size} is too small for a mean less {inset} pixels a side"
            )));
        }
        let pixels = batch as usize * size.pixels();
        let aligned = |s: &SliceRef<'_>| {
            s.offset.is_multiple_of(8)
                && s.stride.is_multiple_of(8)
                && s.offset + channels <= s.stride
                && s.buffer.len() >= pixels * s.stride
        };
        let (segments, bands, band_rows) = tiles(channels, inner);
        if channels % 8 != 0
            || channels > MAX_CHANNELS
            || hidden > MAX_HIDDEN
            || !aligned(&input)
            || !aligned(&output)
            || weights.len() != 2 * hidden * channels + hidden + channels
            || scratch.partial.len() < partial_floats(batch, channels, size, inset)
            || scratch.gate.len() < batch as usize * channels
        {
            return Err(Error::Usage(
                "squeeze and excitation: slices, weights or scratch the kernels do not take".into(),
            ));
        }
        let in_address = input.address(stream);
        let (_, _in_guard) = input.buffer.device_ptr(stream);
        let out_address = output.address(stream);
        let (_, _out_guard) = output.buffer.device_ptr(stream);
        let (ins, outs, c, m) = (input.stride as i32, output.stride as i32, channels as i32, hidden as i32);
        let (n, h, w, i) = (batch as i32, size.height as i32, size.width as i32, inset as i32);
        let block = |grid: (u32, u32, u32), threads: usize| LaunchConfig {
            grid_dim: grid,
            block_dim: (threads as u32, 1, 1),
            shared_mem_bytes: 0,
        };

        let mut args = stream.launch_builder(&self.sums);
        let rows = band_rows as i32;
        args.arg(&in_address).arg(&ins).arg(&mut *scratch.partial).arg(&c).arg(&h).arg(&w).arg(&i).arg(&rows);
        // SAFETY: the argument list matches squeeze_sums; the input slice holds `channels` of every pixel of the
        // batch and the scratch `segments · bands` partial sums of each image (checked).
        unsafe { args.launch(block((segments, bands, batch), SUM_THREADS)) }.map_err(Error::cuda("cuLaunchKernel"))?;

        let count = (inner.width as f64 * inner.height as f64) as f32;
        let tile_count = (segments * bands) as i32;
        let mut args = stream.launch_builder(&self.gate);
        args.arg(&*scratch.partial).arg(&tile_count).arg(&count).arg(weights).arg(&c).arg(&m).arg(&mut *scratch.gate);
        // SAFETY: the argument list matches excite_gate; the partial sums, the weights (packed by `pack`) and the
        // gates are the sizes it reads and writes (checked).
        unsafe { args.launch(block((batch, 1, 1), GATE_THREADS)) }.map_err(Error::cuda("cuLaunchKernel"))?;

        let threads = u32::try_from(pixels * channels / 8)
            .map_err(|_| Error::InvalidConfig(format!("squeeze and excitation of {batch} × {size} is out of range")))?;
        let mut args = stream.launch_builder(&self.scale);
        args.arg(&in_address)
            .arg(&ins)
            .arg(&out_address)
            .arg(&outs)
            .arg(&c)
            .arg(&n)
            .arg(&h)
            .arg(&w)
            .arg(&*scratch.gate);
        // SAFETY: the argument list matches channel_scale_nhwc; both slices hold `channels` of every pixel of the
        // batch and the gates one per image and channel (checked).
        unsafe { args.launch(LaunchConfig::for_num_elems(threads)) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }
}
