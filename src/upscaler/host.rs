// SPDX-License-Identifier: MPL-2.0
//! The host path: frames in host memory converted in Rust (`cpu.rs`) into the engine's host input tensor, the
//! model run by ONNX Runtime on whichever provider was chosen, the output blended or converted back in Rust.

use std::time::Instant;

use crate::color::{Colorimetry, code_to_rgb, rgb_to_code};
use crate::cpu;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::frame::{HostFrame, HostFrameMut, HostTensor, HostTensorMut, Rect};
use crate::planning::RunPlan;
use crate::stats::FrameTimes;

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Upscales one frame completely. `accumulator` is the float32 output frame tiles are blended into (empty for
/// whole frames).
pub(super) fn upscale(
    engine: &mut Engine,
    plan: &RunPlan,
    accumulator: &mut [f32],
    src: &HostFrame,
    dst: &mut HostFrameMut,
    (src_colour, dst_colour): (Colorimetry, Colorimetry),
) -> Result<FrameTimes> {
    let to_rgb = code_to_rgb(src_colour, src.format.depth());
    let to_code = rgb_to_code(dst_colour, dst.format.depth());
    let tile_in = 3 * plan.tiles.tile.pixels();
    let tile_out = 3 * plan.tiles.tile.scaled(plan.tiles.scale).pixels();
    let out_size = dst.size;
    let blended = !plan.is_whole_frame();
    if blended && accumulator.len() != 3 * out_size.pixels() {
        return Err(Error::Usage("a tiled plan without an accumulation frame".into()));
    }
    accumulator.fill(0.0);
    let mut times = FrameTimes::default();
    let t = Instant::now();
    cpu::fill_extra(src, dst);
    times.convert_in += ms_since(t);
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
        let output = engine.output_host()?;
        if blended {
            for (j, tile) in chunk.iter().enumerate() {
                match &output {
                    HostTensor::F32(t) => cpu::blend_tile(&t[j * tile_out..], tile, accumulator, out_size),
                    HostTensor::F16(t) => cpu::blend_tile(&t[j * tile_out..], tile, accumulator, out_size),
                }
            }
        } else {
            match output {
                HostTensor::F32(t) => cpu::planar_to_frame(t, &to_code, dst),
                HostTensor::F16(t) => cpu::planar_to_frame(t, &to_code, dst),
            }
        }
        times.convert_out += ms_since(t2);
    }
    if blended {
        let t3 = Instant::now();
        cpu::planar_to_frame(accumulator, &to_code, dst);
        times.convert_out += ms_since(t3);
    }
    Ok(times)
}
