"""The authorization decision, the same for every transport (HTTP views, gRPC calls).

`Authorizer.authorize` takes what the caller presented (key, project, the role the call
needs, its address and the host it asked for) and returns the key it acts as, or raises
an `OperationError`. The checks run before anything is looked up, so a refusal never
depends on whether an operation exists and changes nothing: the key (UNAUTHENTICATED), the
project (PERMISSION_DENIED), the role (PERMISSION_DENIED), the key's rate
(RESOURCE_EXHAUSTED). Refused calls count against a budget per client address, so guessing
keys is slow.

With no keys configured nobody is served, unless OPQUEUE_INSECURE_ALLOW_ANONYMOUS is on
(development): then every caller acts as an anonymous submitter on every project (its
client address standing for the key in per-key caps), and only requests addressed to a
loopback host are taken (a web page a developer visits cannot reach the API through DNS
rebinding or a cross-site form).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from urllib.parse import urlsplit

from app.api_keys import ApiKey, KeyRing, Role
from app.rate_limiter import RateLimiter
from core.addresses import is_loopback_host
from core.config import Settings, env_name
from core.errors import PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

ANONYMOUS_WARNING = (
    "ANONYMOUS ACCESS IS ON: no API keys are configured and {switch} is set, so any caller "
    "that can reach this port may read, run and cancel anything (development only)")


class Authorizer:
    """Decides who a caller is and whether it may make a call."""

    def __init__(self, keyring: KeyRing, settings: Settings, limiter: RateLimiter) -> None:
        self._keyring = keyring
        self._settings = settings
        self._limiter = limiter

    @property
    def anonymous(self) -> bool:
        """True when callers are served without keys (no keys configured, switch on)."""
        return not self._keyring.configured and self._settings.insecure_allow_anonymous

    def announce(self) -> None:
        """Log, at each API process start, a WARNING if anonymous access is on."""
        switch = env_name("insecure_allow_anonymous")
        if self.anonymous:
            log.warning(ANONYMOUS_WARNING.format(switch=switch))
        elif self._keyring.configured and self._settings.insecure_allow_anonymous:
            log.warning("%s is ignored: API keys are configured", switch)

    def authorize(self, presented: str, project: str | None, required: Role, client: str, *,
                  host: str = "", origin: str | None = None) -> ApiKey:
        """The key the caller acts as; raises UNAUTHENTICATED, PERMISSION_DENIED or
        RESOURCE_EXHAUSTED.

        `client` is the caller's address, `host` the host it addressed (HTTP `Host`, gRPC
        `:authority`), `origin` a browser's `Origin` header if any.
        """
        try:
            if self.anonymous:
                return self._anonymous(client, host, origin)
            key = self._identify(presented)
            if project is not None and not key.grants(project):
                raise PermissionDenied(f"API key {key.id!r} may not act in this project",
                                       reason="PROJECT_NOT_GRANTED")
            if not key.may(required):
                raise PermissionDenied(
                    f"API key {key.id!r} is a {key.role.value} and may not do this",
                    reason="ROLE_NOT_ALLOWED")
        except (Unauthenticated, PermissionDenied):
            self._limiter.admit_address(client, self._settings.refused_per_second)
            raise
        limit = key.rate_per_second
        self._limiter.admit(key.id, self._settings.rate_limit_per_second if limit is None
                            else limit)
        return key

    def _identify(self, presented: str) -> ApiKey:
        if not self._keyring.configured:
            raise Unauthenticated(
                "this server has no API keys configured, so it serves no one: set "
                f"{env_name('api_keys_file')} (see README, Security), or for local "
                f"development only {env_name('insecure_allow_anonymous')}=true",
                reason="NO_API_KEYS_CONFIGURED")
        if not presented:
            raise Unauthenticated("send an API key as 'Authorization: Bearer KEY' or "
                                  "'x-goog-api-key: KEY'", reason="API_KEY_MISSING")
        key = self._keyring.identify(presented)
        if key is None:
            raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
        return key

    def _anonymous(self, client: str, host: str, origin: str | None) -> ApiKey:
        if host and not _loopback_authority(host):
            raise PermissionDenied(
                "anonymous access serves only requests addressed to a loopback host "
                "(localhost, 127.0.0.1, [::1]); configure API keys to serve other names",
                reason="HOST_NOT_LOOPBACK")
        if origin is not None and not is_loopback_host(_hostname(origin)):
            raise PermissionDenied(
                "anonymous access refuses requests from web pages of other sites",
                reason="CROSS_SITE_REQUEST")
        return ApiKey(id=f"anonymous@{client}", digest=b"", role=Role.SUBMITTER,
                      projects=frozenset({"*"}))


@lru_cache(maxsize=1024)  # one Host header a client, asked on every anonymous request
def _loopback_authority(host: str) -> bool:
    """Whether an HTTP `Host` (or gRPC `:authority`) names a loopback host."""
    return is_loopback_host(_hostname(f"//{host}"))


def _hostname(url: str) -> str:
    """`//example.com:8000` → `example.com`, `http://[::1]:8000` → `::1`; "" if malformed."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""

