"""Opaque page tokens: encrypted and authenticated, bound to a project and a filter."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cached_property

from cryptography.fernet import Fernet, InvalidToken

from core.errors import InvalidArgument


class PageTokens:
    """Issues and reads `pageToken`s; clients can neither read nor forge them."""

    def __init__(self, key: Callable[[], bytes]) -> None:
        self._key = key

    @cached_property
    def _fernet(self) -> Fernet:
        # Fetched on first use, so the API starts even while Redis is briefly away.
        return Fernet(self._key())

    def issue(self, project: str, filter_text: str, cursor: int) -> str:
        """A token for the page after `cursor` of `project`'s listing under `filter_text`."""
        payload = {"p": project, "f": _digest(filter_text), "c": cursor}
        return self._fernet.encrypt(json.dumps(payload).encode()).decode()

    def read(self, token: str, project: str, filter_text: str) -> int:
        """The cursor in `token`; INVALID_ARGUMENT if it is bad or was issued for other args."""
        try:
            payload = json.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError):
            raise _bad("pageToken is not a token this service issued") from None
        if payload.get("p") != project or payload.get("f") != _digest(filter_text):
            raise _bad("pageToken was issued for a different project or filter")
        cursor = payload.get("c")
        if not isinstance(cursor, int):
            raise _bad("pageToken is not a token this service issued")
        return cursor


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument.for_fields({"pageToken": message}, message=message)
