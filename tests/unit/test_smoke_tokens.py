"""When a request carries an ID token (deployer.smoke.TokenRule): the smoke check's rule, which
``load_rps`` follows too."""

from __future__ import annotations

import pytest

from deployer.errors import AuthError
from deployer.settings import SmokeAuth
from deployer.smoke import TokenRule


def test_auto_sends_no_token_until_a_401_or_403_then_always() -> None:
    minted: list[str] = []

    def mint() -> str:
        minted.append("t")
        return "t"

    rule = TokenRule(SmokeAuth.AUTO, mint)
    assert rule.headers() == {}
    assert rule.answered(200) is False and rule.answered(500) is False and rule.headers() == {}
    assert rule.answered(403) is True  # the switch, once
    assert rule.headers() == {"Authorization": "Bearer t"}
    assert rule.answered(401) is False and rule.answered(200) is False
    assert rule.headers() == {"Authorization": "Bearer t"} and minted == ["t", "t"]


def test_a_public_service_never_costs_a_token() -> None:
    def never() -> str:
        raise AssertionError("minted for a public service")

    rule = TokenRule(SmokeAuth.AUTO, never)
    for status in (200, 404, 500, 503):
        rule.answered(status)
        assert rule.headers() == {}


def test_auto_without_a_token_source_never_switches() -> None:
    rule = TokenRule(SmokeAuth.AUTO, None)
    assert rule.answered(403) is False and rule.headers() == {}


def test_id_token_always_sends_and_none_never() -> None:
    assert TokenRule(SmokeAuth.ID_TOKEN, lambda: "t").headers() == {"Authorization": "Bearer t"}
    rule = TokenRule(SmokeAuth.NONE, lambda: "t")
    assert rule.answered(403) is False and rule.headers() == {}


def test_id_token_without_a_source_is_an_auth_error() -> None:
    with pytest.raises(AuthError, match="no ID token source"):
        TokenRule(SmokeAuth.ID_TOKEN, None).headers()


def test_a_failed_mint_is_an_auth_error_that_says_why() -> None:
    def fails() -> str:
        raise AuthError("cannot mint an ID token for https://web-abc.a.run.app")

    rule = TokenRule(SmokeAuth.AUTO, fails)
    rule.answered(403)
    with pytest.raises(
        AuthError, match=r"^could not get an ID token: cannot mint an ID token for https://web"
    ):
        rule.headers()
