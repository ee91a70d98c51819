"""Prefect flows of oco-l3: daily, backfill and files-in-a-config. The library stays in ``oco_l3``."""
