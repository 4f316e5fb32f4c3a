#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""Upscale a video file from Python with the vfupscale GStreamer element (PyGObject).

    GST_PLUGIN_PATH=target/release python3 examples/upscale.py INPUT OUTPUT.mkv [--model MODEL]

A portable pipeline: decodebin and videoconvert hand vfupscale system-memory NV12 on any machine (the model
still runs on the GPU when ONNX Runtime can use one). For the zero-copy GPU path, link nvh264dec straight to
vfupscale (see examples/pipelines.md). The result is H.264 in Matroska. Prints the element's statistics at the
end; exits non-zero with the error message if the pipeline fails.
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--model", help="ONNX model file or installed model name (default: realesr-animevideov3-x2)")
    args = parser.parse_args()

    Gst.init(None)
    if Gst.ElementFactory.find("vfupscale") is None:
        print("vfupscale element not found: set GST_PLUGIN_PATH to the directory of libgstvfupscale.so", file=sys.stderr)
        return 1
    pipeline = Gst.parse_launch(
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=NV12 ! vfupscale name=up ! "
        "videoconvert ! x264enc ! h264parse ! matroskamux ! filesink name=sink"
    )
    pipeline.get_by_name("src").set_property("location", args.input)
    pipeline.get_by_name("sink").set_property("location", args.output)
    upscaler = pipeline.get_by_name("up")
    if args.model:
        upscaler.set_property("model", args.model)

    loop = GLib.MainLoop()
    result = {"error": None}

    def on_message(_bus, message):
        if message.type == Gst.MessageType.EOS:
            loop.quit()
        elif message.type == Gst.MessageType.ERROR:
            error, _debug = message.parse_error()
            result["error"] = f"{message.src.get_name()}: {error.message}"
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    stats = upscaler.get_property("stats")
    pipeline.set_state(Gst.State.NULL)
    if result["error"]:
        print(f"upscale.py: {result['error']}", file=sys.stderr)
        return 1
    print(f"{args.output}: x{upscaler.get_property('scale')}, {stats.get_value('frames')} frames, "
          f"backend {stats.get_value('backend')}, {stats.get_value('inference-mean-ms'):.1f} ms per frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
