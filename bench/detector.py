"""``python -m bench.detector``: which bundled detector names what, on real clips, and at what cost.

Candidates are detectors whose model ships inside a wheel we already depend on
(OpenCV's HOG people detector and Haar cascades in ``cv2.data``) plus the
motion-blob vehicle heuristic, and the shipped combination
(:class:`vision_stream.analysis.objects.ObjectDetector`). Each runs on frames
sampled from the clips in ``../shared/media`` at the times hand-labelled in
``bench/detector_labels.json``; a candidate's answer per frame is the set of
labels it found. Printed: frame-level precision/recall per label and CPU ms
per frame (one OpenCV thread, ``time.thread_time`` around the call).

Skips (exit 0) when ``../shared/media`` is absent: a user's checkout has no clips.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from bench.common import REPO
from vision_stream.analysis.objects import DETECT_SIDE, ObjectDetector, _fit
from vision_stream.analysis.video import VideoAnalyzer
from vision_stream.events import Region

MEDIA = REPO.parent / "shared" / "media"
LABELS = Path(__file__).with_name("detector_labels.json")
ANALYSIS_SIDE = 768  # px: frames are resized to this longest side first, as the sampler sends them


@dataclass
class Sample:
    clip: str
    media_time: float
    bgr: np.ndarray
    truth: set[str]
    moving: tuple[Region, ...] = ()


@dataclass
class Score:
    found: dict[str, list[tuple[bool, bool]]] = field(default_factory=dict)  # label -> (truth, said)
    cpu: list[float] = field(default_factory=list)

    def add(self, truth: set[str], said: set[str], labels: tuple[str, ...], cpu: float) -> None:
        for label in labels:
            self.found.setdefault(label, []).append((label in truth, label in said))
        self.cpu.append(cpu)

    def pr(self, label: str) -> str:
        pairs = self.found.get(label, [])
        tp = sum(1 for t, s in pairs if t and s)
        fp = sum(1 for t, s in pairs if s and not t)
        fn = sum(1 for t, s in pairs if t and not s)
        precision = f"{tp / (tp + fp):.2f}" if tp + fp else "-"
        recall = f"{tp / (tp + fn):.2f}" if tp + fn else "-"
        return f"{precision} / {recall} ({tp}/{tp + fp}/{tp + fn})"


def _resize(bgr: np.ndarray) -> np.ndarray:
    height, width = bgr.shape[:2]
    scale = min(1.0, ANALYSIS_SIDE / max(width, height))
    if scale >= 1.0:
        return bgr
    return cv2.resize(bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def load_samples() -> list[Sample]:
    """Decode each labelled clip, keep one frame per label step (the first at or after each step)."""
    spec = json.loads(LABELS.read_text())["clips"]
    samples: list[Sample] = []
    for clip, entry in spec.items():
        step = float(entry["step"])
        truths = [set(v) for _, v in sorted(entry["frames"].items(), key=lambda kv: float(kv[0]))]
        analyzer = VideoAnalyzer()
        due = 0.0
        with av.open(str(MEDIA / clip)) as container:
            for frame in container.decode(video=0):
                when = float(frame.pts * frame.time_base) if frame.pts is not None else due
                if when + 1e-6 < due or len([s for s in samples if s.clip == clip]) >= len(truths):
                    continue
                due += step
                bgr = _resize(frame.to_ndarray(format="bgr24"))
                report = analyzer.process(bgr, when)
                index = len([s for s in samples if s.clip == clip])
                samples.append(Sample(clip, when, bgr, truths[index], report.motion.regions))
    return samples


def _haar(name: str, label: str) -> Callable[[Sample], set[str]] | None:
    data = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = os.path.join(data, name) if data else ""
    if not path or not os.path.exists(path):
        return None
    cascade = cv2.CascadeClassifier(path)

    def run(sample: Sample) -> set[str]:
        gray = cv2.equalizeHist(cv2.cvtColor(_fit(sample.bgr)[0], cv2.COLOR_BGR2GRAY))
        boxes = cascade.detectMultiScale(gray, scaleFactor=1.2, minNeighbors=4, minSize=(18, 18))
        return {label} if len(boxes) else set()

    return run


def _hog(side: int, scale: float) -> Callable[[Sample], set[str]] | None:
    if not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
        return None
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def run(sample: Sample) -> set[str]:
        height, width = sample.bgr.shape[:2]
        factor = min(1.0, side / max(width, height))
        gray = cv2.cvtColor(cv2.resize(sample.bgr, (round(width * factor), round(height * factor))),
                            cv2.COLOR_BGR2GRAY)
        _rects, weights = hog.detectMultiScale(gray, winStride=(8, 8), padding=(8, 8), scale=scale)
        return {"person"} if any(float(w) >= 0.5 for w in np.ravel(weights)) else set()

    return run


def candidates() -> dict[str, tuple[Callable[[Sample], set[str]] | None, tuple[str, ...]]]:
    """name -> (run or None when this OpenCV lacks it, labels it can say)."""
    shipped = ObjectDetector()
    return {
        "HOG people @768 scale 1.05": (_hog(768, 1.05), ("person",)),
        f"HOG people @{DETECT_SIDE} scale 1.1": (_hog(DETECT_SIDE, 1.1), ("person",)),
        f"Haar frontalface @{DETECT_SIDE}": (_haar("haarcascade_frontalface_default.xml", "face"), ("face",)),
        f"Haar fullbody @{DETECT_SIDE}": (_haar("haarcascade_fullbody.xml", "person"), ("person",)),
        f"Haar upperbody @{DETECT_SIDE}": (_haar("haarcascade_upperbody.xml", "person"), ("person",)),
        "motion-blob vehicle": (lambda s: {f.label for f in ObjectDetector._vehicles(s.moving)}, ("vehicle",)),
        "shipped ObjectDetector": (lambda s: {f.label for f in shipped.detect(s.bgr, s.moving)},
                                   ("person", "face", "vehicle")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detector", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    if not MEDIA.is_dir():
        print(f"skipped: {MEDIA} is absent (the clips are not part of the project)")
        return 0
    cv2.setNumThreads(1)  # one core per session, as analysis_pool runs it
    samples = load_samples()
    print(f"OpenCV {cv2.__version__}; {len(samples)} labelled frames from {len({s.clip for s in samples})} clips; "
          f"frames at <= {ANALYSIS_SIDE} px")
    print("| candidate | person P / R (tp/said/true) | face P / R | vehicle P / R | CPU ms/frame (mean, max) |")
    print("|---|---|---|---|---|")
    for name, (run, labels) in candidates().items():
        if run is None:
            print(f"| {name} | not in this OpenCV build | | | |")
            continue
        score = Score()
        for sample in samples:
            start = time.thread_time()
            said = run(sample)
            score.add(sample.truth, said, labels, (time.thread_time() - start) * 1000)
        cells = [score.pr(label) if label in labels else "" for label in ("person", "face", "vehicle")]
        print(f"| {name} | {' | '.join(cells)} | {np.mean(score.cpu):.1f}, {max(score.cpu):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
