"""What we ask a model, and which prompt wins when not every prompt can wait.

Shared by the Gemini paths (Live, REST) and the failover chain:

- :data:`PROMPTS`: the wording of the pipeline's own prompt reasons (the
  pipeline calls ``prompt(text="", reason=...)``; the backend phrases it);
- :data:`DEFAULT_PERSONA` and :func:`system_instruction` for each medium the
  model sees (a live stream with audio, still frames of a stream, one picture);
- :data:`PROMPT_RANK` and :func:`replaces`: the one coalescing rule. A
  backend holds at most one waiting prompt (REST between requests, the
  failover chain while it switches links); a newer prompt takes the slot
  unless it ranks lower than the one waiting.

The rank, highest first (one order for every holder)::

    final   3   the stream ended: the summary must not be lost to a cadence tick
    client  2   a person asked; beats anything the pipeline asks by itself
    scene   1   the scene changed (the pipeline's own, but event-driven)
    retry   1   a turn cut off by a lost connection, asked again
    cadence 0   the periodic "what is happening now" ("auto" in Live's outbox)
    (other) 0   an unknown reason counts as cadence

Equal ranks: the newer prompt wins (it is about a fresher moment). A holder
that keeps one prompt *per kind* (Live's outbox) sends them in
:data:`SEND_ORDER`: the cut-off turn first, ``final`` last so it sums up
everything before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

from ..conditions.model import Condition
from ..config import SessionSettings

__all__ = [
    "DEFAULT_PERSONA",
    "PROMPTS",
    "PROMPT_RANK",
    "SEND_ORDER",
    "SNAPSHOT_PROMPT",
    "Medium",
    "condition_lines",
    "conditions_changed",
    "conditions_instruction",
    "parse_condition_lines",
    "prompt_text",
    "rank",
    "replaces",
    "system_instruction",
    "verify_prompt",
]

DEFAULT_PERSONA = "a concise, observant video commentator"
DEFAULT_LANGUAGE = "en-US"

PROMPTS: Mapping[str, str] = {
    "cadence": "Briefly describe what is happening in the video right now and what changed since your last comment.",
    "scene": "The scene just changed. Describe the new scene in one or two sentences.",
    "final": "The stream has ended. Sum up in one or two sentences what the video showed.",
}
SNAPSHOT_PROMPT = "Describe this picture in two or three sentences."

PROMPT_RANK: Mapping[str, int] = {"cadence": 0, "auto": 0, "scene": 1, "retry": 1, "client": 2, "final": 3}
SEND_ORDER = ("retry", "client", "auto", "final")

Medium = Literal["live", "stream", "snapshot"]


def rank(reason: str) -> int:
    """How much a prompt of ``reason`` matters when only one may wait (unknown: as cadence)."""
    return PROMPT_RANK.get(reason, 0)


def replaces(offered: str, waiting: str | None) -> bool:
    """True when a newly offered prompt (its reason) should take the one waiting slot
    from the prompt waiting there (None: the slot is free)."""
    return waiting is None or rank(offered) >= rank(waiting)


def prompt_text(text: str, reason: str) -> str:
    """The text to send: the client's own, or the wording for the pipeline's reason."""
    return text.strip() or PROMPTS.get(reason, PROMPTS["cadence"])


def system_instruction(session: SessionSettings | None, medium: Medium = "stream") -> str:
    """The system instruction for ``session`` (persona, source, language; None: defaults).

    medium: what the model is shown. ``live``: a live stream of frames and audio
    over the Live API, with ``report_event`` declared; ``stream``: still frames of
    a stream with their times (REST snapshots of a stream); ``snapshot``: one picture.
    """
    persona = (session.persona.strip() if session else "") or DEFAULT_PERSONA
    source = f" The stream is: {session.source_description}." if session and session.source_description else ""
    language = session.language if session else DEFAULT_LANGUAGE
    if medium == "live":
        body = (
            f"You watch a live video stream, sent as still frames about once a second, and hear its audio.{source} "
            "When asked, say in one or two short sentences what is happening now; mention only what you can see "
            "or hear. When something notable happens, call report_event."
        )
    else:
        shown = "a picture" if medium == "snapshot" else "still frames of a video stream, with their times"
        body = (
            f"You are shown {shown}.{source} "
            "Say in one or two short sentences what is happening; mention only what you can see."
        )
    watch = conditions_instruction(session.conditions, medium) if session and session.conditions else ""
    return f"You are {persona}. {body}{watch} Always answer in the language {language}."


# -- watch conditions (issue 12) --------------------------------------------------------------
# Each condition is one line "- [id] text" in what the model reads, so the model can name it by
# id in report_condition / the JSON answer; the emulators read the same lines back
# (parse_condition_lines) -- what a real model understands from the words, they judge by signals.
_CONDITION_LINE = re.compile(r"^- \[([A-Za-z0-9._-]{1,64})\] (.+)$", re.MULTILINE)


def condition_lines(conditions: Iterable[Condition]) -> str:
    return "\n".join(f"- [{c.id}] {c.text}" for c in conditions)


def parse_condition_lines(text: str) -> dict[str, str]:
    """id -> text of every "- [id] text" line in ``text`` (later lines win)."""
    return {m.group(1): m.group(2).strip() for m in _CONDITION_LINE.finditer(text)}


def conditions_instruction(conditions: Iterable[Condition], medium: Medium = "live") -> str:
    """The system-instruction paragraph naming the watch conditions.

    live: the model calls ``report_condition`` when one becomes true or false again;
    stream/snapshot: the model fills the ``conditions`` object of its JSON answer
    (``responseSchema``, conditions/rest.py) for every condition, every time.
    """
    lines = condition_lines(conditions)
    if medium == "live":
        how = ("Whenever one of them becomes true, or stops being true, call report_condition with its id, "
               "met, your confidence from 0 to 1, and in evidence what you see that shows it. Do not say "
               "these reports aloud.")
    else:
        how = ("Answer in JSON: your comment in \"commentary\", and in \"conditions\" for each condition by "
               "its id whether it is met in these frames, your confidence from 0 to 1, and in evidence what "
               "you see that shows it.")
    return f" Watch these conditions, one per line as [id] text:\n{lines}\n{how}"


def conditions_changed(conditions: Iterable[Condition]) -> str:
    """The Live ``realtimeInput.text`` telling the model its conditions changed at run time."""
    lines = condition_lines(conditions)
    if not lines:
        return "Stop watching the conditions you were given: there are none now. Do not call report_condition."
    return ("The watch conditions changed. From now on watch only these, one per line as [id] text:\n"
            f"{lines}\nCall report_condition when one becomes true or stops being true; reply only \"OK\".")


def verify_prompt(condition: Condition, times: Iterable[float | None]) -> str:
    """The second-opinion question about one condition (conditions/verify.py)."""
    shown = ", ".join(f"{t:.1f} s" for t in times if t is not None)
    when = f" The pictures are frames of the stream at {shown}." if shown else ""
    return ("Another observer reported that this condition is met. Look carefully at every picture and judge "
            f"it yourself; answer in JSON.{when}\n{condition_lines([condition])}")
