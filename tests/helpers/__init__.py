"""Helpers shared by the tests, importable as ``helpers.<module>`` (tests/ is on pytest's pythonpath).

One module per job: ``paths`` (where samples and real footage live), ``timing`` (the time
scale and condition waits), ``clips`` (the one clip factory), ``frames`` (the one
SampledFrame factory), ``events`` (the one event collector), ``scenes`` (synthetic frame
sequences), ``server`` (a real gRPC server on loopback), ``cameras`` (RTSP and MJPEG
cameras on loopback), ``live`` / ``rest`` (Gemini emulator settings and schema checks),
``fuzz`` / ``fuzz_strategies`` (the security fuzz suite's seeds and strategies).
Fixtures are not here: they live in the conftest.py files and call these helpers.
"""
