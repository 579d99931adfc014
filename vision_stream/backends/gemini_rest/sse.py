"""Incremental ``text/event-stream`` parser (sans-I/O) for ``streamGenerateContent?alt=sse``.

LIVE_API.md §2: each event is ``data: {json}`` and a blank line; each chunk is
a whole ``GenerateContentResponse``. Parsed per the WHATWG SSE rules we need:
lines end with LF, CRLF or CR; ``data:`` lines of one event are joined with
LF; a single space after the colon is dropped; comment lines (``:``) and other
fields (``event``, ``id``, ``retry``) are ignored; an event is dispatched at a
blank line. Bounded: an event larger than ``max_event_bytes`` is an error.
"""

from __future__ import annotations

from ...errors import ProtocolError

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024


class SSEParser:
    """Feed text as it arrives; get back the ``data`` payloads of completed events."""

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._buffer = ""
        self._data: list[str] = []
        self._size = 0
        self._pending_cr = False

    def feed(self, text: str) -> list[str]:
        """Consume ``text`` (any split); return payloads of events completed by it."""
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across feeds
        self._pending_cr = False
        self._buffer += text
        out: list[str] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            end, width = cut
            line = self._buffer[:end]
            if width == 1 and self._buffer[end] == "\r" and end + 1 == len(self._buffer):
                self._pending_cr = True  # maybe half of a CRLF
            self._buffer = self._buffer[end + width:]
            payload = self._line(line)
            if payload is not None:
                out.append(payload)
        if len(self._buffer) + self._size > self.max_event_bytes:
            raise ProtocolError(f"SSE event larger than {self.max_event_bytes} bytes")
        return out

    def close(self) -> list[str]:
        """End of stream: an event without its final blank line still counts."""
        out = []
        if self._buffer:
            payload = self._line(self._buffer)
            self._buffer = ""
            if payload is not None:
                out.append(payload)
        payload = self._line("")
        if payload is not None:
            out.append(payload)
        return out

    def _line(self, line: str) -> str | None:
        if line == "":
            if not self._data:
                return None
            payload = "\n".join(self._data)
            self._data, self._size = [], 0
            return payload
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._size += len(value) + 1
            if self._size > self.max_event_bytes:
                raise ProtocolError(f"SSE event larger than {self.max_event_bytes} bytes")
        return None


def _line_end(buffer: str) -> tuple[int, int] | None:
    """Index and width of the first line ending (CRLF, LF or CR), None if none yet."""
    lf, cr = buffer.find("\n"), buffer.find("\r")
    if lf == -1 and cr == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, 1
    if cr + 1 < len(buffer) and buffer[cr + 1] == "\n":
        return cr, 2
    return cr, 1
