"""Prefect tasks: thin wrappers, each around the ``oco_l3`` function of the same name (retries, tags, logs)."""

from tasks._logs import quiet_task_state_lines

quiet_task_state_lines()
