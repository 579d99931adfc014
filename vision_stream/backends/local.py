"""The offline analyzer backend: real signals from pixels and samples, no network.

It is the default backend when no API key is configured, and the last link of
the failover chain. It measures what can be measured without a model (see
:mod:`vision_stream.analysis`) and phrases it as:

* :class:`~vision_stream.events.Detection` events (``backend="local"``) when a
  signal *starts*: ``scene_cut``, ``motion``, ``camera_pan``, ``camera_tilt``,
  ``zoom``, ``brightness_change``, ``overexposed``, ``underexposed`` (video,
  media time of the frame) and ``audio_activity`` (media time of the chunk);
* :class:`~vision_stream.events.Commentary` (final, turn ids ``local-1``,
  ``local-2``, ...) when :meth:`LocalSession.prompt` is called: a summary of
  the span since the previous pipeline prompt, or of the whole session for
  ``reason="final"``.

Deterministic: the same frames and audio in give the same events out.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import cv2

from ..analysis import ActivityLog, AudioActivityDetector, FrameReport, VideoAnalyzer
from ..analysis.describe import describe_jpegs
from ..conditions.model import Condition
from ..conditions.offline import OfflineJudge
from ..config import SessionSettings
from ..errors import BackendError, UsageError
from ..events import BackendEvent, Commentary, ErrorEvent
from ..media.types import AudioChunk, SampledFrame
from .base import BackendCounters
from .session_core import SessionCore

__all__ = ["DEFAULT_EVENT_QUEUE", "LocalBackend", "LocalSession", "analysis_pool", "describe_jpegs"]

NAME = "local"
DEFAULT_EVENT_QUEUE = 256  # events buffered for the consumer before producers wait
MAX_TURN_FRAME_IDS = 64  # frame ids a commentary names: the newest of its span

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def analysis_pool() -> ThreadPoolExecutor:
    """The worker threads every local session analyses its frames in (one per usable core).

    A pool of its own rather than the loop's default executor: frame analysis
    (~10 ms per sampled frame) of many sessions must neither queue behind
    other ``asyncio.to_thread`` work nor starve it, and more threads than
    cores would only add GIL and scheduler contention with the event loop.
    Creating it also turns OpenCV's own thread pool off (``cv2.setNumThreads(1)``,
    process-wide): sessions already run in parallel, and splitting each small
    picture over OpenCV's threads cost ~25 % more CPU per frame (measured
    12.7 -> 10.0 ms at 768x432) and adds threads that wake for microseconds.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            cv2.setNumThreads(1)
            workers = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="local-analysis")
        return _pool



class LocalSession:
    """One offline analysis session.

    Frames are analysed in a worker thread (:func:`analysis_pool`), strictly in the order their
    ``send_frame`` calls were made (an :class:`asyncio.Lock` serialises them;
    a :class:`threading.Lock` keeps the analyzer consistent even if a caller is
    cancelled while its frame is still being analysed, in which case that
    frame's findings are dropped). Audio levels cost microseconds per chunk and
    are computed inline.

    Events wait in a queue of ``queue_size``; when it is full the producer
    (``send_*``/``prompt``) waits for the consumer rather than dropping events.
    """

    name = NAME
    model = ""

    def __init__(self, settings: SessionSettings, *, queue_size: int = DEFAULT_EVENT_QUEUE) -> None:
        self.settings = settings
        # The shared chassis; this analyzer never fails on its own, so only closing refuses input.
        self._core = SessionCore(label="local analysis session", session_id=settings.session_id,
                                 event_queue=queue_size)
        self._queue = self._core.events
        self._order = asyncio.Lock()
        self._analysis = threading.Lock()
        self._video = VideoAnalyzer()
        self._audio = AudioActivityDetector()
        self._window = ActivityLog()  # since the last pipeline prompt
        self._window_ids: list[int] = []  # evidence ids of the frames analysed since then
        self._whole = ActivityLog()  # the whole session
        self._latest: float | None = None  # media time of the newest frame/chunk, seconds
        self._turns = 0
        self._frames = 0
        self._audio_chunks = 0
        self._prompts = 0
        # Watch conditions this analyzer can judge (conditions/offline.py); the rest are
        # announced once each as "cannot evaluate" (an error event) and never alert.
        self._judge = OfflineJudge()
        self._announced: set[tuple[str, str]] = set()
        self._unannounced: list[Condition] = []
        self.set_conditions(settings.conditions)

    @property
    def failure(self) -> BackendError | None:
        """Always None: the offline analyzer has no peer that could fail."""
        return self._core.failure

    def counters(self) -> BackendCounters:
        """Frames, audio chunks and prompts analysed (it counts no tokens, drops or requests)."""
        return BackendCounters(frames_sent=self._frames, audio_chunks_sent=self._audio_chunks,
                               prompts_sent=self._prompts)

    # -- input ------------------------------------------------------------------

    def _check_open(self) -> None:
        self._core.check_usable()

    def set_conditions(self, conditions: Sequence[Condition]) -> None:
        """Judge ``conditions`` from the next frame on (backends.base.JudgesConditions)."""
        self._judge.replace(conditions)
        self._unannounced = [c for c in self._judge.unsupported if (c.id, c.text) not in self._announced]

    async def _announce_unsupported(self) -> None:
        """One honest error event per condition the offline analyzer cannot evaluate."""
        pending, self._unannounced = self._unannounced, []
        for condition in pending:
            self._announced.add((condition.id, condition.text))
            await self._queue.put(ErrorEvent(
                "condition_unsupported",
                f"the offline analyzer cannot evaluate condition {condition.id!r} ({condition.text[:80]!r}); "
                "it judges motion or people/faces/vehicles in a named zone, scene cuts, darkness, "
                "no frames and audio activity; no alert will fire for it", retryable=False), self._latest)

    def _analyse(self, frame: SampledFrame) -> FrameReport:
        with self._analysis:
            return self._video.process(frame.pixels, frame.media_time)

    async def send_frame(self, frame: SampledFrame) -> None:
        """Analyse one sampled frame (off the event loop); queue what started at it."""
        self._check_open()
        async with self._order:
            report = await asyncio.get_running_loop().run_in_executor(analysis_pool(), self._analyse, frame)
            self._frames += 1
            self._window.add_frame(report)
            self._whole.add_frame(report)
            self._advance(report.media_time)
            await self._announce_unsupported()
            ids = (frame.frame_id,) if frame.frame_id else ()  # the evidence ring's id (pipeline/session.py)
            if ids:
                self._window_ids = [*self._window_ids[-(MAX_TURN_FRAME_IDS - 1):], frame.frame_id]
            for detection in report.detections:
                # The analysed frame is the evidence of what started at it.
                await self._queue.put(replace(detection, frame_ids=ids), report.media_time)
            for verdict in self._judge.frame(report):
                await self._queue.put(replace(verdict, frame_ids=ids), report.media_time)

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Measure one PCM16 chunk; queue an ``audio_activity`` detection at an onset."""
        self._check_open()
        pcm = chunk.pcm[: len(chunk.pcm) - len(chunk.pcm) % 2]  # a torn last sample is ignored
        report = self._audio.process(AudioChunk(pcm, chunk.media_time, chunk.sample_rate).samples(),
                                     chunk.media_time, chunk.sample_rate)
        self._window.add_audio(report)
        self._whole.add_audio(report)
        self._audio_chunks += 1
        self._advance(report.media_time + report.duration)
        if report.onset is not None:
            await self._queue.put(report.onset, report.media_time)
        for verdict in self._judge.audio(report):
            await self._queue.put(verdict, report.media_time)

    async def end_audio(self) -> None:
        """The source's audio stopped; a silence running until now is remembered."""
        self._check_open()
        self._note_trailing_silence()

    async def send_tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        """Ignored: tools are a model concept and this backend never calls any."""
        self._check_open()

    def _advance(self, media_time: float) -> None:
        self._latest = media_time if self._latest is None else max(self._latest, media_time)

    def _note_trailing_silence(self) -> None:
        silence = self._audio.trailing_silence()
        if silence is not None:
            self._window.note_silence(silence)
            self._whole.note_silence(silence)

    # -- commentary ---------------------------------------------------------------

    async def prompt(self, text: str, *, reason: str, media_time: float | None = None) -> None:
        """Queue a commentary turn summarising the signals.

        "cadence"/"scene": the span since the previous such prompt (then a new
        span starts); "client": the same span, acknowledging the question;
        "final": the whole session.
        """
        self._check_open()
        async with self._order:  # after every frame sent before this prompt
            self._note_trailing_silence()
            self._turns += 1
            self._prompts += 1
            when = media_time if media_time is not None else self._latest
            body = self._compose(text, reason, when)
            commentary = Commentary(body, final=True, turn_id=f"{NAME}-{self._turns}", backend=NAME,
                                    frame_ids=tuple(self._window_ids))
            if reason in ("cadence", "scene"):
                self._window = ActivityLog()
                self._window_ids = []
                self._window.mark(self._latest)
            await self._queue.put(commentary, when)

    def _compose(self, text: str, reason: str, when: float | None) -> str:
        if reason == "final":
            log = self._whole
            start = log.start if log.start is not None else 0.0
            end = log.end if log.end is not None else start
            return f"Whole session ({start:.1f}–{end:.1f} s, {log.frames} frames): " + log.phrase()
        window = self._window
        length = (window.end - window.start) if window.start is not None and window.end is not None else 0.0
        heading = f"Over the last {length:.1f} s ({window.frames} frame{'s' if window.frames != 1 else ''}): "
        summary = heading + window.phrase()
        if reason == "client" and text.strip():
            question = " ".join(text.split())
            if len(question) > 200:
                question = question[:199] + "…"
            return (f'You asked: "{question}". I am the offline signal analyzer (motion, scene cuts, camera '
                    "movement, exposure and audio levels), not a language model, so I cannot answer that "
                    f"directly; here is what the signals show. {summary}")
        if reason == "scene" and when is not None:
            return f"Scene change at {when:.1f} s. {summary}"
        return summary

    # -- output -------------------------------------------------------------------

    def events(self) -> AsyncIterator[BackendEvent]:
        """Events in the order they were produced; ends once :meth:`close` has run and all are read."""
        return aiter(self._queue)

    async def close(self) -> None:
        """Wait for the frame being analysed, then end ``events()`` after what is queued. Idempotent."""
        if not self._core.begin_close():
            return
        async with self._order:
            self._queue.end()


class LocalBackend:
    """Opens :class:`LocalSession` objects; stateless, shared by any number of sessions."""

    name = NAME

    def __init__(self, *, queue_size: int = DEFAULT_EVENT_QUEUE) -> None:
        if queue_size < 1:
            raise UsageError(f"local backend queue_size must be >= 1, got {queue_size}")
        self.queue_size = queue_size

    async def open(self, settings: SessionSettings) -> LocalSession:
        return LocalSession(settings, queue_size=self.queue_size)
