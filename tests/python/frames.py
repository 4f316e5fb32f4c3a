#!/usr/bin/env python3
"""Frames of a video, for the tests of ranges and segments (runs with the system Python, which has PyGObject):

    python3 frames.py describe FILE   ->  {"frames": [[running time ns, duration ns, md5 of the decoded frame], ...],
                                          "packets": [[running time ns, keyframe], ...]  (decode order),
                                          "first_nal_types": [...]  (H.264/H.265: NAL unit types of the first packet),
                                          "audio": [first ns, end ns] | null}
    python3 frames.py vfr OUT N       ->  makes an H.264 clip with B-frames and a variable frame rate (40, 80, 120 ms)
"""
import hashlib
import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

import media  # noqa: E402  (beside this file)


def running_time(pad, pts):
    event = pad.get_sticky_event(Gst.EventType.SEGMENT, 0)
    return event.parse_segment().to_running_time(Gst.Format.TIME, pts) if event else pts


def decoded_frames(path):
    frames = []
    p = Gst.parse_launch("filesrc name=src ! decodebin ! video/x-raw ! videoconvert ! video/x-raw,format=I420 ! "
                         "fakesink name=sink sync=false")
    p.get_by_name("src").set_property("location", path)

    def on_buffer(pad, info):
        b = info.get_buffer()
        ok, m = b.map(Gst.MapFlags.READ)
        frames.append([running_time(pad, b.pts), b.duration, hashlib.md5(bytes(m.data)).hexdigest()])
        b.unmap(m)
        return Gst.PadProbeReturn.OK

    p.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_buffer)
    media.play(p, "failed", 120)
    return frames


def nal_types(data, hevc):
    types, i = [], 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0 or i + 3 >= len(data):
            return types
        types.append((data[i + 3] >> 1) & 0x3F if hevc else data[i + 3] & 0x1F)
        i += 3


def packets_and_audio(path):
    packets, audio, first = [], [None], []
    p = Gst.parse_launch("filesrc name=src ! parsebin name=pb")
    p.get_by_name("src").set_property("location", path)

    def added(_, pad):
        name = pad.query_caps(None).get_structure(0).get_name()
        if name in ("video/x-h264", "video/x-h265"):
            caps = f"{name},stream-format=byte-stream,alignment=au"
            chain = Gst.parse_bin_from_description(f"{name[8:]}parse ! {caps} ! fakesink name=nal sync=false "
                                                   "async=false", True)
        else:
            # not prerolling: one demuxer thread feeds every sink, and a prerolled sink would block it
            chain = Gst.ElementFactory.make("fakesink")
            chain.set_property("sync", False)
            chain.set_property("async", False)
        p.add(chain)
        chain.sync_state_with_parent()
        if name.startswith("video/"):
            def on_packet(pad, info):
                b = info.get_buffer()
                packets.append([running_time(pad, b.pts), not b.has_flags(Gst.BufferFlags.DELTA_UNIT)])
                return Gst.PadProbeReturn.OK
            pad.add_probe(Gst.PadProbeType.BUFFER, on_packet)
            if name in ("video/x-h264", "video/x-h265"):
                def on_nal(pad, info):
                    if not first:
                        ok, m = info.get_buffer().map(Gst.MapFlags.READ)
                        first.extend(nal_types(bytes(m.data), name == "video/x-h265"))
                        info.get_buffer().unmap(m)
                    return Gst.PadProbeReturn.OK
                chain.get_by_name("nal").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_nal)
        elif name.startswith("audio/"):
            def on_audio(pad, info):
                b = info.get_buffer()
                t = running_time(pad, b.pts)
                end = t + (b.duration if b.duration != Gst.CLOCK_TIME_NONE else 0)
                audio[0] = [t, end] if audio[0] is None else [min(audio[0][0], t), max(audio[0][1], end)]
                return Gst.PadProbeReturn.OK
            pad.add_probe(Gst.PadProbeType.BUFFER, on_audio)
        pad.link(chain.get_static_pad("sink"))

    p.get_by_name("pb").connect("pad-added", added)
    media.play(p, "failed", 120)
    return packets, first, audio[0]


def make_vfr(out, count):
    """Frames with timestamps 0, 40, 120, 240, 280, … ms (durations 40, 80, 120 in turn), each one different."""
    p = Gst.parse_launch("appsrc name=src format=time caps=video/x-raw,format=I420,width=96,height=64,framerate=0/1 "
                         "! x264enc bframes=2 key-int-max=12 ! h264parse ! matroskamux ! filesink name=sink")
    p.get_by_name("sink").set_property("location", out)
    src = p.get_by_name("src")
    p.set_state(Gst.State.PLAYING)
    t = 0
    for i in range(count):
        duration = (40, 80, 120)[i % 3] * Gst.MSECOND
        frame = bytearray(96 * 64 * 3 // 2)
        for y in range(64):
            for x in range(96):
                frame[y * 96 + x] = (x * 2 + y + i * 9) & 0xFF
        b = Gst.Buffer.new_wrapped(bytes(frame))
        b.pts, b.duration = t, duration
        t += duration
        src.emit("push-buffer", b)
    src.emit("end-of-stream")
    msg = p.get_bus().timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    p.set_state(Gst.State.NULL)
    assert msg and msg.type == Gst.MessageType.EOS


def main():
    Gst.init(None)
    if sys.argv[1] == "vfr":
        make_vfr(sys.argv[2], int(sys.argv[3]))
        return
    path = sys.argv[2]
    packets, first, audio = packets_and_audio(path)
    print(json.dumps({"frames": decoded_frames(path), "packets": packets, "first_nal_types": first, "audio": audio}))


if __name__ == "__main__":
    main()
