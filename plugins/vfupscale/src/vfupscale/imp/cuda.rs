// SPDX-License-Identifier: MPL-2.0

//! The element's side of CUDA context sharing: whether CUDA memory can be offered, the `GstCudaContext` wrapping
//! the primary context of the configured device (announced so that decoders upstream decode into it), and the
//! CUDA buffer pools it offers and uses.

use std::sync::LazyLock;

use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::VideoInfo;
use vfupscale::cuda::GpuDevice;

use super::{CAT, VfUpscale, lock};
use crate::gstcuda::CudaContext;
use crate::vfupscale::BackendProperty;
use crate::vfupscale::settings::Settings;

/// CUDA driver with a device present (checked once per process).
fn cuda_driver_present() -> bool {
    static PRESENT: LazyLock<bool> = LazyLock::new(|| vfupscale::cuda::driver_status().is_ok());
    *PRESENT
}

impl VfUpscale {
    /// Whether CUDA-memory caps can be offered now: after start, when the upscaler runs on the GPU; before, when
    /// the backend allows the GPU and a context or at least a driver is there.
    pub(super) fn cuda_allowed(&self) -> bool {
        if lock(&self.props).settings.backend == BackendProperty::Cpu {
            return false;
        }
        let (running, have_context) = {
            let snapshot = lock(&self.snapshot);
            (snapshot.running.as_ref().map(|r| r.cuda_frames), snapshot.cuda.is_some())
        };
        running.unwrap_or_else(|| have_context || cuda_driver_present())
    }

    /// Creates (or reuses) the `GstCudaContext` wrapping the primary context of the configured device and announces
    /// it, so that upstream decoders, which reach READY after us, decode into it.
    pub(super) fn ensure_cuda_context(&self, settings: &Settings) {
        if settings.backend == BackendProperty::Cpu || !cuda_driver_present() {
            return;
        }
        let device_id = settings.device_id;
        if lock(&self.snapshot).cuda.as_ref().is_some_and(|c| c.device_id() == device_id) {
            return;
        }
        let device = match GpuDevice::get(device_id) {
            Ok(device) => device,
            // start() reports the error if a GPU backend was required; with auto the CPU path remains
            Err(e) => return gst::warning!(CAT, imp = self, "CUDA device {device_id} not usable: {e}"),
        };
        let context = match CudaContext::wrap_primary(&device) {
            Ok(context) => context,
            Err(e) => return gst::warning!(CAT, imp = self, "cannot share CUDA device {device_id}'s context: {e}"),
        };
        gst::info!(CAT, imp = self, "sharing the primary context of CUDA device {device_id}");
        let gst_context = context.to_gst_context();
        lock(&self.snapshot).cuda = Some(context);
        if let Some(c) = gst_context {
            let obj = self.obj();
            obj.set_context(&c);
            let _ = obj.post_message(gst::message::HaveContext::builder(c).src(&*obj).build());
        }
    }

    pub(super) fn cuda_context(&self) -> Option<CudaContext> {
        lock(&self.snapshot).cuda.clone()
    }

    /// A CUDA buffer pool of `ctx` for frames of `caps`, configured (not yet active).
    pub(super) fn cuda_pool(
        &self,
        ctx: &CudaContext,
        caps: &gst::Caps,
        info: &VideoInfo,
        min: u32,
        max: u32,
    ) -> Result<gst::BufferPool, gst::LoggableError> {
        let pool =
            ctx.new_buffer_pool().ok_or_else(|| gst::loggable_error!(CAT, "cannot create a CUDA buffer pool"))?;
        let mut config = pool.config();
        config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META.as_ref());
        config.set_params(Some(caps), info.size() as u32, min, max);
        pool.set_config(config).map_err(|_| gst::loggable_error!(CAT, "the CUDA buffer pool rejected its config"))?;
        Ok(pool)
    }
}
