"""vision-stream benchmarks: ``python -m bench`` (or ``vision-stream bench``).

Every figure is a ratio against a baseline measured in the same run (the
machines are noisy), the median of several runs. See ``bench/RESULTS.md``.
"""
