"""What runs in the sidecar, beside the agent, and reads what the agent sends.

Everything here is on the agent's side of the trust boundary: the supervise
server (``server``, ``mcp``), git-gate (``git_gate``), the egress proxy's
helpers (``egress``), and the queue handle they share (``transport``: the
host's database on a mount, or ``relay_queue`` through the host relay). It
holds no key of the host's: a sidecar can file and wait, never decide.
"""
