"""Field types for job input schemas: marshmallow's, plus `WholeNumber`.

Part of the job author's API (see `opqueue.jobs`); server side, like it.
"""

from marshmallow.fields import *  # noqa: F403  (every marshmallow field type, by its name)
from marshmallow.fields import __all__ as _marshmallow_fields

from core.fields import WholeNumber

__all__ = [*_marshmallow_fields, "WholeNumber"]  # noqa: PLE0604
