"""Tests of git-gate, with real git and gitleaks."""
