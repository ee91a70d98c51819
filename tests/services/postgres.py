"""Fixture module: postgres (loopback service started by the test setup)."""
