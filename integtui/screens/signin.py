"""Signing in with OAuth from the connect modal: the ways offered per service and what to tell the person.

Pure (dicts in, strings out), so the words can be checked without a terminal. The flows themselves run in the
daemon (``oauth.begin`` / ``oauth.complete`` / ``oauth.cancel``); see ``integtui.screens.connect``.
"""

from __future__ import annotations

from typing import Any

# the choices of how to sign in: value -> what the picker says
WAYS: dict[str, str] = {
    "api_key": "API key or token",
    "paste": "OAuth: open a URL anywhere, paste back where it lands",
    "device": "OAuth: enter a code on the provider's site",
    "loopback": "OAuth: a browser on the daemon's machine",
}
FLOW_ENDED = ("failed", "expired", "cancelled")
FLOW_FINISHED = -32023  # oauth.cancel on a flow that already ended: nothing left to cancel


def ways_for(service: dict[str, Any]) -> list[str]:
    """The ways to sign in to this service, the API key first (paste first among OAuth's: it works over SSH).

    Example:
        >>> ways_for({"auth_modes": ["oauth2"]})
        ['paste', 'device', 'loopback']
        >>> ways_for({"auth_modes": ["api_key"]})
        ['api_key']
    """
    modes = service.get("auth_modes", [])
    return (["api_key"] if "api_key" in modes else []) + (["paste", "device", "loopback"] if "oauth2" in modes else [])


def flow_prompt(flow: dict[str, Any]) -> str:
    """What the person must do next for a flow that ``oauth.begin`` started (the URL on a line of its own).

    Example:
        >>> print(flow_prompt({"flow": "device", "user_code": "WDJB-MJHT", "verification_uri": "https://x.test/dev"}))
        Enter the code WDJB-MJHT at https://x.test/dev
        This closes by itself once you approve.
    """
    if flow.get("flow") == "device":
        where = flow.get("verification_uri_complete") or flow.get("verification_uri")
        return f"Enter the code {flow.get('user_code')} at {where}\nThis closes by itself once you approve."
    if flow.get("flow") == "paste":
        return (f"Open this URL in any browser and approve (ctrl+y copies it):\n{flow.get('authorization_url')}\n"
                "Then paste the whole URL the browser lands on (it may fail to load: that is expected).")
    return (f"Open this URL in a browser on the daemon's machine and approve (ctrl+y copies it):\n"
            f"{flow.get('authorization_url')}\nThis closes by itself once the provider redirects back.")
