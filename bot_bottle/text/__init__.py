"""Text for people: agent text made safe for a terminal or a page, and secrets masked.

Used on both sides: the host shows agent text to the operator only through
``terminal`` (one sanitizer) or ``html`` (one escaper built on it); the
sidecar masks every secret it found before filing anything (``redaction``).
"""
