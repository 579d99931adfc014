"""A session's reader: pace, sample, encode, batch, hand over to the loop.

:class:`SourceReader` runs ``source.items()`` off the event loop, so the CPU
work (decode, thumbnail probes, resize, JPEG) never runs on it; the loop only
moves finished items out of the :class:`~vision_stream.pipeline.mailbox.Mailbox`.
The reader is written as steps that yield each wait (a pacing deadline, a
hand-over to complete), so it runs either in a thread of its own (live sources
that block on the network, ``--fast`` batch work) or on the shared
:class:`~vision_stream.pipeline.workers.WorkerPool` (paced replays: a fleet of
sessions on a few threads, bursts worked off earliest deadline first).

The handoff (reader -> loop) takes one of two forms, by the mailbox's
discipline:

- latest-wins (live media): ``loop.call_soon_threadsafe`` puts the batch
  without waiting; the mailbox drops and counts what it must;
- lossless (batch work, ``--fast``): ``asyncio.run_coroutine_threadsafe`` and
  the reader waits on the future (looking again every 0.5 s so a stop is
  noticed), so a slow backend slows the source down instead of losing anything.

After the last item (or a failure) the reader always hands over one
:class:`EndOfInput`, carrying the exception if the source raised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Iterator

from ..media.sampler import FrameSampler
from ..media.types import AudioChunk, MediaSource, VideoFrame
from .mailbox import Mailbox, MailboxClosed
from .stats import PipelineCounters
from .workers import FUTURE_POLL, PooledTask, Step, WorkerPool

__all__ = ["AUDIO_BATCH_SECONDS", "EndOfInput", "Pacer", "SourceReader"]

# A file's audio is handed to the event loop in batches of this many media
# seconds (two 50 ms chunks): half the loop wake-ups and paced waits of one
# per chunk, for at most one chunk (<= 100 ms) of added audio latency.
AUDIO_BATCH_SECONDS = 0.1


class EndOfInput:
    """Marker the source thread sends after the last item (``error``: why it stopped early)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class Pacer:
    """Source-speed replay clock: the first media item's time is anchored to the wall clock."""

    def __init__(self) -> None:
        self._first_media: float | None = None
        self._first_wall = 0.0

    def anchor(self, media_time: float) -> None:
        """The first media item seen starts the clock (later calls do nothing)."""
        if self._first_media is None:
            self._first_media, self._first_wall = media_time, time.monotonic()

    def deadline(self, media_time: float) -> float:
        """The ``time.monotonic()`` at which ``media_time`` is due."""
        self.anchor(media_time)
        assert self._first_media is not None
        return self._first_wall + (media_time - self._first_media)


class SourceReader:
    """Reads one source and hands its items to the loop's mailbox.

    ``paced``: wait until each batch is due at source speed (a file standing
    in for a camera). ``stop`` is the session's stop event: the reader checks
    it between items and while it waits. Counts ``frames_in``,
    ``frames_sampled`` and ``audio_chunks_in`` into ``counters``. ``pool``:
    run as steps on that shared worker pool instead of a thread of its own.
    """

    def __init__(self, *, source: MediaSource, sampler: FrameSampler, mailbox: Mailbox, stop: threading.Event,
                 counters: PipelineCounters, paced: bool, name: str, pool: WorkerPool | None = None) -> None:
        self.source = source
        self.sampler = sampler
        self.mailbox = mailbox
        self.counters = counters
        self._stop = stop
        self._paced = paced
        self._name = name
        self._pool = pool
        self._task: PooledTask | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading (a thread, or a task on the pool); items go to ``loop``."""
        self._loop = loop
        if self._pool is not None:
            self._task = self._pool.submit(self._steps(), self._name)
        else:
            self._thread = threading.Thread(target=self._drive, name=self._name, daemon=True)
            self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait (blocking: call it off the loop) up to ``timeout`` seconds for the reader to end."""
        if self._task is not None:
            self._task.wake()  # a pooled reader waiting for its next batch notices the stop now
            self._task.finished.wait(timeout)
        elif self._thread is not None:
            self._thread.join(timeout)

    def _drive(self) -> None:
        """The reader's own thread: run the steps, sleeping through each wait."""
        for wait in self._steps():
            if isinstance(wait, concurrent.futures.Future):
                concurrent.futures.wait([wait], timeout=FUTURE_POLL)
            else:
                self._stop.wait(max(wait - time.monotonic(), 0.0))

    def _until(self, pacer: Pacer | None, media_time: float | None) -> Iterator[Step]:
        """Wait (yield deadlines) until ``media_time`` is due; ends early on a stop."""
        if pacer is None or media_time is None:
            return
        deadline = pacer.deadline(media_time)
        # A loop, not one yield: a pooled task may be resumed early (a stale wake).
        while not self._stop.is_set() and time.monotonic() < deadline:
            yield deadline

    def _steps(self) -> Iterator[Step]:
        """Batch and hand over items; always end with one EndOfInput (see the module docstring).

        Items go to the loop in batches: a file's audio chunks are collected
        until they span ``AUDIO_BATCH_SECONDS`` (or a sampled frame or another
        item comes), then handed over with one loop wake-up instead of one per
        chunk. Pacing waits once per batch, until the media time of its newest
        item, so nothing is handed over earlier than before; frames that are
        not sampled are never waited for (the sampler's decisions depend on
        media time only). Live sources arrive at source speed already: their
        items are handed over one by one, as they come. Every wait is yielded
        (a deadline or a hand-over future), so the same steps run in a thread
        of their own or on a shared pool.
        """
        end = EndOfInput()
        pending: list[object] = []
        pacer = Pacer() if self._paced else None
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
                    yield from self._until(pacer, due)
                    if self._stop.is_set():
                        break
                    batch.append(self.sampler.encode(item, decision, decoded_at=time.monotonic()))
                elif isinstance(item, AudioChunk):
                    self.counters.audio_chunks_in += 1
                    batch.append(item)
                    due = item.media_time if due is None else max(due, item.media_time)
                    audio_seconds += item.duration
                    if batch_audio and audio_seconds < AUDIO_BATCH_SECONDS - 1e-9:
                        continue
                    yield from self._until(pacer, due)
                    if self._stop.is_set():
                        break
                else:
                    batch.append(item)
                    yield from self._until(pacer, due)
                    if self._stop.is_set():
                        break
                yield from self._hand_over(batch)
                batch, due, audio_seconds = [], None, 0.0
            else:
                if batch:
                    yield from self._until(pacer, due)
                    if not self._stop.is_set():
                        yield from self._hand_over(batch)
        except MailboxClosed:
            return
        except BaseException as exc:  # surfaced in the session, never lost in a thread
            end = EndOfInput(exc)
            pending = batch  # what was read before the failure still goes first
        with contextlib.suppress(MailboxClosed, RuntimeError):  # RuntimeError: the loop is closed
            yield from self._hand_over([*pending, end], force=True)

    def _hand_over(self, items: list[object], *, force: bool = False) -> Iterator[Step]:
        """Put ``items`` (in order) into the mailbox: one loop wake-up.

        Latest-wins: ``call_soon_threadsafe``, nothing to wait for. Lossless (or
        the final ``force``): the put runs on the loop and its future is yielded
        until it completes; a stop meanwhile gives up (except ``force``).
        """
        loop = self._loop
        assert loop is not None
        if not (self.mailbox.lossless or force):
            loop.call_soon_threadsafe(self._put_latest, items)
            return
        future = asyncio.run_coroutine_threadsafe(self._put_all(items), loop)
        while not future.done():
            yield future
            if future.done():
                break
            if (self._stop.is_set() and not force) or loop.is_closed():
                future.cancel()
                raise MailboxClosed if not loop.is_closed() else RuntimeError("event loop closed")
        future.result()

    async def _put_all(self, items: list[object]) -> None:
        for item in items:
            await self.mailbox.put(item)

    def _put_latest(self, items: list[object]) -> None:
        with contextlib.suppress(MailboxClosed):
            for item in items:
                self.mailbox.put_nowait(item)
