// SPDX-License-Identifier: MPL-2.0
//! `vfupscale`: upscale videos and images with a super-resolution model.
//!
//! ```text
//! vfupscale -i IN… -o OUT [-m MODEL] [-s FACTOR | -W PX | -H PX | --size WxH] [--encoder E] [--crf N | --bitrate K]
//!           [--preset P] [-e KEY=VALUE]… [--chroma 420|444] [--bit-depth 8|10] [--progress bar|plain|json|none] [-y] [-q]
//! vfupscale preview -i IN [--at TIME] [--crop WxH+X+Y] -o OUT.png
//! vfupscale bench -i IN [--frames N]
//! vfupscale info
//! ```
//! On a machine with an NVIDIA GPU it decodes with NVDEC, upscales in CUDA memory and encodes with NVENC when the
//! GPU has it; elsewhere it decodes, upscales and encodes on the CPU. Audio and subtitle streams are copied.
//!
//! The code: `cli` (what can be typed) → `plan` (checked jobs: `job`, with `models`, `size`, `encoder`, `media`,
//! `output`) → `batch` runs them: videos through `pipeline` (`branch`, `streams`), images through `frames` and
//! `imageio`; `progress`, `report` and `summary` are what the user reads; `signals` handles Ctrl+C, SIGTERM, SIGHUP;
//! `crash` prints where a crash happened.

mod batch;
mod bench;
mod branch;
mod cli;
mod crash;
mod encoder;
mod frames;
mod imageio;
mod info;
mod job;
mod manifest;
mod media;
mod merge;
mod models;
mod output;
mod pipeline;
mod plan;
mod preview;
mod progress;
mod props;
mod range;
mod report;
mod segments;
mod signals;
mod size;
mod steps;
mod streams;
mod summary;
mod timeline;
mod worker;
mod workers;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// clap's error as one line: "vfupscale: invalid value 'fp8' for '--precision <P>' [possible values: …]".
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines.join(" ");
    format!("vfupscale: {} (see vfupscale --help)", joined.trim_start_matches("error: "))
}

fn main() -> ExitCode {
    crash::install();
    // first, so that a signal at any moment is handled (and never kills the process half-way)
    if let Err(e) = signals::install() {
        eprintln!("vfupscale: error: {e}");
        return ExitCode::FAILURE;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = gst::init() {
        eprintln!("vfupscale: error: GStreamer: {e}");
        return ExitCode::FAILURE;
    }
    // the element ships in this binary; an installed copy of the plugin would do as well
    let _ = gstvfupscale::plugin_register_static();
    match &cli.command {
        Some(Command::Info) => match info::print() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vfupscale: error: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Preview(args)) => preview::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Segments(command)) => steps::command(command),
        None => batch::run(&cli.run),
    }
}
