"""Fixture module: rabbitmq (loopback service started by the test setup)."""
