"""``GeminiLiveBackend``: opens Live sessions (the :class:`~vision_stream.backends.base.Backend` side)."""

from __future__ import annotations

from ...config import SessionSettings
from .session import LiveSession
from .settings import LiveSettings


class GeminiLiveBackend:
    """Opens :class:`LiveSession` s on the Gemini Live API (or an emulator at ``base_url``).

    One instance serves any number of sessions; each session is its own
    connection (Google limits concurrent sessions per project).
    """

    name = "live"

    def __init__(self, settings: LiveSettings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"GeminiLiveBackend({self.settings!r})"

    async def open(self, settings: SessionSettings) -> LiveSession:
        """Connect and set up a session; raises ServiceError when the service refuses for good."""
        return await LiveSession.open(self.settings, settings)
