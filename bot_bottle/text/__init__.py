"""Text for people: agent text made safe for a terminal or a page, secrets masked, and diffs.

Used on both sides: the host shows agent text to the operator only through
``terminal`` (one sanitizer) or ``html`` (one escaper built on it); the
sidecar masks every secret it found before filing anything (``redaction``); a
decision's audit entry and the screens compare two texts with ``diffs``.
"""
