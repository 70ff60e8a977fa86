"""The gRPC server: `google.longrunning.Operations` and `opqueue.v1.Jobs` over gRPC.

Every call is served by the REST route its HTTP rule names (see `routes`), run in process
through the same Flask app as the `web` process, so both transports share one set of views,
checks, limits, errors, page tokens and change notifications.
"""
