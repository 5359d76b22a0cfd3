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
from .google import GmailEmulator, GoogleDriveEmulator, GoogleEmulator
from .microsoft import GraphEmulator, OneDriveEmulator, OutlookEmulator, TeamsEmulator
from .sendgrid import SendGridEmulator
from .slack import SlackEmulator

EMULATORS: dict[str, type[Emulator]] = {
    "github": GitHubEmulator,
    "slack": SlackEmulator,
    "sendgrid": SendGridEmulator,
    # one Google server (Gmail + Drive) and one Graph server (user, mail, drive, teams); the key picks the
    # advertised base URL (Google) or the default limits (Graph), see each module's docstring
    "gmail": GmailEmulator,
    "google_drive": GoogleDriveEmulator,
    "outlook": OutlookEmulator,
    "onedrive": OneDriveEmulator,
    "teams": TeamsEmulator,
}

__all__ = [
    "EMULATORS", "Emulator", "EmulatorInputError", "FaultKnobs", "GitHubEmulator", "GmailEmulator",
    "GoogleDriveEmulator", "GoogleEmulator", "GraphEmulator", "ManualClock", "OneDriveEmulator",
    "OutlookEmulator", "RateLimitSpec", "SendGridEmulator", "SlackEmulator", "TeamsEmulator",
]
