"""bot-bottle's supervise storage and review layer: the host database, its queue and audit log."""

__version__ = "0.1.0"
