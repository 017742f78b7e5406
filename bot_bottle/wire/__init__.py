"""The wire: HTTP and JSON-RPC as spoken across a trust boundary, and the relay's signed protocol.

Used by every server here (the sidecar's MCP server, the relay, the
dashboard) and by the relay's client: bytes that arrive here are an
untrusted party's until a bound (``http_bounds``), a guarded server
(``guarded_server``) or a signature (``signing``) says otherwise.
"""
