"""Deployment support shared by ``prefect.yaml`` and ``docker-compose.yml``: names the code and tests agree on."""

WORK_POOL = "oco-l3-process"
DEPLOYMENTS = ("oco-daily", "oco-backfill", "oco-process-files", "oco-listen")
RUN_CONFIG = "deployments/oco-l3.yaml"
#: Environment the deployed run config reads (see deployments/oco-l3.yaml).
RUN_CONFIG_ENV = ("OCO_L3_OUTPUT", "OCO_L3_COG_OUTPUT", "OCO_L3_STATE_URL")
#: ICESat-2 deployments (prefect.yaml lists them after the OCO ones) and their deployed run config.
ICESAT2_DEPLOYMENTS = ("icesat2-seaice-backfill", "icesat2-seaice-daily", "icesat2-process-files")
DEPLOYMENTS += ICESAT2_DEPLOYMENTS
ICESAT2_RUN_CONFIG = "deployments/icesat2-seaice.yaml"
