// SPDX-License-Identifier: MPL-2.0
//! Reads the binary PPM (P6, 8-bit) test images in `tests/data`; shared by the core's and the plugin's tests.

use std::path::{Path, PathBuf};

/// `tests/data/<name>` from any crate of the workspace.
pub fn test_image_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("tests/data").join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("tests/data/{name} not found above {}", env!("CARGO_MANIFEST_DIR")))
}

/// Width, height and interleaved RGB bytes.
pub fn read_ppm(path: &Path) -> (usize, usize, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P6", "255"), "{} is not an 8-bit P6 PPM", path.display());
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, bytes[i + 1..i + 1 + w * h * 3].to_vec())
}
