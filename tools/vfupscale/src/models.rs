// SPDX-License-Identifier: MPL-2.0
//! Which model file runs: a path or an installed name, and, for a requested output size, the model of the same
//! family (realesr-animevideov3-x2/-x3/-x4, realcugan-up2x/up3x/up4x, …) whose scale covers it.

use std::path::{Path, PathBuf};

use vfupscale::model::ModelInfo;
use vfupscale::models::model_path;

/// A model ready to hand to the element.
#[derive(Debug, Clone)]
pub struct Model {
    pub path: PathBuf,
    pub name: String,
    pub scale: u32,
    /// True when the user named it (no other scale is chosen for them).
    pub explicit: bool,
}

impl Model {
    /// `-m` as given (a file, or an installed model's name), or the default model.
    pub fn resolve(arg: Option<&Path>) -> Result<Model, String> {
        let path = vfupscale::models::resolve(arg).map_err(|e| e.to_string())?;
        Self::load(path, arg.is_some())
    }

    fn load(path: PathBuf, explicit: bool) -> Result<Model, String> {
        let info = ModelInfo::load(&path).map_err(|e| e.to_string())?;
        let scale = info.scale.ok_or_else(|| {
            format!("model {}: its scale is not known before it runs (no vfupscale.scale metadata)", path.display())
        })?;
        Ok(Model { name: info.name, path, scale, explicit })
    }

    /// Installed models of this family, by scale (this one included).
    pub fn family(&self) -> Vec<(u32, PathBuf)> {
        let stem = self.path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let mut found: Vec<(u32, PathBuf)> = (1..=8)
            .filter_map(|s| {
                let p = if s == self.scale { self.path.clone() } else { model_path(&sibling_name(stem, s)?) };
                p.exists().then_some((s, p))
            })
            .collect();
        if !found.iter().any(|(s, _)| *s == self.scale) {
            found.push((self.scale, self.path.clone()));
        }
        found.sort();
        found
    }

    /// The model whose scale covers `needed` (the output/input ratio): a model the user named, if it does; for the
    /// default choice, the smallest installed scale of its family that does.
    pub fn covering(self, needed: f64) -> Result<Model, String> {
        let family = self.family();
        if self.explicit {
            return if self.scale as f64 + 1e-9 >= needed {
                Ok(self)
            } else {
                Err(format!(
                    "model {} is x{}: this size needs x{} or more; choose a larger model with -m{}",
                    self.name,
                    self.scale,
                    needed.ceil(),
                    installed_hint(&family)
                ))
            };
        }
        match smallest_covering(&family, needed) {
            Some(s) if s == self.scale => Ok(self),
            Some(s) => {
                let path = family.into_iter().find(|(k, _)| *k == s).map(|(_, p)| p).unwrap_or_default();
                Self::load(path, false)
            }
            None => Err(format!(
                "this size needs a x{} model: none of {}'s family is that large{}; choose one with -m",
                needed.ceil(),
                self.name,
                installed_hint(&family)
            )),
        }
    }
}

fn installed_hint(family: &[(u32, PathBuf)]) -> String {
    let scales: Vec<String> = family.iter().map(|(s, _)| format!("x{s}")).collect();
    format!(" (installed of this family: {})", scales.join(", "))
}

fn smallest_covering(family: &[(u32, PathBuf)], needed: f64) -> Option<u32> {
    family.iter().map(|(s, _)| *s).filter(|&s| s as f64 + 1e-9 >= needed).min()
}

/// The name of the same model at another scale: the scale token (`x2`, `up2x`, `2x`) swapped.
/// None when the name has no such token.
pub fn sibling_name(name: &str, scale: u32) -> Option<String> {
    let bytes = name.as_bytes();
    // scan tokens separated by '-' or '_' for x<digit>, <digit>x or up<digit>x
    let mut start = 0;
    for (i, &b) in bytes.iter().chain(std::iter::once(&b'-')).enumerate() {
        if b != b'-' && b != b'_' {
            continue;
        }
        let token = &name[start..i];
        let replaced = match token.as_bytes() {
            [b'x', d] if d.is_ascii_digit() => Some(format!("x{scale}")),
            [d, b'x'] if d.is_ascii_digit() => Some(format!("{scale}x")),
            [b'x', d, rest @ ..] if d.is_ascii_digit() && rest.iter().all(u8::is_ascii_alphabetic) => {
                Some(format!("x{scale}{}", &token[2..]))
            }
            [b'u', b'p', d, b'x'] if d.is_ascii_digit() => Some(format!("up{scale}x")),
            _ => None,
        };
        if let Some(r) = replaced {
            return Some(format!("{}{r}{}", &name[..start], &name[i.min(name.len())..]));
        }
        start = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_swap_the_scale_token() {
        assert_eq!(sibling_name("realesr-animevideov3-x2", 4).as_deref(), Some("realesr-animevideov3-x4"));
        assert_eq!(sibling_name("realcugan-up2x-denoise3x", 3).as_deref(), Some("realcugan-up3x-denoise3x"));
        assert_eq!(sibling_name("waifu2x-cunet-noise1-x2", 3).as_deref(), Some("waifu2x-cunet-noise1-x3"));
        assert_eq!(sibling_name("realesrgan-x4plus", 2).as_deref(), Some("realesrgan-x2plus"));
        assert_eq!(sibling_name("my_model_2x", 4).as_deref(), Some("my_model_4x"));
        assert_eq!(sibling_name("model", 2), None);
    }

    #[test]
    fn smallest_covering_scale() {
        let fam = |s: &[u32]| s.iter().map(|&s| (s, PathBuf::new())).collect::<Vec<_>>();
        assert_eq!(smallest_covering(&fam(&[2, 3, 4]), 2.0), Some(2));
        assert_eq!(smallest_covering(&fam(&[2, 3, 4]), 3.0), Some(3));
        assert_eq!(smallest_covering(&fam(&[2, 4]), 3.0), Some(4));
        assert_eq!(smallest_covering(&fam(&[2, 3, 4]), 1.5), Some(2));
        assert_eq!(smallest_covering(&fam(&[2]), 2.5), None);
    }
}
