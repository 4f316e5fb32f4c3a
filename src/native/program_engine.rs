// SPDX-License-Identifier: MPL-2.0
//! Running a lowered [`Program`] (the dense model families: realesrgan-x4plus, realesrgan-x4plus-anime; waifu2x
//! UpConv7) on the Hopper convolution kernels of `conv_sm90`, one CUDA stream, device-memory IO: the program is
//! fitted to the kernels' widths (`fit`), the planar fp16 model input is repacked to NHWC once (at the program's size
//! class, the last row and column repeated), every step is one launch over the program's NHWC buffers (a
//! squeeze-and-excitation three), and the last step (a convolution or a depth to space) writes the planar fp16
//! output itself (cropped to the input's size times the scale).

mod check;
mod fit;

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use super::conv_sm90::{self, ConvKernel, ConvKernels, Epilogue, Output, SliceRef};
use super::engine::time_launches;
use super::hopper::TensorMap;
use super::nhwc_layout::{LayoutKernels, Residual};
use super::program::{Activation, ConvStep, Program, ShiftedResidual, Slice, Step};
use super::squeeze_excite::{self, ExciteKernels, ExciteScratch, ExciteShape};
use crate::cuda::{GpuDevice, PlanarTensor, PlanarTensorMut};
use crate::engine::EngineMemory;
use crate::error::{Error, Result};
use crate::frame::{ElementType, Size};
use crate::model::ModelInfo;
pub use check::check_program;
use check::physical_channels;
pub use fit::fit_program;

/// One convolution's kernel, its packed weights and bias (padded to the kernel's rows).
struct ConvWeights {
    kernel: ConvKernel,
    weights: CudaSlice<u16>,
    bias: CudaSlice<f32>,
    /// The profile's name ([`step_name`]).
    name: &'static str,
}

/// What a step uploads: a convolution's weights, a squeeze-and-excitation's.
enum StepWeights {
    None,
    Conv(ConvWeights),
    Excite(CudaSlice<f32>),
}

/// The tensors for one batch and input size.
struct Bound {
    batch: u32,
    size: Size,
    /// The size the program runs: `size` rounded up to its size class.
    run: Size,
    /// The model input, planar fp16 `[batch, 3, h, w]` (written by the caller).
    input: CudaSlice<u16>,
    /// The program's buffers (index 0: the repacked input; the output buffer is not allocated).
    buffers: Vec<Option<CudaSlice<u16>>>,
    /// The model output, planar fp16 `[batch, 3, scale·h, scale·w]` (read by the caller).
    output: CudaSlice<u16>,
    /// Per step, the tensor map of a convolution's input slice.
    maps: Vec<Option<TensorMap>>,
    /// The squeeze-and-excitation steps' partial sums and gates (empty without them).
    partial: CudaSlice<f32>,
    gate: CudaSlice<f32>,
}

/// A lowered network on the Hopper kernels: fp16 activations, fp32 accumulation, device-memory IO.
pub struct ProgramEngine {
    stream: Arc<CudaStream>,
    model: ModelInfo,
    kernels: ConvKernels,
    layout: LayoutKernels,
    excite: ExciteKernels,
    /// As fitted to the kernels.
    program: Program,
    /// Per step, what it uploaded.
    weights: Vec<StepWeights>,
    weight_bytes: usize,
    bound: Option<Bound>,
}

/// Names for the profile, leaked once per distinct shape (a handful per model): `conv<in>-<out>` (`conv1x1-…` for a
/// 1×1 convolution), `+r` per residual, `^2` for an input upsampled by 2.
fn step_name(c: &ConvStep) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static NAMES: LazyLock<Mutex<HashMap<String, &'static str>>> = LazyLock::new(Default::default);
    let up = if c.upsample == 1 { String::new() } else { format!("^{}", c.upsample) };
    let kind = if c.is_pointwise() { "conv1x1-" } else { "conv" };
    let name = format!("{kind}{}-{}{}{up}", c.input.channels, c.output.channels, "+r".repeat(c.residuals.len()));
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    names.entry(name.clone()).or_insert_with(|| Box::leak(name.into_boxed_str()))
}

impl ProgramEngine {
    /// Loads the kernels (compiled once per context), fits `program` to them, checks they run it and uploads its
    /// weights. `model` is the contract of the ONNX model it was lowered from.
    pub fn new(device: &GpuDevice, stream: Arc<CudaStream>, program: Program, model: &ModelInfo) -> Result<Self> {
        let program = fit_program(program);
        check_program(&program).map_err(|why| Error::unavailable("native dense kernels", why))?;
        let kernels = ConvKernels::load(device)?;
        let layout = LayoutKernels::load(device)?;
        let excite = ExciteKernels::load(device)?;
        let mut weight_bytes = 0;
        let upload = |values: &[f32]| stream.clone_htod(values).map_err(Error::cuda("cuMemcpyHtoD"));
        let weights = program
            .steps
            .iter()
            .map(|step| match step {
                Step::Conv(c) => {
                    let (cin, cout) = (c.input.channels, c.output.channels);
                    let planar = c.output.buffer == program.output.buffer;
                    let kernel = ConvKernel::for_step(c, planar).expect("checked");
                    let packed = kernel.pack(&c.weights, cin, cout);
                    let mut bias = c.bias.clone();
                    bias.resize(kernel.rows(), 0.0);
                    weight_bytes += packed.len() * 2 + bias.len() * 4;
                    Ok(StepWeights::Conv(ConvWeights {
                        kernel,
                        weights: stream.clone_htod(&packed).map_err(Error::cuda("cuMemcpyHtoD"))?,
                        bias: upload(&bias)?,
                        name: step_name(c),
                    }))
                }
                Step::SqueezeExcite { reduce, reduce_bias, expand, expand_bias, .. } => {
                    let packed = squeeze_excite::pack(reduce, reduce_bias, expand, expand_bias);
                    weight_bytes += packed.len() * 4;
                    Ok(StepWeights::Excite(upload(&packed)?))
                }
                _ => Ok(StepWeights::None),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut model = model.clone();
        model.input_type = ElementType::F16;
        model.output_type = ElementType::F16;
        Ok(Self { stream, model, kernels, layout, excite, program, weights, weight_bytes, bound: None })
    }

    /// The model's contract as it runs here (fp16 input and output).
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    pub fn scale(&self) -> u32 {
        self.program.scale
    }

    /// Convolutions the program runs (as fitted: one per 64 outputs).
    pub fn convolutions(&self) -> usize {
        self.program.convolutions()
    }

    /// The program as the kernels run it (fitted), for the GPU tests that check every step.
    #[doc(hidden)]
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The size the program runs an input of `size` at: rounded up to its size class.
    fn run_size(&self, size: Size) -> Size {
        let align = self.program.align;
        Size::new(size.width.next_multiple_of(align), size.height.next_multiple_of(align))
    }

    /// Elements (fp16) of the input, every buffer and the output for one image of `size`.
    fn elements(&self, size: Size) -> usize {
        let p = &self.program;
        let run = self.run_size(size);
        let buffers: usize = (0..p.buffers.len())
            .filter(|&b| b != p.output.buffer)
            .map(|b| physical_channels(p, b) * p.buffers[b].size(run).pixels())
            .sum();
        3 * size.pixels() + buffers + 3 * size.scaled(p.scale).pixels()
    }

    /// The floats of the squeeze-and-excitation steps' partial sums and gates for `batch` images of `size` (the
    /// most any one step needs: they run one after another).
    fn scratch_floats(&self, batch: u32, size: Size) -> (usize, usize) {
        let p = &self.program;
        let run = self.run_size(size);
        p.steps.iter().fold((0, 0), |(partial, gate), step| match step {
            Step::SqueezeExcite { input, inset, .. } => {
                let at = p.buffers[input.buffer].size(run);
                let sums = squeeze_excite::partial_floats(batch, input.channels, at, *inset);
                (partial.max(sums), gate.max(batch as usize * input.channels))
            }
            _ => (partial, gate),
        })
    }

    /// Bytes of the tensors bound for `batch` images of `size`.
    fn tensor_bytes(&self, batch: u32, size: Size) -> usize {
        let (partial, gate) = self.scratch_floats(batch, size);
        2 * batch as usize * self.elements(size) + 4 * (partial + gate)
    }

    /// Device memory a run of `batch` images of `tile` needs, exactly (the kernels allocate nothing else), or
    /// [`crate::planning::TOO_LARGE`] when the kernels cannot take it.
    pub fn estimate(&self, tile: Size, batch: u32) -> usize {
        if !self.in_range(batch, tile) {
            return crate::planning::TOO_LARGE;
        }
        self.tensor_bytes(batch, tile) + self.weight_bytes
    }

    /// Whether `batch` images of `size` are in the kernels' range: every buffer's elements (and the output's) fit
    /// their 32-bit indices.
    fn in_range(&self, batch: u32, size: Size) -> bool {
        let p = &self.program;
        // sides far past any buffer the kernels index are refused before the u32 arithmetic of the buffers' sizes
        if size.width == 0 || size.height == 0 || size.width > 1 << 16 || size.height > 1 << 16 {
            return false;
        }
        let run = self.run_size(size);
        let fits = |per_image: usize| (batch as usize).checked_mul(per_image).is_some_and(|e| e <= i32::MAX as usize);
        (0..p.buffers.len()).all(|b| fits(p.buffers[b].size(run).pixels() * physical_channels(p, b)))
            && fits(3 * size.scaled(p.scale).pixels())
    }

    /// Device memory held now: weights and the bound tensors.
    pub fn memory(&self) -> EngineMemory {
        let tensors = self.bound.as_ref().map_or(0, |b| self.tensor_bytes(b.batch, b.size));
        EngineMemory { held: (self.weight_bytes + tensors) as u64, peak: None, limit: None }
    }

    /// Allocates (or keeps) the tensors for `batch` images of `size`, with the tensor maps of every convolution.
    pub fn bind(&mut self, batch: u32, size: Size) -> Result<()> {
        if self.bound.as_ref().is_some_and(|b| (b.batch, b.size) == (batch, size)) {
            return Ok(());
        }
        self.bound = None; // free the old tensors first
        if !self.in_range(batch, size) {
            return Err(Error::InvalidConfig(format!("native dense kernels: {batch} x {size} is out of their range")));
        }
        let (run, (partial, gate)) = (self.run_size(size), self.scratch_floats(batch, size));
        let p = &self.program;
        let px = batch as usize * size.pixels();
        let elements = |b: usize| batch as usize * p.buffers[b].size(run).pixels() * physical_channels(p, b);
        let alloc = |n: usize| self.stream.alloc_zeros::<u16>(n).map_err(Error::cuda("cuMemAlloc"));
        let floats = |n: usize| self.stream.alloc_zeros::<f32>(n.max(1)).map_err(Error::cuda("cuMemAlloc"));
        let buffers = (0..p.buffers.len())
            .map(|b| if b == p.output.buffer { Ok(None) } else { alloc(elements(b)).map(Some) })
            .collect::<Result<Vec<_>>>()?;
        let maps = p
            .steps
            .iter()
            .map(|step| {
                let Step::Conv(c) = step else { return Ok(None) };
                let buffer = buffers[c.input.buffer].as_ref().expect("inputs are allocated");
                let at = p.buffers[c.input.buffer].size(run);
                let slice = SliceRef { buffer, offset: c.input.offset, stride: physical_channels(p, c.input.buffer) };
                let channels = c.input.channels.next_multiple_of(conv_sm90::CHUNK);
                conv_sm90::input_map(slice, channels, &self.stream, batch, at).map(Some)
            })
            .collect::<Result<Vec<_>>>()?;
        self.bound = Some(Bound {
            batch,
            size,
            run,
            input: alloc(3 * px)?,
            buffers,
            output: alloc(3 * px * (p.scale * p.scale) as usize)?,
            maps,
            partial: floats(partial)?,
            gate: floats(gate)?,
        });
        Ok(())
    }

    /// Image `slot` of the input tensor (planar fp16 `[batch, 3, h, w]`), written by the caller on our stream.
    pub fn input_tensor(&mut self, slot: u32) -> Result<PlanarTensorMut<'_>> {
        let b = self.bound.as_mut().ok_or_else(|| Error::Usage("native dense kernels: no tensors bound".into()))?;
        let range = super::planar_image("input", slot, b.batch, b.size)?;
        PlanarTensorMut::from_view(b.input.slice_mut(range), &self.stream, b.size)
    }

    /// Image `slot` of the output tensor (planar fp16 `[batch, 3, scale·h, scale·w]`), read by the caller on our
    /// stream.
    pub fn output_tensor(&mut self, slot: u32) -> Result<PlanarTensor<'_>> {
        let scale = self.program.scale;
        let b = self.bound.as_ref().ok_or_else(|| Error::Usage("native dense kernels: no tensors bound".into()))?;
        let size = b.size.scaled(scale);
        let range = super::planar_image("output", slot, b.batch, size)?;
        PlanarTensor::from_view(b.output.slice(range), &self.stream, size)
    }

    /// Buffer `buffer` of the bound tensors as fp16 bits, NHWC with its channels per pixel (the model input
    /// repacked to 32), after the work queued so far: for the GPU tests that check every step.
    #[doc(hidden)]
    pub fn buffer_bits(&self, buffer: usize) -> Result<Vec<u16>> {
        let b = self.bound.as_ref().ok_or_else(|| Error::Usage("native dense kernels: no tensors bound".into()))?;
        let slice = b.buffers.get(buffer).and_then(Option::as_ref);
        let slice = slice.ok_or_else(|| Error::Usage(format!("buffer {buffer} is not one the kernels hold")))?;
        self.stream.clone_dtoh(slice).map_err(Error::cuda("cuMemcpyDtoH"))
    }

    /// Queues the whole program on the stream (no synchronisation).
    pub fn run(&mut self) -> Result<()> {
        self.launch_all(|_| Ok(()))
    }

    /// Runs the program once and returns each launch's time in milliseconds (CUDA events), in order: the input's
    /// repacking, then each step (`conv<in>-<out>[+r…][^2]`, `nearest`).
    pub fn profile(&mut self) -> Result<Vec<(String, f64)>> {
        let stream = self.stream.clone();
        time_launches(&stream, |after| self.launch_all(after))
    }

    /// Queues every launch, calling `after` with its name after each (once for a squeeze-and-excitation's three).
    fn launch_all(&mut self, mut after: impl FnMut(&'static str) -> Result<()>) -> Result<()> {
        let Self { stream, kernels, layout, excite, program, weights, bound, .. } = self;
        let b = bound.as_mut().ok_or_else(|| Error::Usage("native dense kernels: no tensors bound".into()))?;
        let s: &CudaStream = stream;
        let (batch, size, run) = (b.batch, b.size, b.run);
        let Bound { input, buffers, output, maps, partial, gate, .. } = b;
        let packed = buffers[Program::INPUT].as_mut().expect("the input buffer is allocated");
        layout.pack_input(s, input, packed, batch, (size, run))?;
        after("pack-input")?;
        let at = |x: &Slice| program.buffers[x.buffer].size(run);
        for (i, step) in program.steps.iter().enumerate() {
            match (step, &weights[i]) {
                (Step::Conv(c), StepWeights::Conv(w)) => {
                    let map = maps[i].as_ref().expect("every convolution has a map");
                    let output = if c.output.buffer == program.output.buffer {
                        Output::Planar(&mut *output)
                    } else {
                        Output::Slice(view(program, buffers, c.output))
                    };
                    conv_step(kernels, s, program, buffers, (c, w, map), output, (batch, at(&c.input)))?;
                    after(w.name)?;
                }
                (Step::Nearest { input: from, output: to, factor }, _) => {
                    let (from_view, to_view) = (view(program, buffers, *from), view(program, buffers, *to));
                    // 8 channels at a time: the model input's 3 with its zero channels after them (check_program)
                    let channels = from.channels.next_multiple_of(8);
                    layout.nearest(s, from_view, to_view, channels, *factor, batch, at(from))?;
                    after("nearest")?;
                }
                (Step::EdgePad { input: from, output: to, pad }, _) => {
                    let (from_view, to_view) = (view(program, buffers, *from), view(program, buffers, *to));
                    // 8 channels at a time: UpConv7's 3 with the model input's zero channels after them
                    // (check_program)
                    let channels = from.channels.next_multiple_of(8);
                    layout.edge_pad(s, from_view, to_view, channels, *pad, batch, at(from))?;
                    after("edge-pad")?;
                }
                (Step::SpaceToDepth { input: from, output: to, offset }, _) => {
                    let (from_view, to_view) = (view(program, buffers, *from), view(program, buffers, *to));
                    layout.space_to_depth(s, from_view, to_view, from.channels, *offset, batch, at(from))?;
                    after("space-to-depth")?;
                }
                (Step::SqueezeExcite { input: from, output: to, inset, reduce_bias, .. }, StepWeights::Excite(w)) => {
                    let shape = ExciteShape { channels: from.channels, hidden: reduce_bias.len(), inset: *inset };
                    let views = (view(program, buffers, *from), view(program, buffers, *to));
                    let scratch = ExciteScratch { partial: &mut *partial, gate: &mut *gate };
                    excite.run(s, views, &shape, w, scratch, batch, at(from))?;
                    after("squeeze-excite")?;
                }
                (Step::Shuffle { input: from, output: to, factor, offset, shift, residual }, _) => {
                    let from_view = view(program, buffers, *from);
                    let residual = residual.map(|r: ShiftedResidual| Residual {
                        slice: view(program, buffers, r.slice),
                        size: at(&r.slice),
                        offset: r.offset,
                        beta: r.beta,
                    });
                    if to.buffer == program.output.buffer {
                        let sizes = (at(from), size.scaled(program.scale));
                        let shape = (to.channels, *factor, *offset);
                        layout.depth_to_planes(s, from_view, output, shape, residual.as_ref(), batch, sizes)?;
                    } else {
                        let views = (from_view, view(program, buffers, *to));
                        let shape = (to.channels, *factor, *offset, *shift);
                        let sizes = (at(from), at(to));
                        layout.depth_to_space(s, views, shape, residual.as_ref(), batch, sizes)?;
                    }
                    after(if *factor == 1 { "crop" } else { "depth-to-space" })?;
                }
                (Step::Conv(_) | Step::SqueezeExcite { .. }, _) => {
                    unreachable!("every convolution and squeeze-and-excitation has its weights (new)")
                }
            }
        }
        Ok(())
    }
}

/// Slice `x` of the program's buffers as the kernels take it.
fn view<'a>(program: &Program, buffers: &'a [Option<CudaSlice<u16>>], x: Slice) -> SliceRef<'a> {
    SliceRef {
        buffer: buffers[x.buffer].as_ref().expect("buffers read are allocated"),
        offset: x.offset,
        stride: physical_channels(program, x.buffer),
    }
}

/// Queues convolution `c` (its weights and input map) into `output`, for `batch` images whose input is `size`.
fn conv_step(
    kernels: &ConvKernels,
    stream: &CudaStream,
    program: &Program,
    buffers: &[Option<CudaSlice<u16>>],
    (c, w, map): (&ConvStep, &ConvWeights, &TensorMap),
    output: Output<'_>,
    (batch, size): (u32, Size),
) -> Result<()> {
    let slope = match c.activation {
        Activation::None => 1.0,
        Activation::Leaky(slope) => slope,
    };
    let residuals: Vec<(SliceRef<'_>, f32)> =
        c.residuals.iter().map(|&(r, f)| (view(program, buffers, r), f)).collect();
    let epilogue = Epilogue { bias: &w.bias, slope, alpha: c.alpha, residuals: &residuals };
    let source = buffers[c.input.buffer].as_ref().expect("buffers read are allocated");
    let cin = c.input.channels.next_multiple_of(conv_sm90::CHUNK);
    let cout = c.output.channels;
    kernels.conv(stream, w.kernel, (source, map, cin), &w.weights, cout, &epilogue, output, batch, size)
}
