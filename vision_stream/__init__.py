"""vision-stream: real-time multimodal analysis of video."""

__version__ = "0.1.0"
