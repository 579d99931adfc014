"""Fixtures: a real GStreamer RTSP server and a loopback MJPEG camera (see camera_harness)."""

from camera_harness import axis_mjpeg, clip_path, gstreamer, rtsp_auth_server, rtsp_server

__all__ = ["axis_mjpeg", "clip_path", "gstreamer", "rtsp_auth_server", "rtsp_server"]
