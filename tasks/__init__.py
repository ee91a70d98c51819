"""Prefect tasks: thin wrappers, each around the ``oco_l3`` function of the same name (retries, tags, logs)."""
