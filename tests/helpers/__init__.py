"""Helpers the tests share: temporary homes, real tools (tmux, a browser, git remotes), hostile clients."""
