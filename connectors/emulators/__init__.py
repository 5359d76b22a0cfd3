"""Faithful local fakes of the providers, for tests, `integd demo` and development.

Example::

    from connectors.emulators import EMULATORS
    emu = EMULATORS["github"](tokens=["ghp_demo123"], seed=1)
    base_url = await emu.start()            # http://127.0.0.1:PORT
    emu.faults.error_rate = 0.1
    await emu.stop()
"""

from .base import Emulator, EmulatorInputError, FaultKnobs, ManualClock, RateLimitSpec
from .github import GitHubEmulator
from .sendgrid import SendGridEmulator
from .slack import SlackEmulator

EMULATORS: dict[str, type[Emulator]] = {
    "github": GitHubEmulator,
    "slack": SlackEmulator,
    "sendgrid": SendGridEmulator,
}

__all__ = [
    "EMULATORS", "Emulator", "EmulatorInputError", "FaultKnobs", "GitHubEmulator", "ManualClock",
    "RateLimitSpec", "SendGridEmulator", "SlackEmulator",
]
