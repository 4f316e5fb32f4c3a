#!/usr/bin/env python3
"""Describes a media file as JSON, for the tests (runs with the system Python, which has PyGObject):

    python3 media.py FILE  ->  {"duration": s, "video": {"width", "height", "frames", "codec"} | null,
                                "audio": {"duration": s, "codec"} | null}
"""
import json
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstPbutils", "1.0")
from gi.repository import Gst, GstPbutils  # noqa: E402


def count_frames(path):
    pipeline = Gst.parse_launch("filesrc name=src ! decodebin ! video/x-raw ! fakesink name=sink sync=false")
    pipeline.get_by_name("src").set_property("location", path)
    frames = [0]

    def probe(_pad, _info):
        frames[0] += 1
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg is None or msg.type == Gst.MessageType.ERROR:
        raise SystemExit(f"cannot decode {path}: {msg.parse_error()[0].message if msg else 'timeout'}")
    return frames[0]


def main():
    Gst.init(None)
    path = sys.argv[1]
    info = GstPbutils.Discoverer.new(30 * Gst.SECOND).discover_uri(Gst.filename_to_uri(path))
    result = {"duration": info.get_duration() / Gst.SECOND, "video": None, "audio": None}
    for stream in info.get_stream_list():
        caps = stream.get_caps().to_string().split(",")[0]
        if isinstance(stream, GstPbutils.DiscovererVideoInfo) and result["video"] is None:
            result["video"] = {"width": stream.get_width(), "height": stream.get_height(), "codec": caps}
        elif isinstance(stream, GstPbutils.DiscovererAudioInfo) and result["audio"] is None:
            result["audio"] = {"codec": caps}
    if result["video"]:
        result["video"]["frames"] = count_frames(path)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
