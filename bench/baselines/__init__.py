"""Baselines the pipeline is compared with, written the way a competent user would.

- A (``opencv_pillow``): the Gemini cookbook way: OpenCV reads every frame,
  every ``fps``-th frame goes through Pillow's ``thumbnail`` and JPEG encoder.
- B (``ffmpeg_cli.command(keyframes_only=False)``): ``ffmpeg -i IN -vf fps=1,scale=768:-2``.
- C (``ffmpeg_cli.command(keyframes_only=True)``): the same with ``-skip_frame nokey``,
  FFmpeg decoding keyframes only: the practical floor.
"""
