# oco-l3 worker image: the library, the flows and a Prefect process worker.
#   docker build -t oco-l3 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DO_NOT_TRACK=1 \
    PREFECT_LOGGING_EXTRA_LOGGERS=oco_l3 \
    OCO_L3_PROJECT_DIR=/opt/oco-l3

WORKDIR /opt/oco-l3

# Dependencies first (cached layer), then the code.
COPY pyproject.toml README.md ./
COPY oco_l3 ./oco_l3
COPY flows ./flows
COPY tasks ./tasks
COPY deployments ./deployments
COPY prefect.yaml ./
RUN pip install . \
    && useradd --create-home --uid 1000 oco \
    && mkdir -p /data \
    && chown oco /data

USER oco
VOLUME ["/data"]
CMD ["prefect", "worker", "start", "--pool", "oco-l3-process", "--type", "process"]
