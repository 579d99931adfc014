"""The budget governor: keep a session's token and dollar rate under its budget (pure).

Live bills the whole context again on every turn (LIVE_API.md "Cost"), so what
a session costs per hour is set by how many turns it asks for (the commentary
cadence) and how fast the context grows (frames per turn: the sampling rate,
scene-change frames). The governor watches the running rate per hour of MEDIA
time (so ``--fast`` and real time agree) and walks a ladder of cheaper
settings, one rung at a time:

  0. the session's own settings;
  1. half the frame rate (half the frames per turn);
  2. and a higher scene threshold (fewer scene-change frames and prompts);
  3. and twice the commentary interval (half the turns, each re-billing the context);
  4. a quarter of the frame rate and four times the interval.

Below the last rung, when a prompt is still held there and the session is a
failover chain with a REST link (``--backend auto`` with a key), the chain is
asked to run on REST snapshots (``FailoverSession.prefer``: one
``backend_changed`` live -> rest whose reason starts "budget"), and back to Live
(``release``) when comfortably under budget (the same hysteresis and dwell). A
REST request carries only its snapshot instead of re-billing a growing context:
on the traffic clip x4 at $1/h, Live at its last rung was heading for $3.90/h
(the forecast) and the session ended at $0.10/h with REST answering
(tests/backends/test_budget.py). Otherwise the gate simply holds the commentary.

The ladder alone acts only after a turn's ``usageMetadata`` arrived: too late
for a 30 s clip, whose first few turns already cost more than the budget. So
each prompt is first ADMITTED against a forecast (:class:`TurnForecast`): the
next turn re-bills the last turn's real prompt plus its answer plus what was
sent since (frames, audio and the prompt, priced by the one token estimator in
vision_stream/usage.py, the model the emulator bills with), and answers as long
as the answers so far (a moving average, not a padded maximum). The forecast is
CALIBRATED, not padded: each billed turn is compared with what was forecast for
it and a moving average of real/forecast (``bias``; under 1 once the sliding
window starts cutting the context) scales the next forecasts, the turns in
flight and the closing reserve. The prompt goes only if (a) the session's spend
+ the turns in flight + this turn + the closing summary's turn (the reserve:
what that turn will cost, no more) stays within the budget for the media time so
far: spend follows the budget line, and credit a held prompt left unspent is
spent by a later one; and (b) what the last ``window`` (120) media seconds spent
is within ``burst`` (1.5) x the budget for them: after a quiet spell the banked
credit is spent at most 50 % faster than the budget, not at once. Otherwise it
is held (and the ladder steps down). An hour of media at $2, $5 and $10/h
(bench/tokens.py, through this gate) lands at 0.91-0.98 x the budget. Holding
and resuming are one ``budget`` event each, like a rung change, and the
session's built-in ``budget_exhausted`` health condition follows them
(:attr:`Admission.exhausted`).

Rates are smoothed: the rate of the last ``window`` media seconds, and the
session's average so far. Under the gate the ladder steps DOWN when a prompt is
held (``observe`` alone, without the gate, also steps down when either rate is
above the budget), and back UP only when both are under ``resume`` x the
budget (hysteresis) and at least ``dwell`` media seconds passed since the last
change, so it does not flap. Each change is reported once by the caller, as a
retryable ``error`` event with code ``budget`` (the rate_limited precedent: a
degraded-but-working session, not a backend switch, which is what
``backend_changed`` means).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..config import SamplingPolicy
from ..usage import Usage, audio_tokens, image_tokens, text_tokens

__all__ = ["LADDER", "Admission", "BudgetChange", "BudgetGovernor", "Rung", "TurnForecast"]

# The prompt text the backends send for a cadence turn is short: a generous guess.
PROMPT_TOKENS = text_tokens("x" * 240)


@dataclass(frozen=True, slots=True)
class Rung:
    """One setting of the ladder, relative to the session's own."""

    name: str
    fps_factor: float = 1.0
    raise_scene_threshold: bool = False
    interval_factor: float = 1.0

    def sampling(self, base: SamplingPolicy) -> SamplingPolicy:
        threshold = base.scene_threshold
        if self.raise_scene_threshold:
            threshold = min(0.95, threshold + (1.0 - threshold) / 2)
        fps = max(0.05, base.fps * self.fps_factor)
        return base.updated(fps=fps, max_fps=max(fps, base.max_fps * self.fps_factor), scene_threshold=threshold)

    def interval(self, base: float) -> float:
        return min(3600.0, base * self.interval_factor)


LADDER = (
    Rung("the session's own settings"),
    Rung("half the frame rate", fps_factor=0.5),
    Rung("half the frame rate, higher scene threshold", fps_factor=0.5, raise_scene_threshold=True),
    Rung("half the frame rate, higher scene threshold, twice the commentary interval", fps_factor=0.5,
         raise_scene_threshold=True, interval_factor=2.0),
    Rung("a quarter of the frame rate, higher scene threshold, four times the commentary interval",
         fps_factor=0.25, raise_scene_threshold=True, interval_factor=4.0),
)


@dataclass(frozen=True, slots=True)
class BudgetChange:
    """A step of the ladder: the new settings and why (the event's message)."""

    level: int
    sampling: SamplingPolicy
    interval: float
    reason: str
    link: str = ""  # "rest": move to REST snapshots, "live": back (the chain's prefer/release)


def _as_input(kind: str) -> str:
    """An answer is re-billed as input on the next turn: ``output_audio`` -> ``input_audio``."""
    return "input_" + kind.removeprefix("output_") if kind.startswith("output_") else "input_text"


def _minus(a: Usage, b: Usage) -> Usage:
    return Usage({k: v - b.get(k) for k, v in a.tokens.items() if v > b.get(k)})


def _scaled(tokens: Mapping[str, int], factor: float) -> dict[str, int]:
    return {k: round(v * factor) for k, v in tokens.items()}


class TurnForecast:
    """The tokens of the next turn before it is asked (see the module docstring).

    ``system_prior``: the system instruction and declarations, before the first
    real count says; ``response_prior``: the answer length before the first
    answer (about 30 s of speech: conservative).
    """

    def __init__(self, *, resolution: str, frame_side: int, system_prior: int = 600,
                 response_prior: int = 1000) -> None:
        # Frames within ``frame_side`` (the sampler's max side): one estimate per frame.
        self.frame_tokens = image_tokens(frame_side, frame_side, resolution or "MEDIA_RESOLUTION_LOW")
        self.system_prior = system_prior
        self.response = response_prior
        self.response_kind = "output_audio"
        self.scale = 1.0  # real new input / estimated, from the turns so far
        self.bias = 1.0  # real turn / forecast turn, from the turns so far (:meth:`calibrate`)
        self.last: Usage | None = None  # the last turn's real usage
        self._new: dict[str, int] = {}  # estimated input since the last prompt went
        self._in_flight = 0  # the estimated new input of the turn asked last
        self._seen = (0, 0, 0.0)  # frames sent, audio chunks sent, media seconds at the last note
        self._input_rate = 0.0  # estimated input tokens per media second

    def note(self, frames_sent: int, audio_chunks_sent: int, media_seconds: float) -> None:
        """What went to the backend since the last note (the session's counters)."""
        frames, chunks, media = self._seen
        if frames_sent > frames:
            self._new["input_video"] = self._new.get("input_video", 0) + (frames_sent - frames) * self.frame_tokens
        if audio_chunks_sent > chunks and media_seconds > media:
            self._new["input_audio"] = self._new.get("input_audio", 0) + audio_tokens(media_seconds - media)
        if media_seconds > media:
            added = (frames_sent - frames) * self.frame_tokens + (
                audio_tokens(media_seconds - media) if audio_chunks_sent > chunks else 0)
            rate = added / (media_seconds - media)
            self._input_rate = rate if not self._input_rate else 0.8 * self._input_rate + 0.2 * rate
        self._seen = (frames_sent, audio_chunks_sent, max(media, media_seconds))

    def next_turn(self, *, extra_seconds: float = 0.0) -> Usage:
        """The next turn's usage by kind; ``extra_seconds`` more media first (the closing
        turn's reserve: what arrives before the next chance to hold)."""
        new = dict(self._new)
        if extra_seconds > 0:
            new["input_video"] = new.get("input_video", 0) + round(self._input_rate * extra_seconds)
        new["input_text"] = new.get("input_text", 0) + PROMPT_TOKENS
        tokens = _scaled(new, self.scale)
        if self.last is None:
            tokens["input_text"] += self.system_prior
        else:
            for kind, count in self.last.tokens.items():  # the context, billed again, and the answer
                kind = kind if kind.startswith("input_") or kind == "tool_use" else _as_input(kind)
                tokens[kind] = tokens.get(kind, 0) + count
        tokens[self.response_kind] = tokens.get(self.response_kind, 0) + self.response
        return Usage(tokens)

    def asked(self) -> None:
        """A prompt went: what was sent since joins the turn in flight."""
        self._in_flight = sum(self._new.values()) + PROMPT_TOKENS
        self._new = {}

    def answered(self, turn: Usage) -> None:
        """A turn's real usage arrived: anchor on it, correct the estimates."""
        if self.last is not None and self._in_flight > 0:
            real_new = turn.prompt - self.last.prompt - self.last.response
            if real_new > 0:  # (<= 0: the context was compressed; nothing to learn)
                self.scale = min(4.0, max(0.25, (self.scale + real_new / self._in_flight) / 2))
        outputs = {k: v for k, v in turn.tokens.items() if k.startswith("output_")}
        if outputs:
            self.response_kind = max(outputs, key=lambda k: outputs[k])
            answer = turn.response
            self.response = answer if self.last is None else round(0.7 * self.response + 0.3 * answer)
        self.last = turn

    def calibrate(self, real: float, forecast: float) -> None:
        """A turn's real cost against what was forecast for it: the forecast's bias (a
        moving average of real/forecast; compression cutting the context makes it < 1)."""
        if forecast > 0 and real > 0:
            self.bias = min(2.0, max(0.25, 0.7 * self.bias + 0.3 * real / forecast))


@dataclass(frozen=True, slots=True)
class Admission:
    """The governor's answer before a prompt: send it or hold it; a rung change to
    apply; the ``budget`` events to report (hold, resume); ``exhausted``: True when a
    hold starts, False when commentary resumes, None otherwise (the session's
    ``budget_exhausted`` health condition follows it)."""

    send: bool
    change: BudgetChange | None = None
    messages: tuple[str, ...] = ()
    exhausted: bool | None = None


class BudgetGovernor:
    """Decides the ladder level from the session's running usage (see the module docstring)."""

    def __init__(self, *, max_cost_per_hour: float = 0.0, max_tokens_per_hour: int = 0,
                 base_sampling: SamplingPolicy, base_interval: float, window: float = 120.0,
                 burst: float = 1.5, resume: float = 0.9, dwell: float | None = None, resolution: str = "") -> None:
        self.max_cost = max_cost_per_hour
        self.max_tokens = max_tokens_per_hour
        self.base_sampling = base_sampling
        self.base_interval = base_interval
        self.window = window
        self.burst = burst  # the window may spend this many times its budget (catching up after holds)
        self.resume = resume
        self.dwell = dwell if dwell is not None else max(6 * base_interval, 60.0)
        # Back from REST to Live only after this much media: REST's own low rate says nothing of
        # whether Live now fits, so a shorter wait would flap Live -> REST -> Live every dwell.
        self.snapshot_dwell = max(10 * self.dwell, 600.0)
        self.level = 0
        self.changes = 0
        self.snapshots_possible = False  # the session is a chain with a REST link (set by the session)
        self.on_snapshots = False  # the rung after the last: the chain was asked to run on REST
        self._resolution = resolution
        self._samples: deque[tuple[float, int, float]] = deque()  # (media s, tokens, $) at each check
        self._changed_at = 0.0
        self.forecast = TurnForecast(resolution=resolution, frame_side=base_sampling.max_side)
        self.holding = False
        self.held = 0  # prompts held so far
        self._spend: deque[tuple[float, int, float]] = deque([(0.0, 0, 0.0)])  # (media s, tokens, $) admitted
        self._pending: deque[tuple[int, float]] = deque()  # forecast (tokens, $) of turns asked, not billed yet
        self._billed = Usage()

    @property
    def active(self) -> bool:
        return self.max_cost > 0 or self.max_tokens > 0

    def _rates(self, media: float, tokens: int, cost: float) -> tuple[float, float, float, float]:
        """(recent tokens/h, recent $/h, average tokens/h, average $/h)."""
        self._samples.append((media, tokens, cost))
        while len(self._samples) > 2 and media - self._samples[1][0] >= self.window:
            self._samples.popleft()
        t0, k0, c0 = self._samples[0]
        span = media - t0
        recent = ((tokens - k0) * 3600 / span, (cost - c0) * 3600 / span) if span > 0 else (0.0, 0.0)
        average = (tokens * 3600 / media, cost * 3600 / media) if media > 0 else (0.0, 0.0)
        return recent[0], recent[1], average[0], average[1]

    def _load(self, tokens_h: float, cost_h: float) -> float:
        """The rate as a fraction of the budget (the tighter of the two limits)."""
        loads = []
        if self.max_cost > 0:
            loads.append(cost_h / self.max_cost)
        if self.max_tokens > 0:
            loads.append(tokens_h / self.max_tokens)
        return max(loads, default=0.0)

    def observe(self, media_seconds: float, tokens: int, cost_usd: float, *,
                down: bool = True) -> BudgetChange | None:
        """The session's totals so far at ``media_seconds`` of media: a change, or None.
        ``down=False``: only a step back up (the gate steps down itself, when it holds)."""
        if not self.active or media_seconds <= 0:
            return None
        recent_t, recent_c, avg_t, avg_c = self._rates(media_seconds, tokens, cost_usd)
        # Report the rate that decided: the recent one when it is the higher load.
        recent_load, average_load = self._load(recent_t, recent_c), self._load(avg_t, avg_c)
        load = max(recent_load, average_load)
        rate_t, rate_c = (recent_t, recent_c) if recent_load >= average_load else (avg_t, avg_c)
        since = media_seconds - self._changed_at
        # Down: after at least one turn at the current rung (its effect shows); up: after ``dwell``.
        if down and load > 1.0 and self.level < len(LADDER) - 1 and since >= self.base_interval:
            return self._move(self.level + 1, media_seconds, rate_t, rate_c, "over")
        if load < self.resume and self.on_snapshots and since >= self.snapshot_dwell:
            return self._to_link("live", media_seconds, rate_t, rate_c)
        if load < self.resume and self.level > 0 and since >= self.dwell:
            return self._move(self.level - 1, media_seconds, rate_t, rate_c, "under")
        return None

    def _move(self, level: int, media: float, tokens_h: float, cost_h: float, why: str) -> BudgetChange:
        self.level, self._changed_at = level, media
        self.changes += 1
        self._samples.clear()  # the new settings' rate starts afresh
        rung = LADDER[level]
        limits = " and ".join(x for x in (f"${self.max_cost:g}/h" if self.max_cost > 0 else "",
                                            f"{self.max_tokens} tokens/h" if self.max_tokens > 0 else "") if x)
        direction = "over" if why in ("over", "forecast") else f"well under ({self.resume:.0%} of)"
        running = "with the next turn heading for" if why == "forecast" else "running at"
        reason = (f"budget: {running} ${cost_h:.2f}/h, {tokens_h:,.0f} tokens/h of media, {direction} {limits}; "
                  f"now {rung.name} (level {level}/{len(LADDER) - 1})")
        return BudgetChange(level, rung.sampling(self.base_sampling), rung.interval(self.base_interval), reason)

    def _to_link(self, link: str, media: float, tokens_h: float, cost_h: float) -> BudgetChange:
        """The rung after the last: REST snapshots (``link="rest"``), or back to Live. Each
        link bills differently (Live re-bills its context each turn, a REST request carries
        only its snapshot), so the forecast starts afresh and the rates are measured anew."""
        self.on_snapshots = link == "rest"
        self._changed_at = media
        self.changes += 1
        self._samples.clear()
        self.forecast = TurnForecast(resolution=self._resolution, frame_side=self.base_sampling.max_side)
        rung = LADDER[self.level]
        if self.on_snapshots:
            why = (f"budget: with the next turn heading for ${cost_h:.2f}/h, {tokens_h:,.0f} tokens/h of media, "
                   f"over {self._limits()} at the lowest Live rung; now REST snapshots")
        else:
            why = (f"budget: running at ${cost_h:.2f}/h, {tokens_h:,.0f} tokens/h of media, well under "
                   f"({self.resume:.0%} of) {self._limits()}; back to Live")
        return BudgetChange(self.level, rung.sampling(self.base_sampling), rung.interval(self.base_interval), why,
                            link=link)

    def refused(self, change: BudgetChange) -> None:
        """The chain could not make the link change now (switching, closing): as if not asked."""
        if change.link:
            self.on_snapshots = change.link != "rest"

    # ---- admission: the forecast gate (module docstring) ------------------------------------

    def admit(self, media_seconds: float, *, usage: Usage, cost_usd: float, frames_sent: int,
              audio_chunks_sent: int, price: Callable[[Usage], float], closing: bool = False) -> Admission:
        """Before a prompt at ``media_seconds`` (the session's totals so far): send or hold.
        ``price`` prices a :class:`Usage` at the session's model; ``closing``: the summary turn."""
        if not self.active:
            return Admission(True)
        self.forecast.note(frames_sent, audio_chunks_sent, media_seconds)
        self._settle(usage, price)
        raw = self.forecast.next_turn()
        bias = self.forecast.bias
        turn_k, turn_c = raw.total * bias, price(raw) * bias
        # The closing summary re-bills the context once more (this turn and another
        # interval of media in it): reserved so the session's total stays within budget.
        closing_turn = Usage() if closing else self.forecast.next_turn(extra_seconds=self.base_interval)
        reserve_k, reserve_c = closing_turn.total * bias, price(closing_turn) * bias
        if self._fits(media_seconds, usage.total, cost_usd, turn_k, turn_c, reserve_k, reserve_c):
            messages: tuple[str, ...] = ()
            if self.holding:
                self.holding = False
                messages = (f"budget: commentary resumes: the next turn (~{turn_k:,.0f} tokens, "
                            f"${turn_c:.4f}) fits {self._limits()} after {self.held} held",)
            self.forecast.asked()
            self._pending.append((raw.total, price(raw)))
            # Over budget shows as a hold (below); an admitted turn may only let the ladder
            # climb back: the window's rate passes the budget by up to one turn by design.
            change = None if closing else self.observe(media_seconds, usage.total, cost_usd, down=False)
            return Admission(True, change, messages, exhausted=False if messages else None)
        self.held += 1
        messages = ()
        if not self.holding:
            self.holding = True
            what = "the closing summary" if closing else "commentary"
            messages = (f"budget: holding {what}: the next turn (~{turn_k:,.0f} tokens, ${turn_c:.4f}) "
                        f"would pass {self._limits()} of media (spent ${cost_usd:.4f}, {usage.total:,} tokens "
                        f"in {media_seconds:.0f} s)",)
        change = None
        since = media_seconds - self._changed_at
        bottom = self.level == len(LADDER) - 1
        if not closing and since >= self.base_interval and (not bottom or self._can_snapshot()):
            pending_k, pending_c = self._in_flight()
            # The rate the check saw: with the closing reserve.
            rate_k = self._rate(usage.total + pending_k + turn_k + reserve_k, media_seconds)
            rate_c = self._rate(cost_usd + pending_c + turn_c + reserve_c, media_seconds)
            change = (self._to_link("rest", media_seconds, rate_k, rate_c) if bottom
                      else self._move(self.level + 1, media_seconds, rate_k, rate_c, "forecast"))
        return Admission(False, change, messages, exhausted=True if messages else None)

    def _can_snapshot(self) -> bool:
        return self.snapshots_possible and not self.on_snapshots

    @staticmethod
    def _rate(amount: float, media: float) -> float:
        return amount * 3600 / media if media > 0 else 0.0

    def _limits(self) -> str:
        return " and ".join(x for x in (f"${self.max_cost:g}/h" if self.max_cost > 0 else "",
                                        f"{self.max_tokens} tokens/h" if self.max_tokens > 0 else "") if x)

    def _settle(self, usage: Usage, price: Callable[[Usage], float]) -> None:
        """Turns billed since the last check: the forecast learns (its answer length, its
        bias against the real cost); their forecasts stop counting as in flight."""
        turn = _minus(usage, self._billed)
        if turn.total > 0:
            self._billed = usage
            self.forecast.answered(turn)
            if self._pending:
                _, forecast_c = self._pending.popleft()
                self.forecast.calibrate(price(turn), forecast_c)

    def _in_flight(self) -> tuple[float, float]:
        """(tokens, $) of the turns asked and not billed yet, at the calibrated forecast."""
        bias = self.forecast.bias
        return sum(k for k, _ in self._pending) * bias, sum(c for _, c in self._pending) * bias

    def _fits(self, media: float, tokens: int, cost: float, turn_tokens: float, turn_cost: float,
              reserve_tokens: float, reserve_cost: float) -> bool:
        """(a) the session so far + the turns in flight + this turn + the closing reserve
        within the budget for ``media`` seconds: spend follows the budget line, credit a
        held prompt left unspent is used by a later one; (b) no burst: what the last
        ``window`` seconds spent (with the turns in flight) is within the budget for the
        window, so after a quiet spell the banked credit is not spent all at once. This
        turn itself is not in (b): at a steady rate of exactly the budget the window
        always holds about a budget's worth, and counting the turn would hold the rate
        one turn per window under it (at a $5/h budget and $0.036 turns, 40 % under)."""
        while len(self._spend) > 1 and self._spend[1][0] <= media - self.window:
            self._spend.popleft()
        # The newest check at least ``window`` s back (the session's start while younger).
        base_t, base_k, base_c = self._spend[0]
        self._spend.append((media, tokens, cost))
        window = media - base_t
        pending_k, pending_c = self._in_flight()
        checks = []
        if self.max_cost > 0:
            checks.append((cost + pending_c + turn_cost + reserve_cost, self.max_cost * media / 3600))
            checks.append((cost - base_c + pending_c, self.burst * self.max_cost * window / 3600))
        if self.max_tokens > 0:
            checks.append((tokens + pending_k + turn_tokens + reserve_tokens, self.max_tokens * media / 3600))
            checks.append((tokens - base_k + pending_k, self.burst * self.max_tokens * window / 3600))
        return all(spend <= limit for spend, limit in checks)
