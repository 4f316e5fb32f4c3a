// SPDX-License-Identifier: MPL-2.0
//! Statistics of ONNX Runtime's device memory arena (`AllocatorGetStats`, which `ort` does not wrap).

use std::ffi::CStr;

use ort::AsPointer;
use ort::memory::Allocator;

/// Statistics of ONNX Runtime's device memory arena, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Device memory the arena took from the driver (what it holds, used or not).
    pub reserved: u64,
    /// The most it had in use at once.
    pub peak_in_use: u64,
    /// Its configured ceiling (0: none known).
    pub limit: u64,
}

/// The statistics of a session's arena allocator; `None` when the runtime keeps none.
pub(crate) fn arena_stats(allocator: &Allocator) -> Option<ArenaStats> {
    let api = ort::api();
    let mut pairs = std::ptr::null_mut();
    // SAFETY: `allocator` is a live session allocator; on success `pairs` is ours and released below.
    let status = unsafe { (api.AllocatorGetStats)(allocator.ptr(), &mut pairs) };
    if !status.0.is_null() {
        // SAFETY: a non-null status is ours to release.
        unsafe { (api.ReleaseStatus)(status.0) };
        return None;
    }
    let value = |key: &CStr| -> u64 {
        // SAFETY: `pairs` is live until released below; the returned string is owned by it.
        let v = unsafe { (api.GetKeyValue)(pairs, key.as_ptr()) };
        if v.is_null() {
            return 0;
        }
        // SAFETY: non-null values are NUL-terminated strings inside `pairs`.
        unsafe { CStr::from_ptr(v) }.to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(0)
    };
    let stats =
        ArenaStats { reserved: value(c"TotalAllocated"), peak_in_use: value(c"MaxInUse"), limit: value(c"Limit") };
    // SAFETY: `pairs` came from AllocatorGetStats and is released once.
    unsafe { (api.ReleaseKeyValuePairs)(pairs) };
    Some(stats)
}
