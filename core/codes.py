"""The `google.rpc.Code` table, as the server's modules import it.

Defined once in `opqueue.codes`, in the client package the server is built on.
"""

from opqueue.codes import HTTP_STATUS, Code

__all__ = ["HTTP_STATUS", "Code"]
