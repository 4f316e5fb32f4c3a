"""The `vfupscale` command's bit depth and colour rules, through the CPU path: a 10-bit HEVC BT.2020/PQ clip with
HDR10 metadata (made with x265enc) stays 10-bit HEVC with the same colour description, HDR metadata and frame
count (read back by GStreamer's discoverer and the codec parser); --bit-depth forces a depth and the summary says
so; an encoder that cannot write 10 bits is refused, naming the fix; an H.264 High 4:4:4 clip is upscaled."""
import subprocess
from pathlib import Path

import pytest

from test_cli import media, vfupscale

MASTERING = "35400:14600:8500:39850:6550:2300:15635:16450:10000000:1"
LIGHT = "1000:400"


def make_clip(path: Path, raw: str, encoder: str, frames=12):
    desc = (f"videotestsrc num-buffers={frames} pattern=smpte ! {raw},width=96,height=64,framerate=12/1 ! "
            f"{encoder} ! mp4mux ! filesink location={path}")
    subprocess.run(["gst-launch-1.0", "-q", *desc.split()], check=True)
    return path


@pytest.fixture(scope="module")
def hdr_clip(tmp_path_factory):
    raw = (f"video/x-raw,format=I420_10LE,colorimetry=bt2100-pq,mastering-display-info=(string){MASTERING},"
           f"content-light-level=(string){LIGHT}")
    clip = make_clip(tmp_path_factory.mktemp("hdr") / "hdr10.mp4", raw, "x265enc speed-preset=ultrafast ! h265parse")
    v = media(clip)["video"]
    # the premise: x265enc wrote what the caps said
    assert (v["profile"], v["depth"], v["colorimetry"]) == ("main-10", 10, "bt2100-pq"), v
    assert (v["stream"]["mastering"], v["stream"]["light"]) == (MASTERING, LIGHT), v
    return clip


def primaries(mastering: str):
    return [int(x) for x in mastering.split(":")[:8]]


def test_ten_bit_hdr10_stays_ten_bit_with_its_colour_and_metadata(hdr_clip, tmp_path):
    for ext in ("mp4", "mkv"):
        out = tmp_path / f"out.{ext}"
        result = vfupscale("-i", hdr_clip, "-o", out)
        assert result.returncode == 0, result.stderr
        v = media(out)["video"]
        assert (v["codec"], v["profile"], v["chroma"], v["frames"]) == ("video/x-h265", "main-10", "4:2:0", 12), v
        assert (v["width"], v["height"]) == (192, 128)
        # in the stream: VUI and SEI, exactly
        s = v["stream"]
        assert (s["depth"], s["colorimetry"], s["light"]) == (10, "bt2100-pq", LIGHT), s
        # in the container: its colour description and HDR metadata (GStreamer 1.22's Matroska rounds the
        # primaries by one unit and misstores the luminance; MP4 holds them in the stream only)
        assert (v["colorimetry"], v["light"]) == ("bt2100-pq", LIGHT), v
        assert v["mastering"] is not None, v
        for got, want in zip(primaries(v["mastering"]), primaries(MASTERING)):
            assert abs(got - want) <= 1, (v["mastering"], MASTERING)
        if ext == "mp4":
            assert s["mastering"] == MASTERING, s
        assert "encoder x265enc (" in result.stderr and "10-bit)" in result.stderr, result.stderr
        summary = result.stderr.strip().splitlines()[-1]
        assert "10-bit, bt2100-pq, HDR metadata kept" in summary, summary


def test_bit_depth_8_is_said_in_the_summary(hdr_clip, tmp_path):
    out = tmp_path / "eight.mkv"
    result = vfupscale("-i", hdr_clip, "-o", out, "--bit-depth", "8")
    assert result.returncode == 0, result.stderr
    v = media(out)["video"]
    assert (v["codec"], v["profile"], v["frames"]) == ("video/x-h264", "high", 12), v
    assert "8-bit from a 10-bit source (--bit-depth 8)" in result.stderr.strip().splitlines()[-1]


def test_bit_depth_10_from_an_eight_bit_source(tmp_path):
    clip = make_clip(tmp_path / "eight.mp4", "video/x-raw,format=I420", "x264enc ! h264parse")
    out = tmp_path / "ten.mkv"
    result = vfupscale("-i", clip, "-o", out, "--bit-depth", "10")
    assert result.returncode == 0, result.stderr
    v = media(out)["video"]
    assert (v["codec"], v["profile"], v["stream"]["depth"]) == ("video/x-h265", "main-10", 10), v
    assert "10-bit from an 8-bit source (--bit-depth 10)" in result.stderr
    # 8-bit sources stay 8-bit by default, with nothing said about it
    result = vfupscale("-i", clip, "-o", tmp_path / "eight.mkv")
    assert result.returncode == 0, result.stderr
    assert media(tmp_path / "eight.mkv")["video"]["profile"] == "high" and "-bit" not in result.stderr


def test_x264enc_writes_high_10_when_chosen(hdr_clip, tmp_path):
    out = tmp_path / "high10.mkv"
    result = vfupscale("-i", hdr_clip, "-o", out, "--encoder", "x264enc")
    assert result.returncode == 0, result.stderr
    v = media(out)["video"]
    assert (v["codec"], v["profile"], v["stream"]["colorimetry"]) == ("video/x-h264", "high-10", "bt2100-pq"), v


def test_an_encoder_that_cannot_write_10_bits_is_refused_with_the_fix(hdr_clip, tmp_path):
    out = tmp_path / "av1.mkv"
    result = vfupscale("-i", hdr_clip, "-o", out, "--encoder", "av1enc")
    assert result.returncode == 1
    assert result.stderr.strip() == ("vfupscale: error: av1enc cannot encode 10-bit 4:2:0 video here (the source is "
                                     "10-bit): use --encoder x265enc, or --bit-depth 8 to write 8 bits")
    assert not out.exists()


def test_h264_high_444_is_upscaled(tmp_path):
    clip = make_clip(tmp_path / "444.mp4", "video/x-raw,format=Y444", "x264enc ! h264parse")
    assert (media(clip)["video"]["profile"], media(clip)["video"]["chroma"]) == ("high-4:4:4", "4:4:4")
    out = tmp_path / "out.mkv"
    result = vfupscale("-i", clip, "-o", out)
    assert result.returncode == 0, result.stderr
    v = media(out)["video"]
    assert (v["frames"], v["width"], v["height"]) == (12, 192, 128)
    assert "decoder avdec_h264" in result.stderr


def test_a_rotated_ten_bit_clip_is_turned_and_stays_ten_bit(hdr_clip, tmp_path):
    from test_cli import rotate_90
    rotated = tmp_path / "rotated.mp4"
    rotate_90(hdr_clip, rotated)
    out = tmp_path / "o.mkv"
    result = vfupscale("-i", rotated, "-o", out)
    assert result.returncode == 0, result.stderr
    v = media(out)["video"]
    assert (v["width"], v["height"], v["profile"], v["frames"]) == (128, 192, "main-10", 12), v
