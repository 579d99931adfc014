"""The session's source thread: pace, sample, encode, batch, hand over to the loop.

One :class:`SourceReader` per session runs ``source.items()`` in its own
thread ("source-<id>"), so the CPU work (decode, thumbnail probes, resize,
JPEG) never runs on the event loop; the loop only moves finished items out of
the :class:`~vision_stream.pipeline.mailbox.Mailbox`.

The handoff (thread -> loop) takes one of two forms, by the mailbox's
discipline:

- latest-wins (live media): ``loop.call_soon_threadsafe`` puts the batch
  without waiting; the mailbox drops and counts what it must;
- lossless (batch work, ``--fast``): ``asyncio.run_coroutine_threadsafe`` and
  the thread waits on the future (polled every 0.5 s so a stop is noticed),
  so a slow backend slows the source down instead of losing anything.

After the last item (or a failure) the reader always hands over one
:class:`EndOfInput`, carrying the exception if the source raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from ..media.sampler import FrameSampler
from ..media.types import AudioChunk, MediaSource, VideoFrame
from .mailbox import Mailbox, MailboxClosed
from .stats import PipelineCounters

__all__ = ["AUDIO_BATCH_SECONDS", "EndOfInput", "Pacer", "SourceReader"]

# A file's audio is handed to the event loop in batches of this many media
# seconds (two 50 ms chunks): half the loop wake-ups and paced waits of one
# per chunk, for at most one chunk (<= 100 ms) of added audio latency.
AUDIO_BATCH_SECONDS = 0.1
# How often (seconds) a lossless handoff waiting for room checks for a stop.
_HANDOFF_POLL = 0.5


class EndOfInput:
    """Marker the source thread sends after the last item (``error``: why it stopped early)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class Pacer:
    """Source-speed replay clock: the first media item's time is anchored to the wall clock."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._first_media: float | None = None
        self._first_wall = 0.0

    def anchor(self, media_time: float) -> None:
        """The first media item seen starts the clock (later calls do nothing)."""
        if self._first_media is None:
            self._first_media, self._first_wall = media_time, time.monotonic()

    def wait_until(self, media_time: float) -> bool:
        """Sleep until ``media_time`` is due; False if the session was stopped meanwhile."""
        self.anchor(media_time)
        assert self._first_media is not None
        delay = (media_time - self._first_media) - (time.monotonic() - self._first_wall)
        return not (delay > 0 and self._stop.wait(delay))


class SourceReader:
    """Reads one source in one thread and hands its items to the loop's mailbox.

    ``paced``: wait until each batch is due at source speed (a file standing
    in for a camera). ``stop`` is the session's stop event: the thread checks
    it between items and while it waits. Counts ``frames_in``,
    ``frames_sampled`` and ``audio_chunks_in`` into ``counters``.
    """

    def __init__(self, *, source: MediaSource, sampler: FrameSampler, mailbox: Mailbox, stop: threading.Event,
                 counters: PipelineCounters, paced: bool, name: str) -> None:
        self.source = source
        self.sampler = sampler
        self.mailbox = mailbox
        self.counters = counters
        self._stop = stop
        self._paced = paced
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the thread; items go to ``loop``."""
        self._loop = loop
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait (blocking: call it off the loop) up to ``timeout`` seconds for the thread to end."""
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)

    def _run(self) -> None:
        """Batch and hand over items; always end with one EndOfInput (see the module docstring).

        Items go to the loop in batches: a file's audio chunks are collected
        until they span ``AUDIO_BATCH_SECONDS`` (or a sampled frame or another
        item comes), then handed over with one loop wake-up instead of one per
        chunk. Pacing waits once per batch, until the media time of its newest
        item, so nothing is handed over earlier than before; frames that are
        not sampled are never waited for (the sampler's decisions depend on
        media time only). Live sources arrive at source speed already: their
        items are handed over one by one, as they come.
        """
        end = EndOfInput()
        pending: list[object] = []
        pacer = Pacer(self._stop) if self._paced else None
        batch_audio = not self.source.live
        batch: list[object] = []
        due: float | None = None  # media time of the newest media item in the batch
        audio_seconds = 0.0  # audio in the batch, seconds
        try:
            for item in self.source.items():
                if self._stop.is_set():
                    break
                if pacer is not None and isinstance(item, VideoFrame | AudioChunk):
                    pacer.anchor(item.media_time)
                if isinstance(item, VideoFrame):
                    self.counters.frames_in += 1
                    decision = self.sampler.decide(item)
                    if decision is None:
                        continue
                    self.counters.frames_sampled += 1
                    due = item.media_time if due is None else max(due, item.media_time)
                    if pacer is not None and not pacer.wait_until(due):
                        break
                    batch.append(self.sampler.encode(item, decision, decoded_at=time.monotonic()))
                elif isinstance(item, AudioChunk):
                    self.counters.audio_chunks_in += 1
                    batch.append(item)
                    due = item.media_time if due is None else max(due, item.media_time)
                    audio_seconds += item.duration
                    if batch_audio and audio_seconds < AUDIO_BATCH_SECONDS - 1e-9:
                        continue
                    if pacer is not None and not pacer.wait_until(due):
                        break
                else:
                    batch.append(item)
                    if pacer is not None and due is not None and not pacer.wait_until(due):
                        break
                self._hand_over(batch)
                batch, due, audio_seconds = [], None, 0.0
            else:
                if batch and (pacer is None or due is None or pacer.wait_until(due)):
                    self._hand_over(batch)
        except MailboxClosed:
            return
        except BaseException as exc:  # surfaced in the session, never lost in a thread
            end = EndOfInput(exc)
            pending = batch  # what was read before the failure still goes first
        with contextlib.suppress(MailboxClosed, RuntimeError):  # RuntimeError: the loop is closed
            self._hand_over([*pending, end], force=True)

    def _hand_over(self, items: list[object], *, force: bool = False) -> None:
        """Put ``items`` (in order) into the mailbox from the source thread: one loop wake-up."""
        loop = self._loop
        assert loop is not None
        if self.mailbox.lossless or force:
            future = asyncio.run_coroutine_threadsafe(self._put_all(items), loop)
            while True:
                try:
                    future.result(timeout=_HANDOFF_POLL)
                    return
                except TimeoutError:
                    if self._stop.is_set() and not force:
                        future.cancel()
                        raise MailboxClosed from None
        else:
            loop.call_soon_threadsafe(self._put_latest, items)

    async def _put_all(self, items: list[object]) -> None:
        for item in items:
            await self.mailbox.put(item)

    def _put_latest(self, items: list[object]) -> None:
        with contextlib.suppress(MailboxClosed):
            for item in items:
                self.mailbox.put_nowait(item)
