"""Faithful local fakes of the providers, for tests, `integd demo` and development.

Example::

    from connectors.emulators import EMULATORS
    emu = EMULATORS["github"](tokens=["ghp_demo123"], seed=1)
    base_url = await emu.start()            # http://127.0.0.1:PORT
    emu.faults.error_rate = 0.1
    await emu.stop()
"""

from .base import Emulator, EmulatorInputError, FaultKnobs, ManualClock, RateLimitSpec
from .discord import DiscordEmulator
from .dropbox import DropboxEmulator
from .github import GitHubEmulator
from .gitlab import GitLabEmulator
from .google import GmailEmulator, GoogleDriveEmulator, GoogleEmulator
from .hubspot import HubSpotEmulator
from .jira import JiraEmulator
from .microsoft import GraphEmulator, OneDriveEmulator, OutlookEmulator, TeamsEmulator
from .pipedrive import PipedriveEmulator
from .salesforce import SalesforceEmulator
from .sendgrid import SendGridEmulator
from .slack import SlackEmulator

EMULATORS: dict[str, type[Emulator]] = {
    "github": GitHubEmulator,
    "jira": JiraEmulator,
    "gitlab": GitLabEmulator,
    "slack": SlackEmulator,
    "sendgrid": SendGridEmulator,
    # one Google server (Gmail + Drive) and one Graph server (user, mail, drive, teams); the key picks the
    # advertised base URL (Google) or the default limits (Graph), see each module's docstring
    "gmail": GmailEmulator,
    "google_drive": GoogleDriveEmulator,
    "outlook": OutlookEmulator,
    "onedrive": OneDriveEmulator,
    "teams": TeamsEmulator,
    "dropbox": DropboxEmulator,
    "discord": DiscordEmulator,
    "salesforce": SalesforceEmulator,
    "hubspot": HubSpotEmulator,
    "pipedrive": PipedriveEmulator,
}

__all__ = [
    "EMULATORS", "DiscordEmulator", "DropboxEmulator", "Emulator", "EmulatorInputError", "FaultKnobs", "GitHubEmulator", "HubSpotEmulator", "JiraEmulator", "GitLabEmulator", "GmailEmulator",
    "GoogleDriveEmulator", "GoogleEmulator", "GraphEmulator", "ManualClock", "OneDriveEmulator",
    "OutlookEmulator", "PipedriveEmulator", "RateLimitSpec", "SalesforceEmulator", "SendGridEmulator", "SlackEmulator", "TeamsEmulator",
]
