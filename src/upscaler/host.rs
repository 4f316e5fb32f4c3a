// SPDX-License-Identifier: MPL-2.0
//! The host path: frames in host memory converted in Rust (`cpu.rs`) into the engine's host input tensor, the
//! model run by ONNX Runtime on whichever provider was chosen, the output blended and composed in Rust
//! (`compose.rs`); or classic output alone.

use std::time::Instant;

use crate::color::{Colorimetry, code_to_rgb, rgb_to_code};
use crate::cpu;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::frame::{HostFrame, HostFrameMut, HostTensor, HostTensorMut, Rect, Size, TensorElement};
use crate::planning::RunPlan;
use crate::stats::FrameTimes;
use crate::tiling::Tile;

use super::output::{HostOutput, OutputSettings};

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Upscales one frame completely; says whether the temporal history was updated. `accumulator` is the float32
/// model output frame tiles are blended into (empty for whole frames).
#[allow(clippy::too_many_arguments)]
pub(super) fn upscale(
    engine: &mut Engine,
    plan: &RunPlan,
    accumulator: &mut [f32],
    output: &mut HostOutput,
    settings: &OutputSettings,
    src: &HostFrame,
    dst: &mut HostFrameMut,
    ((src_colour, dst_colour), history_valid): ((Colorimetry, Colorimetry), bool),
) -> Result<(FrameTimes, bool)> {
    let (to_rgb, to_code) = (code_to_rgb(src_colour, src.format.depth()), rgb_to_code(dst_colour, dst.format.depth()));
    let tile_in = 3 * plan.tiles.tile.pixels();
    let tile_out = 3 * plan.tiles.tile.scaled(plan.tiles.scale).pixels();
    let model_size = output.plan.model_output;
    let blended = !plan.is_whole_frame();
    if blended && accumulator.len() != 3 * model_size.pixels() {
        return Err(Error::Usage("a tiled plan without an accumulation frame".into()));
    }
    accumulator.fill(0.0);
    let mut times = FrameTimes::default();
    let mut stabilised = false;
    for chunk in plan.tiles.tiles.chunks(plan.batch as usize) {
        let t0 = Instant::now();
        for (j, tile) in chunk.iter().enumerate() {
            let region = if blended { tile.input } else { Rect::of_size(src.size) };
            match engine.input_host()? {
                HostTensorMut::F32(t) => cpu::frame_to_planar(src, &to_rgb, region, &mut t[j * tile_in..]),
                HostTensorMut::F16(t) => cpu::frame_to_planar(src, &to_rgb, region, &mut t[j * tile_in..]),
            }
        }
        times.convert_in += ms_since(t0);
        let t1 = Instant::now();
        engine.run()?;
        if let Some(stream) = engine.stream() {
            // a GPU provider with host tensors copies the output to host memory on our stream
            stream.synchronize().map_err(Error::cuda("cuStreamSynchronize"))?;
        }
        times.inference += ms_since(t1);
        let t2 = Instant::now();
        let tensor = engine.output_host()?;
        let colours = (&to_rgb, &to_code);
        stabilised = match (blended, &tensor) {
            (true, HostTensor::F32(t)) => blend_chunk(t, chunk, tile_out, accumulator, model_size),
            (true, HostTensor::F16(t)) => blend_chunk(t, chunk, tile_out, accumulator, model_size),
            (false, HostTensor::F32(t)) => output.finish(settings, Some(*t), src, colours, history_valid, dst)?,
            (false, HostTensor::F16(t)) => output.finish(settings, Some(*t), src, colours, history_valid, dst)?,
        };
        times.convert_out += ms_since(t2);
    }
    if blended {
        let t3 = Instant::now();
        stabilised = output.finish(settings, Some(&*accumulator), src, (&to_rgb, &to_code), history_valid, dst)?;
        times.convert_out += ms_since(t3);
    }
    Ok((times, stabilised))
}

/// Blends a chunk's tile outputs (`tile_out` values each, in `outputs`) into the accumulation frame; nothing is
/// stabilised yet (false).
fn blend_chunk<T: TensorElement>(
    outputs: &[T],
    chunk: &[Tile],
    tile_out: usize,
    accumulator: &mut [f32],
    model_size: Size,
) -> bool {
    for (j, tile) in chunk.iter().enumerate() {
        cpu::blend_tile(&outputs[j * tile_out..], tile, accumulator, model_size);
    }
    false
}

/// The classic output of one frame (no model runs).
pub(super) fn classic(
    output: &mut HostOutput,
    settings: &OutputSettings,
    src: &HostFrame,
    dst: &mut HostFrameMut,
    (src_colour, dst_colour): (Colorimetry, Colorimetry),
) -> Result<FrameTimes> {
    let t = Instant::now();
    let (to_rgb, to_code) = (code_to_rgb(src_colour, src.format.depth()), rgb_to_code(dst_colour, dst.format.depth()));
    output.finish::<f32>(settings, None, src, (&to_rgb, &to_code), false, dst)?;
    Ok(FrameTimes { convert_out: ms_since(t), ..FrameTimes::default() })
}
