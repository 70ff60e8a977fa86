"""marshmallow fields for job input schemas."""

from __future__ import annotations

from typing import Any

from marshmallow import fields
from marshmallow.types import ErrorMessages


class WholeNumber(fields.Integer):
    """An integer that accepts `5.0` but refuses `5.5`.

    Protobuf clients send every number in a `Struct` as a double, so `5.0` must mean 5;
    marshmallow's `Integer` would silently truncate `5.5` to 5.
    """

    # Declared as marshmallow declares it on Field (so not a ClassVar).
    default_error_messages: ErrorMessages = {"fraction": "Not a whole number."}  # noqa: RUF012

    def _validated(self, value: Any) -> int:
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("fraction")
        validated: int = super()._validated(value)
        return validated
