"""bot-bottle's supervise storage and review layer: the host database, its queue and audit log."""

import sys

__version__ = "0.1.0"

# Before anything else is imported: the rest needs 3.11 (datetime.UTC, typing, tomllib-era syntax), and an
# older interpreter would otherwise end in an ImportError's traceback instead of a line saying what to do.
if sys.version_info < (3, 11):  # noqa: UP036 - the point: said to interpreters older than we support
    sys.stderr.write(f"bot-bottle needs Python 3.11 or newer (this is {sys.version.split()[0]}): run it with "
                     "python3.11 or newer\n")
    raise SystemExit(1)
