"""The stored credential keeps what the token response said about where the API lives."""

from connectors.oauth.protocol import TokenSet
from integd.oauth_tokens import credential_from


def test_instance_url_and_api_domain_survive_into_the_credential_and_its_refreshes():
    first = credential_from(TokenSet("at-0000000000001", "rt-0000000000001", expires_at=100.0,
                                     extra={"instance_url": "https://acme.my.salesforce.com",
                                            "api_domain": "https://acme.pipedrive.com"}), now=1.0)
    assert first.attributes["instance_url"] == "https://acme.my.salesforce.com"
    assert first.attributes["api_domain"] == "https://acme.pipedrive.com"
    again = credential_from(TokenSet("at-0000000000002", None, expires_at=200.0), first, now=2.0)
    assert again.attributes["instance_url"] == "https://acme.my.salesforce.com", "kept when not repeated"
    assert again.secrets["refresh_token"] == "rt-0000000000001"
    moved = credential_from(TokenSet("at-0000000000003", None, extra={"instance_url": "https://eu.example"}),
                            again, now=3.0)
    assert moved.attributes["instance_url"] == "https://eu.example"
    assert "at-0000000000003" not in repr(moved)
