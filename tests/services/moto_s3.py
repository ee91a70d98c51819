"""Fixture module: moto_s3 (loopback service started by the test setup)."""
