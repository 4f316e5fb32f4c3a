// SPDX-License-Identifier: MPL-2.0
//! The command line of `vfupscale-model`: help and version on stdout with status 0, usage errors as one line with
//! status 2, `inspect` by installed name, failures as one line with status 1.

use std::path::Path;
use std::process::{Command, Output};

use vfupscale_onnx::onnx::{Dim, GraphBuilder, META_SCALE, attr_string, data_type, write_model};

fn tool(args: &[&str], model_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vfupscale-model"))
        .args(args)
        .env("VFUPSCALE_MODEL_DIR", model_dir)
        .output()
        .expect("vfupscale-model runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A models directory holding one installed x2 model (nearest-neighbour Resize) named `nearest-x2`.
fn models_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let dynamic = || vec![Dim::Param("n".into()), Dim::Fixed(3), Dim::Param("h".into()), Dim::Param("w".into())];
    let mut g = GraphBuilder::with_io(data_type::FLOAT, &dynamic(), &dynamic());
    let scales = g.f32_init("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    g.op_into("Resize", &["input", "", &scales], "output", vec![attr_string("mode", "nearest")]);
    write_model(&dir.path().join("nearest-x2.onnx"), &g.into_model("nearest", &[(META_SCALE, "2".into())])).unwrap();
    dir
}

#[test]
fn help_goes_to_stdout_with_status_0() {
    let dir = models_dir();
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let out = tool(args, dir.path());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{args:?} wrote to stderr: {}", stderr(&out));
        for command in ["fetch", "list", "import-ncnn", "fp16", "inspect"] {
            assert!(stdout(&out).contains(command), "{args:?} does not name {command}: {}", stdout(&out));
        }
    }
}

#[test]
fn every_subcommand_has_help() {
    let dir = models_dir();
    for (command, option) in [
        ("fetch", "--force"),
        ("list", "Usage"),
        ("import-ncnn", "--add-input"),
        ("fp16", "--output"),
        ("inspect", "NAME"),
    ] {
        for args in [[command, "--help"], ["help", command]] {
            let out = tool(&args, dir.path());
            assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
            assert!(stdout(&out).contains(option), "{args:?} does not mention {option}: {}", stdout(&out));
        }
    }
}

#[test]
fn version_is_printed() {
    let out = tool(&["--version"], models_dir().path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("vfupscale-model {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_are_one_line_with_status_2() {
    let dir = models_dir();
    for (args, needle) in [
        (&["frobnicate"][..], "frobnicate"),
        (&["import-ncnn", "m.param", "m.bin"], "--output"),
        (&["import-ncnn", "m.param", "m.bin", "-o", "o.onnx", "--add-input", "bilinear"], "nearest"),
        (&["list", "--fp16"], "--fp16"),
        (&["inspect"], "MODEL.onnx|NAME"),
    ] {
        let out = tool(args, dir.path());
        let message = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {message}");
        assert_eq!(message.trim_end().lines().count(), 1, "{args:?}: not one line: {message}");
        assert!(message.starts_with("vfupscale-model: ") && message.contains(needle), "{args:?}: {message}");
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
}

#[test]
fn inspect_takes_an_installed_name() {
    let dir = models_dir();
    let out = tool(&["inspect", "nearest-x2"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = stdout(&out);
    let path = dir.path().join("nearest-x2.onnx");
    assert!(report.starts_with(&format!("model: {}\nname: nearest\n", path.display())), "{report}");
    assert!(report.contains("input: input float32 [n, 3, h, w]"), "{report}");
    assert!(report.lines().any(|l| l.starts_with("contract: ") && l.contains("x2")), "{report}");
    assert!(report.contains("operators: Resize×1"), "{report}");
    // a lone Resize is neither native family: the report says so and why
    let native = report.lines().find(|l| l.starts_with("native kernels: ")).expect("a native kernels line");
    assert!(native.contains("ONNX Runtime runs it") && native.contains("SRVGGNetCompact"), "{native}");
    // the same report as for the path
    assert_eq!(stdout(&tool(&["inspect", path.to_str().unwrap()], dir.path())), report);
}

#[test]
fn inspect_refuses_an_unknown_name_in_one_line() {
    let dir = models_dir();
    let out = tool(&["inspect", "no-such-model"], dir.path());
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert_eq!(message.trim_end().lines().count(), 1, "not one line: {message}");
    assert!(message.contains("no-such-model") && message.contains("no installed model"), "{message}");
    assert!(message.contains(&dir.path().display().to_string()) && message.contains("nearest-x2"), "{message}");
    assert!(stdout(&out).is_empty());

    // a model of the catalog that is not installed: says how to install it
    let message = stderr(&tool(&["inspect", "realcugan-up2x"], dir.path()));
    assert!(message.contains("not installed") && message.contains("vfupscale-model fetch realcugan-up2x"), "{message}");

    // a path keeps naming the file and the reason
    let missing = dir.path().join("absent.onnx");
    let message = stderr(&tool(&["inspect", missing.to_str().unwrap()], dir.path()));
    assert!(message.contains("absent.onnx") && message.contains("cannot read"), "{message}");
}

#[test]
fn list_stops_quietly_on_a_closed_pipe() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vfupscale-model"))
        .arg("list")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed before the first line is written
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

/// What `fetch` installs is named as installed (the ncnn packages' file stems are names like "scale2.0x_model"):
/// checked on the models this machine has installed (scripts/setup.sh installs the catalog).
#[test]
fn installed_models_are_named_as_installed() {
    let dir = std::env::var_os("VFUPSCALE_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(vfupscale::models::models_dir);
    let mut checked = 0;
    for name in ["waifu2x-upconv7-x2", "realcugan-up2x", "realesrgan-x4plus"] {
        let path = dir.join(format!("{name}.onnx"));
        if !path.exists() {
            continue;
        }
        let out = tool(&["inspect", name], &dir);
        assert!(stdout(&out).contains(&format!("\nname: {name}\n")), "{name}: {}", stdout(&out));
        checked += 1;
    }
    eprintln!("{checked} installed models checked in {}", dir.display());
    // CI installs the catalog first (scripts/setup.sh --test): there, all of them are checked
    if std::env::var_os("CI").is_some() {
        assert_eq!(checked, 3, "models missing from {}", dir.display());
    }
}
