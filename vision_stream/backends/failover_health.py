"""Link health of the failover chain: which links are down, and when each may be probed.

Pure bookkeeping: no tasks, no sleeping, no clock of its own (every call takes
``now``, monotonic seconds), so the probe schedule is tested with plain numbers.
The chain (``backends.failover``) owns the probe task and asks this module
*which* link is due and *how long* to wait.

Rules:

* A failed link is reopened after a capped, jittered, doubling backoff
  (:class:`vision_stream.retry.Backoff`, ``FailoverPolicy.probe``), and never
  before the server's own retry delay (the error's ``retry_after``: a 429's
  ``RetryInfo``, a Live quota close): the later of the two wins.
* A permanent failure (bad key, unknown model) starts ``permanent_penalty``
  doublings further along, so a broken link is not reopened every few seconds.
* A link that answers a turn is healthy again: its backoff starts over.
* Quota failures are recognised from the error's verdict (``code``), never
  from message text, and logged as such.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import BackendError
from ..retry import Backoff, RetryPolicy, is_quota

__all__ = ["LinkDown", "LinkHealth", "server_delay"]

def server_delay(error: BaseException | None) -> float | None:
    """The wait the service asked for (the error's ``retry_after``, seconds), if any."""
    delay = error.retry_after if isinstance(error, BackendError) else None
    return float(delay) if delay is not None and delay > 0 else None


@dataclass(slots=True)
class LinkDown:
    """One failed link: its consecutive failures and when it may be probed next."""

    backoff: Backoff
    next_probe: float = 0.0  # monotonic seconds: the later of our backoff and the server's delay
    reason: str = ""
    quota: bool = False  # the last failure was a quota failure


class LinkHealth:
    """Which links of a chain are down, by index (0 = the best link)."""

    def __init__(self, probe: RetryPolicy, *, permanent_penalty: int = 3, rng: random.Random | None = None) -> None:
        self.probe = probe
        self.permanent_penalty = permanent_penalty
        self._rng = rng or random.Random()
        self._down: dict[int, LinkDown] = {}

    def get(self, index: int) -> LinkDown | None:
        """The link's down record, or None while it is healthy."""
        return self._down.get(index)

    def note_down(self, index: int, reason: str, *, now: float, permanent: bool,
                  error: BaseException | None = None) -> float:
        """Count a failure of link ``index``; returns the seconds until its next probe."""
        down = self._down.get(index)
        if down is None:
            down = self._down[index] = LinkDown(Backoff(self.probe, rng=self._rng))
            if permanent:
                down.backoff.failures += self.permanent_penalty  # start further along the doubling
        requested = server_delay(error)
        delay = down.backoff.fail(at_least=requested or 0.0)
        # The probe policy retries forever (max_attempts None); a policy with a limit keeps its cap.
        wait = delay if delay is not None else self.probe.max_delay
        down.next_probe = now + wait
        down.reason = reason
        down.quota = is_quota(error)
        return wait

    def note_healthy(self, index: int) -> None:
        """The link answered a turn: forget its failures (the next one waits the base delay)."""
        self._down.pop(index, None)

    def due(self, better_than: int, now: float) -> int | None:
        """The best link above ``better_than`` whose probe time has come, or None."""
        for index in range(better_than):
            down = self._down.get(index)
            if down is None or down.next_probe <= now:
                return index
        return None

    def wait(self, better_than: int, now: float) -> float:
        """Seconds until the earliest probe of a link above ``better_than`` is due (0 when one is)."""
        times = [self._down[i].next_probe if i in self._down else now for i in range(better_than)]
        return max(0.0, min(times, default=now) - now)
