// SPDX-License-Identifier: MPL-2.0
//! The Rust side of `kernels/nhwc_layout.cu`: the steps of a lowered [`super::program::Program`] that only move data
//! (the model input into the first convolution's layout, nearest upsampling, edge padding, a UNet's space to depth
//! and depth to space with its skip connection, the depth to space or crop into the planar model output), each one
//! launch over channel slices of NHWC fp16 buffers.

use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg,
};

use super::conv_sm90::{INPUT_CHANNELS, SliceRef};
use crate::cuda::GpuDevice;
use crate::error::{Error, Result};
use crate::frame::Size;

/// The kernels of one context.
pub(super) struct LayoutKernels {
    planar_to_nhwc32: CudaFunction,
    nearest: CudaFunction,
    edge_pad: CudaFunction,
    depth_to_planes: CudaFunction,
    depth_to_space: CudaFunction,
    space_to_depth: CudaFunction,
}

/// A residual a depth to space adds: `slice` of images `size`, read `offset` pixels further along both axes than the
/// output pixel it is added to, times `beta`.
pub(super) struct Residual<'a> {
    pub slice: SliceRef<'a>,
    pub size: Size,
    pub offset: u32,
    pub beta: f32,
}

/// `struct ShuffleResidual` in the kernels (`at == 0`: none).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct ShuffleResidual {
    at: u64,
    stride: i32,
    offset: i32,
    rh: i32,
    rw: i32,
    beta: f32,
}

// SAFETY: `#[repr(C)]` an address, integers and a float, laid out as `struct ShuffleResidual` in nhwc_layout.cu.
unsafe impl DeviceRepr for ShuffleResidual {}

impl ShuffleResidual {
    /// The kernels' form of `residual` for `batch` images, or why it is outside its buffer: its pixels
    /// `offset .. offset + output` along each axis are read, `channels` of each.
    fn of(
        residual: Option<&Residual<'_>>,
        stream: &CudaStream,
        batch: u32,
        output: Size,
        channels: usize,
    ) -> Result<Self> {
        let Some(r) = residual else { return Ok(Self::default()) };
        let reach = |side: u32, of: u32| side + r.offset <= of;
        if !reach(output.width, r.size.width)
            || !reach(output.height, r.size.height)
            || r.slice.offset + channels > r.slice.stride
            || r.slice.buffer.len() < batch as usize * r.size.pixels() * r.slice.stride
        {
            return Err(Error::Usage("depth to space: a residual outside its buffer".into()));
        }
        Ok(Self {
            at: r.slice.address(stream),
            stride: r.slice.stride as i32,
            offset: r.offset as i32,
            rh: r.size.height as i32,
            rw: r.size.width as i32,
            beta: r.beta,
        })
    }
}

/// A slice copied 8 channels at a time, `pixels` pixels of it, or why the kernels cannot take it.
fn check_slice(what: &str, s: &SliceRef<'_>, channels: usize, pixels: usize) -> Result<()> {
    let aligned = [s.offset, s.stride, channels].iter().all(|v| v % 8 == 0);
    if !aligned || s.offset + channels > s.stride || s.buffer.len() < pixels * s.stride {
        return Err(Error::Usage(format!("{what}: a slice outside its buffer or not 8-channel aligned")));
    }
    Ok(())
}

/// One thread per `threads`, or the range error naming the step.
fn threads_config(threads: usize, what: impl FnOnce() -> String) -> Result<LaunchConfig> {
    let n =
        u32::try_from(threads).map_err(|_| Error::InvalidConfig(format!("{} is out of the kernel's range", what())))?;
    Ok(LaunchConfig::for_num_elems(n))
}

impl LayoutKernels {
    pub(super) fn load(device: &GpuDevice) -> Result<Self> {
        let module = device.module(&super::kernels::NHWC_LAYOUT)?;
        let function = |name: &str| module.function(name).cloned();
        Ok(Self {
            planar_to_nhwc32: function("planar_to_nhwc32")?,
            nearest: function("nearest_nhwc")?,
            edge_pad: function("edge_pad_nhwc")?,
            depth_to_planes: function("depth_to_planes")?,
            depth_to_space: function("depth_to_space_nhwc")?,
            space_to_depth: function("space_to_depth_nhwc")?,
        })
    }

    /// Queues the repacking of the planar fp16 model input `[batch][3][h][w]` (`size`) into `output` (NHWC, 32
    /// channels, channels 3–31 zero) at the program's run size `run` (at least `size`), the last row and column
    /// repeated.
    pub(super) fn pack_input(
        &self,
        stream: &CudaStream,
        input: &CudaSlice<u16>,
        output: &mut CudaSlice<u16>,
        batch: u32,
        (size, run): (Size, Size),
    ) -> Result<()> {
        let run_pixels = batch as usize * run.pixels();
        if input.len() < 3 * batch as usize * size.pixels()
            || output.len() < INPUT_CHANNELS * run_pixels
            || run.width < size.width
            || run.height < size.height
        {
            return Err(Error::Usage("input tensors too small for the batch".into()));
        }
        let (n, h, w) = (batch as i32, size.height as i32, size.width as i32);
        let (rh, rw) = (run.height as i32, run.width as i32);
        let mut args = stream.launch_builder(&self.planar_to_nhwc32);
        args.arg(input).arg(output).arg(&n).arg(&h).arg(&w).arg(&rh).arg(&rw);
        let config = threads_config(run_pixels, || format!("the input of {batch} × {size}"))?;
        // SAFETY: the argument list matches planar_to_nhwc32; the input holds `size` and the output `run` pixels
        // per image (checked).
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
        check_slice("upsampling", &input, channels, pixels)?;
        check_slice("upsampling", &output, channels, out_pixels)?;
        let (n, h, w, f) = (batch as i32, size.height as i32, size.width as i32, factor as i32);
        let config = threads_config(out_pixels * channels / 8, || format!("upsampling {batch} × {size} by {factor}"))?;
        self.copy(stream, &self.nearest, (input, output, channels), [n, h, w, f], config)
    }

    /// Queues the edge padding by `pad` pixels of `channels` channels of `input` (`size` per image) into `output`
    /// (`size` plus `2 · pad`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn edge_pad(
        &self,
        stream: &CudaStream,
        input: SliceRef<'_>,
        output: SliceRef<'_>,
        channels: usize,
        pad: u32,
        batch: u32,
        size: Size,
    ) -> Result<()> {
        if size.width == 0 || size.height == 0 {
            return Err(Error::Usage("edge padding of an empty image".into()));
        }
        let padded = Size::new(size.width + 2 * pad, size.height + 2 * pad);
        check_slice("edge padding", &input, channels, batch as usize * size.pixels())?;
        check_slice("edge padding", &output, channels, batch as usize * padded.pixels())?;
        let (n, h, w, p) = (batch as i32, size.height as i32, size.width as i32, pad as i32);
        let threads = batch as usize * padded.pixels() * channels / 8;
        let config = threads_config(threads, || format!("edge padding {batch} × {size} by {pad}"))?;
        self.copy(stream, &self.edge_pad, (input, output, channels), [n, h, w, p], config)
    }

    /// One launch of `nearest_nhwc` or `edge_pad_nhwc` (the same arguments: the slices, their channels, the batch,
    /// the input's height and width, the factor or the padding).
    fn copy(
        &self,
        stream: &CudaStream,
        function: &CudaFunction,
        (input, output, channels): (SliceRef<'_>, SliceRef<'_>, usize),
        [n, h, w, k]: [i32; 4],
        config: LaunchConfig,
    ) -> Result<()> {
        let in_address = input.address(stream);
        let (_, _in_guard) = input.buffer.device_ptr(stream);
        let out_address = output.address(stream);
        let (_, _out_guard) = output.buffer.device_ptr(stream);
        let (ins, outs, c) = (input.stride as i32, output.stride as i32, channels as i32);
        let mut args = stream.launch_builder(function);
        args.arg(&in_address).arg(&ins).arg(&out_address).arg(&outs).arg(&c);
        args.arg(&n).arg(&h).arg(&w).arg(&k);
        // SAFETY: the argument list matches nearest_nhwc and edge_pad_nhwc; both slices lie in live buffers with the
        // extents the callers checked for this launch's size.
        unsafe { args.launch(config) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Queues the depth to space by `factor` of `input` (`size` per image, `factor² · channels` channels read) into
    /// planar fp16 `output` `[batch][channels][out]`, from `offset` pixels in, plus `residual`: the output is `factor ×`
    /// the input less `offset` on each side, or its top left `out` (an image run at its size class, cropped).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn depth_to_planes(
        &self,
        stream: &CudaStream,
        input: SliceRef<'_>,
        output: &mut CudaSlice<u16>,
        (channels, factor, offset): (usize, u32, u32),
        residual: Option<&Residual<'_>>,
        batch: u32,
        (size, out): (Size, Size),
    ) -> Result<()> {
        let read = (factor * factor) as usize * channels;
        let (Some(iw), Some(ih)) = (size.width.checked_sub(2 * offset), size.height.checked_sub(2 * offset)) else {
            return Err(Error::Usage(format!("depth to space from {offset} pixels into {size}")));
        };
        if input.offset + read > input.stride
            || input.buffer.len() < batch as usize * size.pixels() * input.stride
            || output.len() < batch as usize * out.pixels() * channels
            || out.width > iw * factor
            || out.height > ih * factor
        {
            return Err(Error::Usage("depth to space: a slice or planes outside their buffers".into()));
        }
        // the residual buffer read while the launch is queued
        let _res_guard = residual.map(|r| r.slice.buffer.device_ptr(stream));
        let added = ShuffleResidual::of(residual, stream, batch, out, channels)?;
        let in_address = input.address(stream);
        let (_, _in_guard) = input.buffer.device_ptr(stream);
        let (out_address, _out_guard) = output.device_ptr_mut(stream);
        let (ins, c, n) = (input.stride as i32, channels as i32, batch as i32);
        let (h, w, f, o) = (size.height as i32, size.width as i32, factor as i32, offset as i32);
        let (oh, ow) = (out.height as i32, out.width as i32);
        let mut args = stream.launch_builder(&self.depth_to_planes);
        args.arg(&in_address).arg(&ins).arg(&out_address).arg(&c).arg(&n);
        args.arg(&h).arg(&w).arg(&f).arg(&o).arg(&oh).arg(&ow).arg(&added);
        let config = threads_config(batch as usize * out.pixels(), || format!("depth to space of {batch} × {size}"))?;
        // SAFETY: the argument list matches depth_to_planes; the input slice holds `read` channels of every pixel
        // of the batch, the planes every output value and the residual every pixel it adds (checked).
        unsafe { args.launch(config) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Queues the depth to space by `factor` of `input` (`size` per image, `factor² · channels` channels read, from
    /// `offset` pixels in) into `output` (`out` per image), `shift` pixels in along both axes, plus `residual` at
    /// each output pixel; written 8 channels at a time (past `channels` with zeros).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn depth_to_space(
        &self,
        stream: &CudaStream,
        (input, output): (SliceRef<'_>, SliceRef<'_>),
        (channels, factor, offset, shift): (usize, u32, u32, u32),
        residual: Option<&Residual<'_>>,
        batch: u32,
        (size, out): (Size, Size),
    ) -> Result<()> {
        let (Some(iw), Some(ih)) = (size.width.checked_sub(2 * offset), size.height.checked_sub(2 * offset)) else {
            return Err(Error::Usage(format!("depth to space from {offset} pixels into {size}")));
        };
        let (Some(sw), Some(sh)) = (out.width.checked_sub(shift), out.height.checked_sub(shift)) else {
            return Err(Error::Usage(format!("depth to space {shift} pixels into {out}")));
        };
        let written = Size::new(sw.min(iw * factor), sh.min(ih * factor));
        let groups = channels.div_ceil(8);
        let vector = channels % 8 == 0;
        if (vector && (input.offset % 8 != 0 || input.stride % 8 != 0))
            || input.offset + (factor * factor) as usize * channels > input.stride
            || input.buffer.len() < batch as usize * size.pixels() * input.stride
            || output.offset % 8 != 0
            || output.stride % 8 != 0
            || output.offset + 8 * groups > output.stride
            || output.buffer.len() < batch as usize * out.pixels() * output.stride
            || residual.is_some_and(|r| vector && (r.slice.offset % 8 != 0 || r.slice.stride % 8 != 0))
        {
            return Err(Error::Usage("depth to space: a slice outside its buffer or not 8-channel aligned".into()));
        }
        let at_output = Size::new(written.width + shift, written.height + shift);
        // the residual buffer read while the launch is queued
        let _res_guard = residual.map(|r| r.slice.buffer.device_ptr(stream));
        let added = ShuffleResidual::of(residual, stream, batch, at_output, channels)?;
        let in_address = input.address(stream);
        let (_, _in_guard) = input.buffer.device_ptr(stream);
        let out_address = output.address(stream);
        let (_, _out_guard) = output.buffer.device_ptr(stream);
        let (ins, outs, c, n) = (input.stride as i32, output.stride as i32, channels as i32, batch as i32);
        let (h, w, f, o, sft) = (size.height as i32, size.width as i32, factor as i32, offset as i32, shift as i32);
        let (oh, ow) = (out.height as i32, out.width as i32);
        let mut args = stream.launch_builder(&self.depth_to_space);
        args.arg(&in_address).arg(&ins).arg(&out_address).arg(&outs).arg(&c).arg(&n);
        args.arg(&h).arg(&w).arg(&f).arg(&o).arg(&sft).arg(&oh).arg(&ow).arg(&added);
        let threads = batch as usize * written.pixels() * groups;
        let config = threads_config(threads.max(1), || format!("depth to space of {batch} × {size}"))?;
        // SAFETY: the argument list matches depth_to_space_nhwc; the input slice holds the channels read of every
        // pixel of the batch, the output slice the 8-channel groups written of `out` pixels and the residual every
        // pixel it adds (checked).
        unsafe { args.launch(config) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }

    /// Queues the space to depth by 2 of `channels` channels of `input` (`size` per image, from `offset` pixels in)
    /// into `output`: `floor((size − offset) / 2)` pixels along each side, `4 · channels` channels.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn space_to_depth(
        &self,
        stream: &CudaStream,
        input: SliceRef<'_>,
        output: SliceRef<'_>,
        channels: usize,
        offset: u32,
        batch: u32,
        size: Size,
    ) -> Result<()> {
        let (Some(w), Some(h)) = (size.width.checked_sub(offset), size.height.checked_sub(offset)) else {
            return Err(Error::Usage(format!("space to depth from {offset} pixels into {size}")));
        };
        let out = Size::new(w / 2, h / 2);
        check_slice("space to depth", &input, channels, batch as usize * size.pixels())?;
        check_slice("space to depth", &output, 4 * channels, batch as usize * out.pixels())?;
        let (n, ih, iw, o) = (batch as i32, size.height as i32, size.width as i32, offset as i32);
        let (oh, ow) = (out.height as i32, out.width as i32);
        let in_address = input.address(stream);
        let (_, _in_guard) = input.buffer.device_ptr(stream);
        let out_address = output.address(stream);
        let (_, _out_guard) = output.buffer.device_ptr(stream);
        let (ins, outs, c) = (input.stride as i32, output.stride as i32, channels as i32);
        let mut args = stream.launch_builder(&self.space_to_depth);
        args.arg(&in_address).arg(&ins).arg(&out_address).arg(&outs).arg(&c);
        args.arg(&n).arg(&ih).arg(&iw).arg(&o).arg(&oh).arg(&ow);
        let threads = batch as usize * out.pixels() * channels / 2;
        let config = threads_config(threads.max(1), || format!("space to depth of {batch} × {size}"))?;
        // SAFETY: the argument list matches space_to_depth_nhwc; both slices lie in live buffers with the extents
        // checked for this launch's size.
        unsafe { args.launch(config) }.map_err(Error::cuda("cuLaunchKernel"))?;
        Ok(())
    }
}
