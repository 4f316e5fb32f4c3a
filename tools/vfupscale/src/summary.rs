// SPDX-License-Identifier: MPL-2.0
//! Numbers as people read them: sizes (`39 KB`), counts (`1 frame`), durations (`1:05`), frame sizes (`96×64`).

/// Bytes in decimal units, with the precision a glance needs.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.0} KB", b / 1e3),
        1_000_000..10_000_000 => format!("{:.1} MB", b / 1e6),
        10_000_000..1_000_000_000 => format!("{:.0} MB", b / 1e6),
        _ => format!("{:.2} GB", b / 1e9),
    }
}

/// `1 frame`, `24 frames`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// `m:ss` or `h:mm:ss`.
pub fn format_time(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

pub fn dims((w, h): (u32, u32)) -> String {
    format!("{w}×{h}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_counts_times() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(39_000), "39 KB");
        assert_eq!(human_bytes(38_600), "39 KB");
        assert_eq!(human_bytes(2_345_678), "2.3 MB");
        assert_eq!(human_bytes(123_456_789), "123 MB");
        assert_eq!(human_bytes(4_200_000_000), "4.20 GB");
        assert_eq!(count(1, "frame"), "1 frame");
        assert_eq!(count(0, "frame"), "0 frames");
        assert_eq!(format_time(65.4), "1:05");
        assert_eq!(format_time(3725.0), "1:02:05");
        assert_eq!(dims((96, 64)), "96×64");
    }
}
