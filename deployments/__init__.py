"""Deployment support shared by ``prefect.yaml`` and ``docker-compose.yml``: names the code and tests agree on."""

WORK_POOL = "oco-l3-process"
#: prefect.yaml: the OCO deployments (`prefect deploy --all` registers these and only these).
DEPLOYMENTS = ("oco-daily", "oco-backfill", "oco-process-files", "oco-listen")
#: The deployments with an active schedule once deployed.
SCHEDULED = ("oco-daily",)
RUN_CONFIG = "deployments/oco-l3.yaml"
#: Environment the deployed run config reads (see deployments/oco-l3.yaml).
RUN_CONFIG_ENV = ("OCO_L3_OUTPUT", "OCO_L3_COG_OUTPUT", "OCO_L3_STATE_URL")
#: ICESat-2 deployments, in their own file (deployed only when wanted) with their run config.
ICESAT2_PREFECT_FILE = "deployments/icesat2.prefect.yaml"
ICESAT2_DEPLOYMENTS = ("icesat2-seaice-backfill", "icesat2-seaice-daily", "icesat2-process-files")
ICESAT2_SCHEDULED = ("icesat2-seaice-daily",)
ICESAT2_RUN_CONFIG = "deployments/icesat2-seaice.yaml"
