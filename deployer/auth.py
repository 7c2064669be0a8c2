"""Google credentials for the action: an authorized session for the API and ID tokens for smoke checks.

Credentials come from Application Default Credentials, which is what google-github-actions/auth
sets up (a service-account key or a Workload Identity Federation ``external_account`` file). Only a
loopback endpoint (the emulator) may run without credentials: then the credentials are ``None``.

google-auth (with cryptography under it) is imported where credentials are loaded, not at import:
a run against the emulator, a dry input check or a post step with nothing to do never pays for it.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests

from deployer.errors import AuthError as AuthError
from deployer.loopback import is_loopback
from deployer.sessions import plain, reading_env_once

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.auth.transport.requests import Request

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_REFRESH_MARGIN = 60.0  # seconds before expiry at which an ID token is replaced


def _adc_file_exists() -> bool:
    """Whether ADC has a file to load (explicit env var or gcloud's well-known file)."""
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return True
    try:
        from google.auth import _cloud_sdk

        return os.path.exists(_cloud_sdk.get_application_default_credentials_path())
    except Exception:
        return False


def authorized_session(
    api_endpoint: str | None, project_id: str | None
) -> tuple[requests.Session, str | None, Credentials | None]:
    """Session that signs requests with ADC, the project to use, and the credentials.

    The project is the input if given, else the credentials' project. Against a loopback endpoint
    with no credentials we fall back to anonymous requests (credentials ``None``); elsewhere missing
    credentials are an error telling the user to run google-github-actions/auth first.
    """
    loopback = is_loopback(api_endpoint)
    if loopback:
        # google-auth compares this to the lowercase "true"; it spares a slow metadata-server probe.
        os.environ.setdefault("NO_GCE_CHECK", "true")
        if not _adc_file_exists():
            return _anonymous(project_id)
    import google.auth
    import google.auth.transport.requests
    from google.auth import exceptions as ga_exceptions

    try:
        creds, detected = google.auth.default(scopes=[CLOUD_PLATFORM])
    except ga_exceptions.DefaultCredentialsError as exc:
        if loopback:
            return _anonymous(project_id)
        raise AuthError(
            "no Google Cloud credentials found: add a google-github-actions/auth step (Workload Identity "
            "Federation or a service-account key) before this action, or set GOOGLE_APPLICATION_CREDENTIALS"
            f" ({exc})"
        ) from None
    session = reading_env_once(google.auth.transport.requests.AuthorizedSession(creds))
    return session, project_id or detected, creds


def _anonymous(project_id: str | None) -> tuple[requests.Session, str | None, None]:
    project = project_id or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("CLOUDSDK_CORE_PROJECT")
    return plain(), project, None


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (unverified: we only need to know when to refresh our own token)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def _id_token_credentials(creds: Any, audience: str) -> Credentials | None:
    """Credentials that mint ID tokens for ``audience``, or None when only fetch_id_token may work."""
    from google.auth import impersonated_credentials
    from google.oauth2 import service_account

    if isinstance(creds, service_account.Credentials):
        return service_account.IDTokenCredentials(
            signer=creds.signer,
            service_account_email=creds.service_account_email,
            token_uri=creds._token_uri,
            target_audience=audience,
            quota_project_id=creds.quota_project_id,
        )
    if isinstance(creds, impersonated_credentials.Credentials):
        return impersonated_credentials.IDTokenCredentials(
            creds, target_audience=audience, include_email=True
        )
    if getattr(creds, "service_account_email", None) and getattr(
        creds, "_service_account_impersonation_url", None
    ):  # external_account (Workload Identity Federation) with service-account impersonation
        init = getattr(creds, "_initialize_impersonated_credentials", None)
        target = (
            init()
            if callable(init)
            else impersonated_credentials.Credentials(
                source_credentials=creds,
                target_principal=creds.service_account_email,
                target_scopes=[CLOUD_PLATFORM],
            )
        )
        return impersonated_credentials.IDTokenCredentials(
            target, target_audience=audience, include_email=True
        )
    return None


class IdTokenSource:
    """Fresh Google ID tokens for one audience (a Cloud Run URL), refreshed before they expire."""

    def __init__(
        self,
        credentials: Credentials,
        audience: str,
        *,
        mask: Callable[[str], None] | None = None,
        request: Request | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import google.auth.transport.requests

        self.audience = audience
        self._source = credentials
        self._mask = mask
        self._request = request or google.auth.transport.requests.Request()
        self._clock = clock
        self._creds = _id_token_credentials(credentials, audience)
        self._token: str | None = None
        self._expiry: float | None = None
        self._lock = threading.Lock()  # load_rps asks from several threads: one mint at a time

    def token(self) -> str:
        """A valid ID token; the mask hook sees every new token before it is returned."""
        with self._lock:
            if self._token is None or self._expiry is None or self._clock() >= self._expiry - _REFRESH_MARGIN:
                token = self._mint()
                if self._mask is not None:
                    self._mask(token)
                self._token, self._expiry = token, jwt_expiry(token) or self._clock() + 300.0
            return self._token

    def _mint(self) -> str:
        from google.auth import credentials as ga_credentials
        from google.auth import exceptions as ga_exceptions

        try:
            if self._creds is not None:
                self._creds.refresh(self._request)
                token = self._creds.token
            else:
                if isinstance(self._source, ga_credentials.AnonymousCredentials):
                    raise AuthError("no credentials")
                from google.oauth2 import id_token

                token = id_token.fetch_id_token(self._request, self.audience)
        except (ga_exceptions.GoogleAuthError, AuthError) as exc:
            raise AuthError(self._explain(exc)) from None
        if not token:
            raise AuthError(self._explain(None))
        return str(token)

    def _explain(self, exc: BaseException | None) -> str:
        kind = type(self._source).__module__.rsplit(".", 1)[-1] + "." + type(self._source).__name__
        why = f": {type(exc).__name__}: {exc}" if exc else ""
        return (
            f"cannot mint an ID token for {self.audience} with {kind} credentials{why}. "
            "Use a service-account key, or Workload Identity Federation with service-account "
            "impersonation where the caller has roles/iam.serviceAccountTokenCreator on the "
            "service account (or set smoke_auth: none)"
        )[:1000]


def service_audience(url: str) -> str:
    """The ID-token audience for a tag URL: its service URL (``tag---svc-...`` -> ``svc-...``)."""
    parts = urlsplit(url)
    host = parts.netloc.split("---", 1)[-1]
    return urlunsplit((parts.scheme, host, "", "", ""))


class IdTokens:
    """The run's ID tokens: one ``IdTokenSource`` per audience, built when a token is first asked for
    (a public service never needs one) and shared by whatever calls the service (the smoke check,
    ``load_rps``), so each audience's token is minted once and refreshed only before it expires."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        mask: Callable[[str], None] | None = None,
        source: Callable[[str], IdTokenSource] | None = None,
    ) -> None:
        self._make = source or (lambda audience: IdTokenSource(credentials, audience, mask=mask))
        self._sources: dict[str, IdTokenSource] = {}
        self._lock = threading.Lock()

    def for_url(self, url: str) -> Callable[[], str]:
        """What to call for a token for ``url`` (a tag or service URL); AuthError when none can be had."""
        audience = service_audience(url)
        return lambda: self._source(audience).token()

    def _source(self, audience: str) -> IdTokenSource:
        with self._lock:
            if audience not in self._sources:
                self._sources[audience] = self._make(audience)
            return self._sources[audience]
