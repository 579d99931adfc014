"""The bounded handoff between a session's source thread and its backend.

Two disciplines, chosen per session:

* **latest-wins** (live media): at most ``frame_slots`` unsent frames; a new
  frame replaces the oldest unsent one. Audio keeps a bounded window; past it
  the oldest chunk is dropped. Every drop is counted. Other items (status,
  bad-packet notes, end of input) are never dropped.
* **lossless** (batch input, ``--fast``): a bounded FIFO whose producer waits
  for space, so the source is slowed down instead of losing anything.

Items come out in arrival order in both disciplines (frames and audio stay
interleaved as the source produced them).
"""

from __future__ import annotations

import asyncio
from collections import deque

from ..errors import UsageError
from ..media.types import AudioChunk, SampledFrame


class MailboxClosed(Exception):
    """The consumer went away; the producer should stop."""


class Mailbox:
    """Bounded, ordered handoff; see the module docstring for the disciplines."""

    def __init__(self, *, lossless: bool, frame_slots: int = 1, audio_chunks: int = 100, capacity: int = 64) -> None:
        if min(frame_slots, audio_chunks, capacity) < 1:
            raise UsageError(f"mailbox bounds must be >= 1, got frame_slots={frame_slots}, "
                             f"audio_chunks={audio_chunks}, capacity={capacity}")
        self.lossless = lossless
        self.frame_slots = frame_slots
        self.audio_chunks = audio_chunks
        self.capacity = capacity
        self._items: deque[object] = deque()
        self._frames = 0
        self._audio = 0
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.frames_dropped = 0
        self.audio_dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: object) -> None:
        """Add without waiting (latest-wins discipline; drops what it must)."""
        if self._closed:
            raise MailboxClosed
        if isinstance(item, SampledFrame):
            # The replaced frame leaves the count too: otherwise the count drifts up
            # and later puts "drop" frames that are not there (sent + dropped > sampled).
            if self._frames >= self.frame_slots:
                self._remove_oldest(SampledFrame)
                self._frames -= 1
                self.frames_dropped += 1
            self._frames += 1
        elif isinstance(item, AudioChunk):
            if self._audio >= self.audio_chunks:
                self._remove_oldest(AudioChunk)
                self._audio -= 1
                self.audio_dropped += 1
            self._audio += 1
        self._items.append(item)
        self._readable.set()
        if self.lossless and len(self._items) >= self.capacity:
            self._writable.clear()

    async def put(self, item: object) -> None:
        """Add, waiting for space in lossless mode; never waits in latest-wins mode."""
        if self.lossless:
            while len(self._items) >= self.capacity and not self._closed:
                self._writable.clear()
                await self._writable.wait()
            # Lossless mode never drops: bounds were checked above.
            if self._closed:
                raise MailboxClosed
            self._count_in(item)
            self._items.append(item)
            self._readable.set()
            return
        self.put_nowait(item)

    async def get(self) -> object:
        """The next item in arrival order; waits while empty."""
        while not self._items:
            if self._closed:
                raise MailboxClosed
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        if isinstance(item, SampledFrame):
            self._frames -= 1
        elif isinstance(item, AudioChunk):
            self._audio -= 1
        if len(self._items) < self.capacity:
            self._writable.set()
        return item

    def close(self) -> None:
        """Wake everyone; later puts raise MailboxClosed, gets drain then raise."""
        self._closed = True
        self._readable.set()
        self._writable.set()

    def _count_in(self, item: object) -> None:
        if isinstance(item, SampledFrame):
            self._frames += 1
        elif isinstance(item, AudioChunk):
            self._audio += 1

    def _remove_oldest(self, kind: type) -> None:
        for index, queued in enumerate(self._items):
            if isinstance(queued, kind):
                del self._items[index]
                return
