"""A running session's evidence from the command line: ``frames --session`` (GetFrames) and
``clip`` (ExportClip), thin layers over :func:`vision_stream.client.get_frames` and
:func:`~vision_stream.client.export_clip`.

``frames --session ID --out DIR`` writes the JPEGs the session's backend received,
named ``{frame_id:05d}_{media_time:09.3f}s_frame.jpg`` (the id its events' frame ids
name, then the media time they print), in a new or empty folder like the offline
``frames SOURCE`` (whose ``--overwrite`` rules it shares). GetFrames answers within the
server's message size and counts what it left out; this command asks again for the
rest, so a span of any length arrives whole.

``clip ID --out clip.mp4`` writes the MP4 chunk by chunk to ``clip.mp4.partial`` and
renames it when complete, so a failed export never leaves a truncated clip under the
name asked for. A span the session no longer holds is the server's OUT_OF_RANGE naming
what it holds (one line, exit code 1).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
from pathlib import Path
from typing import Any

from ..backends.factory import BackendOptions
from ..errors import UsageError
from ..v1 import vision_stream_pb2 as pb
from .args import connection_from

__all__ = ["cmd_clip", "cmd_session_frames", "frame_file_name", "parse_ids"]

_MAX_IDS = 4096  # --ids on one command line
_SAMPLING_FLAGS = ("fps", "max_fps", "scene_threshold", "max_side", "quality")


def parse_ids(text: str) -> list[int]:
    """``--ids 3,4,9`` -> [3, 4, 9]; a clear usage error for anything else."""
    ids: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part.isdigit() or int(part) < 1:
            raise UsageError(f"--ids {text[:40]!r}: frame ids are whole numbers from 1, comma-separated "
                             "(as events' frame_ids print them)")
        ids.append(int(part))
    if len(ids) > _MAX_IDS:
        raise UsageError(f"--ids names {len(ids)} frames: at most {_MAX_IDS} at once (or use --from/--to)")
    return list(dict.fromkeys(ids))


def frame_file_name(frame: pb.SampledFrame) -> str:
    """The file one session frame is written to: id, media time, ``frame``
    (a name ``frames --overwrite`` recognises, media/frames_export.EXPORT_NAME)."""
    return f"{frame.frame_id:05d}_{frame.media_time:09.3f}s_frame.jpg"


def _span(args: argparse.Namespace) -> tuple[float, float]:
    """``--from``/``--to`` as GetFrames/ExportClip media seconds; checked here for a one-line error."""
    start = 0.0 if args.from_time is None else args.from_time
    end = math.inf if args.to_time is None else args.to_time
    if not (math.isfinite(start) and start >= 0) or math.isnan(end):
        raise UsageError("--from is media seconds, 0 or more")
    if end < start:
        raise UsageError(f"--to {end:g} is before --from {start:g}")
    return start, end


def check_session_frames_args(args: argparse.Namespace) -> None:
    """``frames``: SOURCE (offline) or --session (a server's), and the flags each takes."""
    if args.session is None:
        if args.source is None:
            raise UsageError("frames needs a SOURCE (sampled here) or --session ID (a server's session)")
        given = [f for f, v in (("--ids", args.ids), ("--from", args.from_time), ("--to", args.to_time)) if v]
        if given:
            raise UsageError(f"{', '.join(given)} select a server session's frames: add --session ID")
        return
    if args.source is not None:
        raise UsageError(f"give SOURCE ({args.source[:60]}) or --session {args.session}, not both")
    sampling = [f"--{name.replace('_', '-')}" for name in _SAMPLING_FLAGS if getattr(args, name, None) is not None]
    if sampling:
        raise UsageError(f"{', '.join(sampling)}: a session's frames were sampled by its server; "
                         "sampling flags apply to SOURCE")
    if args.ids and (args.from_time is not None or args.to_time is not None):
        raise UsageError("--ids or --from/--to, not both")


async def cmd_session_frames(args: argparse.Namespace, options: BackendOptions) -> int:
    """Write a session's sampled JPEGs (GetFrames), asking again while the server left some out."""
    from ..client import get_frames
    from ..media.frames_export import prepare_out_dir

    ids = parse_ids(args.ids) if args.ids else []
    start, end = (0.0, 0.0) if ids else _span(args)
    connection = connection_from(args, os.environ)
    await asyncio.to_thread(prepare_out_dir, args.out, overwrite=args.overwrite)
    written: dict[int, pb.SampledFrame] = {}
    wanted = ids
    while True:
        answer = await get_frames(args.server, args.session, frame_ids=wanted, from_media_time=start,
                                  to_media_time=end, **connection)
        new = [f for f in answer.frames if f.frame_id not in written]
        await asyncio.to_thread(_write_frames, args.out, new)
        written.update((f.frame_id, f) for f in new)
        if not answer.omitted or not new:  # all there, or no progress (bounded either way)
            break
        if ids:
            wanted = [i for i in ids if i not in written]
        else:
            start = max(f.media_time for f in new)  # the next page: from the newest written on
    print(_frames_summary(args, written), flush=True)
    return 0


def _write_frames(out: Path, frames: list[pb.SampledFrame]) -> None:
    for frame in frames:
        (out / frame_file_name(frame)).write_bytes(frame.jpeg)


def _frames_summary(args: argparse.Namespace, written: dict[int, pb.SampledFrame]) -> str:
    frames = sorted(written.values(), key=lambda f: f.frame_id)
    if not frames:
        return f"wrote 0 JPEG frames of session {args.session} to {args.out}"
    return (f"wrote {len(frames)} JPEG frames of session {args.session} (ids {frames[0].frame_id}-"
            f"{frames[-1].frame_id}, media {frames[0].media_time:.3f}-{frames[-1].media_time:.3f} s) to {args.out}")


async def cmd_clip(args: argparse.Namespace, options: BackendOptions) -> int:
    """Export media ``[--from, --to]`` of a session as MP4 (ExportClip), streamed to ``--out``."""
    from ..client import export_clip

    start, end = _span(args)
    out: Path = args.out
    _check_clip_out(out, overwrite=args.overwrite)
    partial = out.with_name(out.name + ".partial")
    first: pb.ClipChunk | None = None
    size = 0
    try:
        with partial.open("wb") as f:
            async for chunk in export_clip(args.server, args.session, from_media_time=start,
                                           to_media_time=0.0 if math.isinf(end) else end,
                                           **connection_from(args, os.environ)):
                first = first or chunk
                await asyncio.to_thread(f.write, chunk.data)
                size += len(chunk.data)
        if first is None:
            raise UsageError(f"the server sent no clip for session {args.session}")
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    print(_clip_summary(args.session, out, first, size), flush=True)
    return 0


def _check_clip_out(out: Path, *, overwrite: bool) -> None:
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder: give a file name, e.g. {out / 'clip.mp4'}")
    if out.exists() and not overwrite:
        raise UsageError(f"--out {out} exists: choose another name, or add --overwrite")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: the folder {out.parent} does not exist")


def _clip_summary(session: str, out: Path, first: pb.ClipChunk, size: int) -> str:
    how = "made from the sampled JPEGs" if first.from_sampled_frames else "remuxed from the source's packets"
    return (f"wrote {out}: media {first.from_media_time:.3f}-{first.to_media_time:.3f} s of session {session}, "
            f"{_kib(size)}, {first.mime_type} {how}")


def _kib(size: int) -> str:
    return f"{size / 1024:.0f} KiB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MiB"


def add_evidence_arguments(frames: argparse.ArgumentParser, clip: argparse.ArgumentParser, server_help: str,
                           default_server: str) -> None:
    """The flags of ``frames --session`` and ``clip`` (the parser module registers the commands)."""
    g: Any = frames.add_argument_group("a server session's frames (GetFrames)")
    g.add_argument("--session", default=None, metavar="ID",
                   help="write the JPEGs this session's backend received instead of sampling SOURCE")
    g.add_argument("--ids", default=None, metavar="N,N,...", help="these frame ids (from events' frame ids)")
    _add_span(g)
    g.add_argument("--server", default=default_server, help=server_help)
    clip.add_argument("session", metavar="ID", help="the session id (a configured camera's is its name)")
    _add_span(clip)
    clip.add_argument("--out", type=Path, required=True, metavar="FILE.mp4", help="where the MP4 goes")
    clip.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    clip.add_argument("--server", default=default_server, help=server_help)


def _add_span(g: Any) -> None:
    g.add_argument("--from", dest="from_time", type=float, default=None, metavar="SECONDS",
                   help="media time the span starts at (default: the oldest held)")
    g.add_argument("--to", dest="to_time", type=float, default=None, metavar="SECONDS",
                   help="media time the span ends at (default: the newest held)")
