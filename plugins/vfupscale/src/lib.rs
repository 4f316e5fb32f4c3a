// SPDX-License-Identifier: MPL-2.0

//! GStreamer plugin `vfupscale`: video super-resolution with ONNX models, on CUDA memory without host copies.
//!
//! The element is documented in `vfupscale/mod.rs`; the core that does the work is the `vfupscale` crate.

use gst::glib;

mod gstcuda;
mod vfupscale;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    vfupscale::register(plugin)
}

gst::plugin_define!(
    vfupscale,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
