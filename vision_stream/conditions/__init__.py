"""Watch conditions (issue 12): what a session watches for, and when it alerts.

* :mod:`.model`   - :class:`Condition` values, validation, the CLI/TOML forms
* :mod:`.policy`  - the pure per-condition state machine (cooldown, resolved, max triggers, until)
* :mod:`.offline` - the small grammar of conditions the offline analyzer can really judge
* :mod:`.health`  - built-in camera-health conditions (no frames, fps, reconnecting, backend down, budget)
* :mod:`.engine`  - what a pipeline session runs: verdicts and health in, ``Alert`` payloads out
"""

from __future__ import annotations

from .model import Condition, HealthSettings, check_conditions, parse_condition_arg

__all__ = ["Condition", "HealthSettings", "check_conditions", "parse_condition_arg"]
