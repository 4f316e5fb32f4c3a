// SPDX-License-Identifier: MPL-2.0

//! What the element's test binaries share: GStreamer set up once with the plugin registered, a scratch directory.

use std::path::PathBuf;
use std::sync::Once;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstvfupscale::plugin_register_static().expect("register the plugin");
    });
}

/// A directory `vfupscale-{suite}-{pid}` for this test process's generated files.
pub fn scratch_dir(suite: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vfupscale-{suite}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
