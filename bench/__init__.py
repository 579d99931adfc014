"""vision-stream benchmarks: ``python -m bench`` from a checkout (not part of the installed package).

Every figure is a ratio against a baseline measured in the same run (the
machines are noisy), the median of several runs. See ``bench/RESULTS.md``.
"""
