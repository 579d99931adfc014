"""Run the Gemini Live emulator in its own process (``python -m bench.emulator_proc``).

A separate process, so the emulator's own work (it decodes the JPEGs it
receives) does not compete with the client side being measured for the same
event loop and GIL. Prints ``port=N`` once listening; runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import sys

from vision_stream.testing import LiveEmulator


async def _main() -> None:
    async with LiveEmulator() as emu:
        print(f"port={emu.port}", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # the parent closes stdin to stop us


if __name__ == "__main__":
    asyncio.run(_main())
