"""Tests of the dashboard, in process and in a real browser."""
