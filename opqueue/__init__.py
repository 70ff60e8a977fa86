"""The opqueue client: what `pip install opqueue` gives, without the service.

`opqueue.client` (the Python client), `opqueue.cli` (the `opqueue` command),
`opqueue.errors` (one exception per `google.rpc.Code`), `opqueue.codes` (the code table the
server shares) and `opqueue.v1` (the published protobuf messages, for clients that parse
opqueue's JSON strictly). The service itself (`app`, `workers`, `core`) needs
`pip install 'opqueue[server]'`.
"""
