"""``python -m vision_stream.cli``: the same as the ``vision-stream`` console script."""

import sys

from . import main

sys.exit(main())
