"""The session pipeline: a media source, through a sampler, into one backend and one event log.

- :mod:`.session` - :class:`Session`: lifecycle, state, the feed and the event pump;
- :mod:`.reader` - the source thread (pace, sample, encode, batch, hand over);
- :mod:`.feed` - mailbox -> backend on the loop, prompting on cadence;
- :mod:`.mailbox` - the bounded handoff between that thread and the loop;
- :mod:`.cadence` - when to ask for commentary (pure, media time);
- :mod:`.stats` - counters, the media clock and ``stats`` events.

Threading model: one source thread per session does the CPU work; the event
loop only moves finished items (``Mailbox``) and backend events (``EventLog``).
"""

from .mailbox import Mailbox, MailboxClosed
from .session import Session, SessionState

__all__ = ["Mailbox", "MailboxClosed", "Session", "SessionState"]
