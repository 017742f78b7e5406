"""Tests of the operator's command line and terminal UI."""
