"""Audio conversion to the session format: PCM16 little-endian mono, fixed-size chunks.

:class:`AudioConverter` is sans-I/O: decoded ``av.AudioFrame`` objects or raw
interleaved s16le PCM go in, :class:`~vision_stream.media.types.AudioChunk`
objects of exactly ``policy.chunk_samples`` samples come out (``flush()`` gives
the shorter remainder at the end). Timestamps come from a sample counter
anchored at the first input's media time, so chunk times never drift or jitter
with the container's packet timestamps; a jump of more than
:data:`REANCHOR_SECONDS` in the input (a gap, a loop, a reset) re-anchors.
"""

from __future__ import annotations

import av
import numpy as np

from ..config import AudioPolicy
from .types import AudioChunk

__all__ = ["REANCHOR_SECONDS", "AudioConverter"]

# Input timestamps further than this from where the sample counter says we are
# are a real discontinuity (gap, loop, new stream), not packet jitter.
REANCHOR_SECONDS = 0.5

_BYTES_PER_SAMPLE = 2  # s16


class AudioConverter:
    """Resample any audio to PCM16 mono at ``policy.sample_rate`` Hz and re-chunk it.

    One ``av.AudioResampler`` is kept while the input format/layout/rate stays
    the same and recreated (after draining the old one) when it changes
    mid-stream, e.g. 44.1 kHz stereo followed by 48 kHz mono.

    Counters: ``resamplers_created``, ``reanchors``, ``chunks_out``,
    ``samples_out`` (output samples, padding excluded).
    """

    def __init__(self, policy: AudioPolicy) -> None:
        self.policy = policy
        self._rate = policy.sample_rate
        self._chunk_bytes = policy.chunk_samples * _BYTES_PER_SAMPLE
        self._resampler: av.AudioResampler | None = None
        self._resampler_key: tuple[str, str, int] | None = None
        # Output samples not yet emitted; never longer than one chunk plus one
        # resampled input frame, because every push emits all whole chunks.
        self._pending = bytearray()
        self._anchor: float | None = None  # media time (s) of output sample 0
        self._emitted = 0  # output samples emitted (as chunks) since the anchor
        self._in_seconds = 0.0  # duration of input accepted since the anchor, seconds
        self.resamplers_created = 0
        self.reanchors = 0
        self.chunks_out = 0
        self.samples_out = 0

    # -- input -------------------------------------------------------------

    def push_frame(self, frame: av.AudioFrame, media_time: float | None = None) -> list[AudioChunk]:
        """Convert one decoded frame; ``media_time`` (seconds) of its first sample,
        or None to continue the timeline where the previous input ended."""
        out = self._check_time(media_time)
        key = (frame.format.name, frame.layout.name, int(frame.sample_rate))
        duration = frame.samples / frame.sample_rate
        if key == ("s16", "mono", self._rate):
            self._drain_resampler()
            self._pending += frame.to_ndarray().astype("<i2", copy=False).tobytes()
        else:
            # The resampler checks pts continuity itself; our timeline is the
            # sample counter, so strip pts rather than fight its expectations.
            frame.pts = None
            self._append_resampled(self._resampler_for(key).resample(frame))
        self._in_seconds += duration
        out += self._take_chunks()
        return out

    def push_pcm(
        self, data: bytes, *, rate: int, channels: int, media_time: float | None = None
    ) -> list[AudioChunk]:
        """Convert raw interleaved s16le PCM at ``rate`` Hz with ``channels`` channels.

        Channels are averaged to mono first (any channel count, no layout names
        needed); then the rate is converted unless it already matches.
        ``len(data)`` must be a multiple of ``2 * channels`` bytes (callers validate).
        """
        out = self._check_time(media_time)
        samples = np.frombuffer(data, dtype="<i2")
        if channels > 1:
            frames = samples.reshape(-1, channels).astype(np.int32)
            samples = (frames.sum(axis=1) // channels).astype("<i2")
        if samples.size == 0:
            return out
        if rate == self._rate:
            self._drain_resampler()
            self._pending += samples.tobytes()
        else:
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            self._append_resampled(self._resampler_for(("s16", "mono", rate)).resample(frame))
        self._in_seconds += samples.size / rate
        out += self._take_chunks()
        return out

    def flush(self) -> list[AudioChunk]:
        """End of input: drain the resampler and emit the remainder (may be shorter
        than a chunk). The converter can be used again afterwards (new timeline)."""
        self._drain_resampler()
        out = self._take_chunks()
        if self._pending:
            out.append(self._chunk(bytes(self._pending)))
            self._pending.clear()
        self._anchor = None
        return out

    # -- internals ---------------------------------------------------------

    def _check_time(self, media_time: float | None) -> list[AudioChunk]:
        if self._anchor is None:
            self._anchor = media_time if media_time is not None else 0.0
            self._emitted = 0
            self._in_seconds = 0.0
            return []
        if media_time is None:
            return []
        expected = self._anchor + self._in_seconds
        if abs(media_time - expected) <= REANCHOR_SECONDS:
            return []
        # Discontinuity: finish the old timeline with one zero-padded chunk so
        # every chunk stays exactly chunk_samples long, then start a new one.
        self._drain_resampler()
        out = self._take_chunks()
        if self._pending:
            self._pending += bytes(self._chunk_bytes - len(self._pending))
            out += self._take_chunks(count_padding=False)
        self._anchor = media_time
        self._emitted = 0
        self._in_seconds = 0.0
        self.reanchors += 1
        return out

    def _resampler_for(self, key: tuple[str, str, int]) -> av.AudioResampler:
        if self._resampler is None or key != self._resampler_key:
            self._drain_resampler()
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=self._rate)
            self._resampler_key = key
            self.resamplers_created += 1
        return self._resampler

    def _drain_resampler(self) -> None:
        """Flush the current resampler's delayed samples into the buffer and drop it."""
        if self._resampler is not None:
            self._append_resampled(self._resampler.resample(None))
            self._resampler = None
            self._resampler_key = None

    def _append_resampled(self, frames: list[av.AudioFrame]) -> None:
        for out in frames:
            self._pending += out.to_ndarray().astype("<i2", copy=False).tobytes()

    def _take_chunks(self, *, count_padding: bool = True) -> list[AudioChunk]:
        out: list[AudioChunk] = []
        size = self._chunk_bytes
        while len(self._pending) >= size:
            out.append(self._chunk(bytes(self._pending[:size]), count=count_padding))
            del self._pending[:size]
        return out

    def _chunk(self, pcm: bytes, *, count: bool = True) -> AudioChunk:
        samples = len(pcm) // _BYTES_PER_SAMPLE
        anchor = self._anchor if self._anchor is not None else 0.0
        chunk = AudioChunk(pcm=pcm, media_time=anchor + self._emitted / self._rate, sample_rate=self._rate)
        self._emitted += samples
        self.chunks_out += 1
        if count:
            self.samples_out += samples
        return chunk
