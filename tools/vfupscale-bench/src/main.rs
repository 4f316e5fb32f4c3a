// SPDX-License-Identifier: MPL-2.0
//! `vfupscale-bench`: what the element costs on top of the model, measured side by side on an NVIDIA GPU.
//!
//! For each configuration (model, precision, input size), in one run:
//! - (a) model only: the engine the element chooses, chosen by the same `vfupscale::select_engine` (our native
//!   kernels, admitted by their agreement with ONNX Runtime, or ONNX Runtime with the element's session options),
//!   input and output in device memory, the input a frame of the clip that (b) and (c) run (the time depends on the
//!   picture: the same engine is also timed on the peer's noisy test image, what ours / torch.compile compares, on
//!   zeros, and once more after (c)), one stream synchronisation per run as in the element; also ONNX Runtime's
//!   CUDA provider on the same model, and for engines that profile their kernels (the native ones) the time of
//!   each kernel as the engine names it;
//! - (b) element only: frames decoded beforehand into CUDA memory of the element's context, pushed through
//!   `appsrc ! vfupscale ! fakesink`;
//! - (c) full pipeline: `filesrc ! qtdemux ! h264parse ! nvh264dec ! queue ! vfupscale ! queue ! fakesink`.
//!
//! Each is timed after `--warmup` frames (model runs in (a)), as ms/frame and fps, with the throughput ratios b/a and
//! c/a (1.0: the element or pipeline costs nothing beyond the model); the element's stage means are taken over the
//! same timed frames (its `stats` read at the end of the warm-up and at the end, and differenced). A run that times
//! no frames is an error, never a result. `--peer` then runs `tools/peer/torch_peer.py` (PyTorch, torch.compile) on
//! the same GPU and adds ours / torch.compile. `--json FILE` writes every number. `--soak FRAMES` checks device
//! memory over a long run instead (see `vfupscale-bench --help`).

mod config;
mod core_api;
mod measure;
mod peer;
mod pipelines;
mod probes;
mod report;
mod soak;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use config::{Args, Config, Settings};
use core_api::{Backend, BackendChoice, Gpu, ModelRun, resolve_model, test_frame};
use measure::Measure;
use report::{Report, Row, kernel_summary, stages_summary, table};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfupscale-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    let mut settings = args.settings()?;
    let matrix = match args.soak {
        Some(_) => vec![args.soak_config(&resolve_model)?],
        None => args.matrix(&resolve_model)?,
    };
    gst::init()?;
    gstvfupscale::plugin_register_static()?;
    let gpu = Gpu::open(args.device)?;
    let (driver, onnx_runtime) = core_api::versions();
    println!(
        "GPU {}: {} (CUDA driver API {driver}); ONNX Runtime {onnx_runtime}; GStreamer {}",
        gpu.ordinal(),
        gpu.name(),
        gst::version_string()
    );
    if let Some(frames) = args.soak {
        return soak::soak(&matrix[0], &settings, frames, &gpu);
    }
    settings.decoder = pipelines::h264_decoder(args.device)?;
    let peer = match args.peer {
        true => {
            Some(peer::Peer { python: args.python.clone(), script: peer::find_script(args.peer_script.as_deref())? })
        }
        false => None,
    };
    println!(
        "clips of {} frames at {} fps decoded by {}; {} frames of warm-up; (a) {} model runs; element async-depth {}",
        settings.frames,
        settings.framerate,
        settings.decoder,
        settings.warmup,
        settings.model_runs(),
        settings.async_depth
    );
    let dir = std::env::temp_dir().join("vfupscale-bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let mut rows = Vec::new();
    let mut failure = None;
    for (i, cfg) in matrix.iter().enumerate() {
        println!("[{}/{}] {cfg}", i + 1, matrix.len());
        match measure(cfg, &settings, &gpu, &dir) {
            Ok(row) => rows.push(row),
            Err(e) => {
                failure = Some(e.context(cfg.to_string()));
                break;
            }
        }
    }
    if let (Some(peer), None) = (&peer, &failure) {
        match peer.measure(&matrix, &settings, &dir) {
            Ok(results) => rows.iter_mut().zip(results).for_each(|(row, result)| row.set_peer(result)),
            Err(e) => failure = Some(e),
        }
    }
    print!("\n{}", table(&rows));
    if let Some(path) = &args.json {
        let report = Report {
            gpu: gpu.name().to_string(),
            device: gpu.ordinal(),
            cuda_driver_api: driver,
            onnx_runtime,
            gstreamer: gst::version_string().to_string(),
            decoder: settings.decoder.clone(),
            framerate: settings.framerate.to_string(),
            frames: settings.frames,
            warmup_frames: settings.warmup,
            model_runs: settings.model_runs(),
            async_depth: settings.async_depth,
            results: rows,
            failure: failure.as_ref().map(|e| format!("{e:#}")),
        };
        report.write_json(path)?;
    }
    failure.map_or(Ok(()), Err)
}

/// (a), (b) and (c) for one configuration.
fn measure(cfg: &Config, settings: &Settings, gpu: &Gpu, dir: &Path) -> Result<Row> {
    let runs = settings.model_runs();
    let path = &cfg.model.path;
    let clip = pipelines::clip(cfg.size, settings.frames, settings.framerate, dir)?;
    let picture = pipelines::clip_frame_rgb(&clip, &settings.decoder, cfg.size, settings.frames / 2)
        .context("a frame of the test clip for (a)")?;
    let peer_picture = test_frame(cfg.size);
    let mut chosen = ModelRun::open(gpu, path, cfg.precision, BackendChoice::Auto, cfg.size)
        .context("choosing the engine as the element does")?;
    let engine = chosen.backend();
    chosen.set_input(&picture)?;
    let a = chosen.time(settings.warmup, runs).with_context(|| format!("(a) the model alone on {engine}"))?;
    println!(
        "  engine {engine}; (a) model alone on a frame of the clip {:.3} ms ({:.1}/s) over {} runs",
        a.ms_per_frame, a.fps, a.frames
    );
    if let Some(agreement) = &chosen.native_agreement {
        println!(
            "  native kernels agree with ONNX Runtime to {:.1} dB (largest difference {:.4})",
            agreement.psnr_db, agreement.max_difference
        );
    }
    let kernels = chosen.kernel_profile().with_context(|| format!("profiling the {engine} engine's kernels"))?;
    if let Some(kernels) = &kernels {
        println!("  {engine} kernels: {}", kernel_summary(kernels));
    }
    // the same engine on the peer's kind of picture (what a / torch.compile compares) and on zeros (how much a
    // constant input flatters the time: what (a) ran on before attempt 15)
    chosen.set_input(&peer_picture)?;
    let on_test_frame =
        chosen.time(settings.warmup, runs).with_context(|| format!("(a) on the test frame on {engine}"))?;
    chosen.set_input(&vec![0.0; peer_picture.len()])?;
    let on_zeros = chosen.time(settings.warmup, runs).with_context(|| format!("(a) on zeros on {engine}"))?;
    let against = |m: &Measure| 100.0 * (m.ms_per_frame / a.ms_per_frame - 1.0);
    println!(
        "  (a) on the peer's test frame {:.3} ms ({:+.1} %), on zeros {:.3} ms ({:+.1} %)",
        on_test_frame.ms_per_frame,
        against(&on_test_frame),
        on_zeros.ms_per_frame,
        against(&on_zeros)
    );
    let native_agreement = chosen.native_agreement;
    // one engine on the GPU at a time: the chosen one is closed before the next opens
    drop(chosen);
    let ort = match engine {
        Backend::Cuda => a,
        _ => {
            let mut cuda = ModelRun::open(gpu, path, cfg.precision, BackendChoice::Cuda, cfg.size)
                .context("ONNX Runtime's CUDA provider")?;
            cuda.set_input(&picture)?;
            let ort = cuda.time(settings.warmup, runs).context("the model alone on ONNX Runtime's CUDA provider")?;
            println!("  ONNX Runtime CUDA, model alone {:.3} ms ({:.1}/s)", ort.ms_per_frame, ort.fps);
            ort
        }
    };
    let b = pipelines::element_only(cfg, settings, engine, &clip).context("(b) the element alone")?;
    println!(
        "  (b) element {:.3} ms ({:.1}/s); stages {}",
        b.measure.ms_per_frame,
        b.measure.fps,
        stages_summary(&b.stages)
    );
    let c = pipelines::full_pipeline(cfg, settings, engine, &clip).context("(c) the whole pipeline")?;
    println!(
        "  (c) pipeline {:.3} ms ({:.1}/s); stages {}",
        c.measure.ms_per_frame,
        c.measure.fps,
        stages_summary(&c.stages)
    );
    // (a) once more, now that the GPU has run for a while: under the power limit its clocks depend on how warm it
    // is, so the spread of the two (a) runs says how far a difference between (a) and (c) is the order of the runs
    let mut again = ModelRun::open(gpu, path, cfg.precision, BackendChoice::Auto, cfg.size)?;
    again.set_input(&picture)?;
    let a_again = again.time(settings.warmup, runs).with_context(|| format!("(a) again on {engine}"))?;
    drop(again);
    println!("  (a) again after (c) {:.3} ms ({:+.1} %)", a_again.ms_per_frame, against(&a_again));
    Ok(Row {
        model: cfg.model.name.clone(),
        precision: cfg.precision.name(),
        width: cfg.size.width,
        height: cfg.size.height,
        engine: engine.name(),
        native_agreement,
        model_only: a,
        model_on_test_frame: on_test_frame,
        model_on_zeros: on_zeros,
        model_after_pipeline: a_again,
        element: b.measure,
        pipeline: c.measure,
        b_over_a: b.measure.throughput_over(&a),
        c_over_a: c.measure.throughput_over(&a),
        onnx_runtime_cuda_model: ort,
        c_over_onnx_runtime_cuda: c.measure.throughput_over(&ort),
        element_stages: b.stages,
        pipeline_stages: c.stages,
        native_kernels: kernels,
        peer: None,
        a_over_torch_compile: None,
        c_over_torch_compile: None,
    })
}
