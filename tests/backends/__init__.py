"""Tests of the launch backends and the sidecar image."""
