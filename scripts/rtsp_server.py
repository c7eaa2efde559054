#!/usr/bin/python3
"""A real RTSP server for maskwatch's tests: serves a looping clip (or a test pattern) as H.264.

Runs with Debian's ``/usr/bin/python3`` and GStreamer's gst-rtsp-server (``python3-gi``,
``gir1.2-gst-rtsp-server-1.0``, ``gstreamer1.0-plugins-{base,good,bad,ugly}``, ``gstreamer1.0-libav``;
``scripts/install_test_deps.sh`` installs them). Binds 127.0.0.1 only. When it serves, it prints
one line ``READY rtsp://127.0.0.1:PORT/PATH`` (the real port when ``--port 0``) and flushes stdout.

    /usr/bin/python3 scripts/rtsp_server.py --clip tests/fixtures/clip_320x240.mp4 --port 8554
    /usr/bin/python3 scripts/rtsp_server.py --width 640 --height 480 --user admin --password s3cret

Every client gets its own pipeline that decodes the clip from the start, loops it forever
(seek to 0 on end-of-stream) and re-encodes it with x264 (zerolatency, a key frame every second),
so a client that connects at any time gets a picture within a second. With ``--user`` and
``--password`` the mount needs RTSP basic authentication.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ENCODER = (
    "videoconvert ! video/x-raw,format=I420 ! "
    "x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max={gop} ! "
    "rtph264pay name=pay0 pt=96 config-interval=1"
)


class LoopingClip:
    """Decodes a video file to raw I420 frames, forever: at end-of-stream it seeks back to 0."""

    def __init__(self, path: Path):
        self.pipeline = Gst.parse_launch(
            "filesrc name=file ! decodebin ! videoconvert ! "
            "video/x-raw,format=I420 ! appsink name=sink sync=false max-buffers=4"
        )
        self.pipeline.get_by_name("file").set_property("location", str(path))
        self.sink = self.pipeline.get_by_name("sink")
        self.pipeline.set_state(Gst.State.PLAYING)
        first = self.sink.emit("pull-sample")
        if first is None:
            self.close()
            raise RuntimeError(f"no decodable video frames in {path}")
        self.caps = first.get_caps()
        self._pending = first
        structure = self.caps.get_structure(0)
        ok, num, den = structure.get_fraction("framerate")
        self.fps = num / den if ok and num > 0 and den > 0 else 25.0

    def next_buffer(self) -> Gst.Buffer | None:
        """The next decoded frame's buffer (loops); None if the clip cannot be decoded again."""
        if self._pending is not None:
            sample, self._pending = self._pending, None
            return sample.get_buffer()
        for _ in range(2):
            sample = self.sink.emit("pull-sample")
            if sample is not None:
                return sample.get_buffer()
            # End of stream: rewind and pull again.
            self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        return None

    def close(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)


class ClipFactory(GstRtspServer.RTSPMediaFactory):
    """One ``appsrc`` pipeline per client, fed by its own ``LoopingClip``."""

    def __init__(self, clip: Path, kbps: int):
        super().__init__()
        self.clip = clip
        probe = LoopingClip(clip)  # fail at start-up, not at the first client, if the clip is bad
        self.fps = probe.fps
        probe.close()
        gop = max(1, round(self.fps))
        self.set_launch(
            "( appsrc name=src format=time ! " + ENCODER.format(kbps=kbps, gop=gop) + " )"
        )
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(self, _factory, media):
        clip = LoopingClip(self.clip)
        appsrc = media.get_element().get_child_by_name("src")
        appsrc.set_property("caps", clip.caps)
        duration = int(Gst.SECOND / clip.fps)
        state = {"n": 0}

        def need_data(src, _length):
            buf = clip.next_buffer()
            if buf is None:
                src.emit("end-of-stream")
                return
            buf = buf.copy()
            buf.pts = buf.dts = state["n"] * duration
            buf.duration = duration
            state["n"] += 1
            src.emit("push-buffer", buf)

        appsrc.connect("need-data", need_data)
        media.connect("unprepared", lambda _media: clip.close())


def pattern_factory(width: int, height: int, fps: int, kbps: int) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! "
        f"video/x-raw,width={width},height={height},framerate={fps}/1 ! "
        + ENCODER.format(kbps=kbps, gop=fps)
        + " )"
    )
    return factory


def add_basic_auth(server, factory, user: str, password: str) -> None:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    for perm in (GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT):
        permissions.add_permission_for_role("viewer", perm, True)
    factory.set_permissions(permissions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8554, help="TCP port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--path", default="/stream", help="mount path (default /stream)")
    parser.add_argument("--clip", type=Path, help="video file to loop; without it a moving test pattern")
    parser.add_argument("--width", type=int, default=320, help="test pattern width")
    parser.add_argument("--height", type=int, default=240, help="test pattern height")
    parser.add_argument("--fps", type=int, default=25, help="test pattern frame rate")
    parser.add_argument("--kbps", type=int, default=1000, help="H.264 bitrate")
    parser.add_argument("--user", help="require RTSP basic auth with this user name")
    parser.add_argument("--password", help="... and this password")
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    path = args.path if args.path.startswith("/") else "/" + args.path

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    if args.clip is not None:
        if not args.clip.is_file():
            print(f"rtsp_server: clip not found: {args.clip}", file=sys.stderr)
            return 2
        try:
            factory = ClipFactory(args.clip.resolve(), args.kbps)
        except (RuntimeError, GLib.Error) as e:
            print(f"rtsp_server: {e}", file=sys.stderr)
            return 2
    else:
        factory = pattern_factory(args.width, args.height, args.fps, args.kbps)
    if args.user is not None:
        add_basic_auth(server, factory, args.user, args.password)
    server.get_mount_points().add_factory(path, factory)
    try:
        server.attach(None)
    except GLib.Error as e:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}: {e.message}", file=sys.stderr)
        return 2
    # Expire sessions of clients that vanished, so a killed reader does not pin a pipeline forever.
    GLib.timeout_add_seconds(2, lambda: server.get_session_pool().cleanup() >= 0)

    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda: loop.quit() or False)
    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}{path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
