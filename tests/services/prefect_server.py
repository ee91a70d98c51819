"""Fixture module: prefect_server (loopback service started by the test setup)."""
