#!/usr/bin/env python3
"""Describes a media file as JSON, for the tests (runs with the system Python, which has PyGObject), read by
GStreamer's discoverer (what gst-discoverer-1.0 prints) and by decoding every frame:

    python3 media.py FILE  ->  {"duration": s, "container": caps,
                                "video": {"width", "height", "frames", "codec", "profile", "chroma", "orientation",
                                          "depth", "colorimetry", "mastering", "light", "stream"} | null,
                                "audio": {"codec"} | null,
                                "subtitles": [{"codec", "texts": [...]}]}

"depth", "colorimetry", "mastering" (mastering-display-info) and "light" (content-light-level) are what the container
and the stream headers say (the discoverer); "stream" has the same fields as the codec parser reads them from the
frames (H.264/H.265 SEI), after the whole stream.
"""
import json
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstPbutils", "1.0")
from gi.repository import Gst, GstPbutils  # noqa: E402


def play(pipeline, what, seconds):
    """Plays `pipeline` to its end; an error, or no end within `seconds`, exits naming `what`."""
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(seconds * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg is None or msg.type == Gst.MessageType.ERROR:
        raise SystemExit(f"{what}: {msg.parse_error()[0].message if msg else 'timeout'}")


def run(description, path, on_buffer):
    pipeline = Gst.parse_launch(description)
    pipeline.get_by_name("src").set_property("location", path)
    sink = pipeline.get_by_name("sink")
    sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, lambda _pad, info: on_buffer(info) or
                                          Gst.PadProbeReturn.OK)
    play(pipeline, f"cannot decode {path}", 60)


def count_frames(path):
    frames = [0]
    run("filesrc name=src ! decodebin ! video/x-raw ! fakesink name=sink sync=false", path,
        lambda _info: frames.__setitem__(0, frames[0] + 1))
    return frames[0]


COLOUR_FIELDS = {"depth": "bit-depth-luma", "colorimetry": "colorimetry", "mastering": "mastering-display-info",
                 "light": "content-light-level"}


def colour_fields(s):
    out = {}
    for key, field in COLOUR_FIELDS.items():
        if key == "depth":
            ok, value = s.get_uint(field)
            out[key] = value if ok else None
        else:
            out[key] = s.get_string(field)
    return out


def parsed_stream(path):
    """The video stream's caps as its parser gives them once every frame went through it."""
    last = [None]
    pipeline = Gst.parse_launch("filesrc name=src ! parsebin ! capsfilter caps=video/x-h264;video/x-h265 ! "
                                "fakesink name=sink sync=false")
    pipeline.get_by_name("src").set_property("location", path)

    def on_event(_pad, info):
        event = info.get_event()
        if event.type == Gst.EventType.CAPS:
            last[0] = event.parse_caps().get_structure(0)
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg is None or msg.type == Gst.MessageType.ERROR or last[0] is None:
        return None
    return colour_fields(last[0])


def subtitle_texts(path):
    texts = []

    def add(info):
        ok, m = info.get_buffer().map(Gst.MapFlags.READ)
        texts.append(bytes(m.data).decode())
        info.get_buffer().unmap(m)

    run("filesrc name=src ! parsebin ! capsfilter caps=text/x-raw ! fakesink name=sink sync=false", path, add)
    return texts


def main():
    Gst.init(None)
    path = sys.argv[1]
    info = GstPbutils.Discoverer.new(30 * Gst.SECOND).discover_uri(Gst.filename_to_uri(path))
    container = info.get_stream_info()
    result = {"duration": info.get_duration() / Gst.SECOND, "video": None, "audio": None, "subtitles": [],
              "container": container.get_caps().to_string().split(",")[0] if container else None}
    for stream in info.get_stream_list():
        caps = stream.get_caps()
        name = caps.to_string().split(",")[0]
        s = caps.get_structure(0)
        if isinstance(stream, GstPbutils.DiscovererVideoInfo) and result["video"] is None:
            tags = stream.get_tags()
            orientation = tags.get_string("image-orientation")[1] if tags else None
            result["video"] = {"width": stream.get_width(), "height": stream.get_height(), "codec": name,
                               "profile": s.get_string("profile"), "chroma": s.get_string("chroma-format"),
                               "orientation": orientation, **colour_fields(s)}
        elif isinstance(stream, GstPbutils.DiscovererAudioInfo) and result["audio"] is None:
            result["audio"] = {"codec": name}
        elif isinstance(stream, GstPbutils.DiscovererSubtitleInfo):
            result["subtitles"].append({"codec": caps.to_string()})
    if result["video"]:
        result["video"]["frames"] = count_frames(path)
        result["video"]["stream"] = parsed_stream(path)
    if result["subtitles"]:
        result["subtitles"][0]["texts"] = subtitle_texts(path)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
