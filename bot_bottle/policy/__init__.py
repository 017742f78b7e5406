"""What an approval grants, in canonical form: egress routes and the hosts they name.

Shared by both sides of the trust boundary: the sidecar builds an agent's
request into this form before filing it, and the host checks an operator's
edit against it and says what it would widen. Pure functions over text; no
I/O.
"""
