# xborder-monitor images. Two targets:
#   service (the default, last stage): the worker and the notifier
#     docker build -t xborder-monitor:0.1.0 .
#   tools: the tooling, for `xborder geoip fetch` into a volume (compose `geoip-init`)
#     docker build --target tools -t xborder-monitor-tools:0.1.0 .
# The GeoIP database is not baked into the service image (licence,
# freshness): a folder holding country.mmdb is mounted at /data/geoip.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Fixed uid/gid so volumes and Kubernetes securityContext can match it; the
# tools image writes the GeoIP volume as the same user the service reads it as
# (`geoip fetch` leaves its files readable by their owner alone).
RUN groupadd --system --gid 10001 xborder \
 && useradd --system --uid 10001 --gid xborder --home-dir /app --no-create-home xborder

# Only what the package build needs, so edits to rules or deploy files do
# not invalidate the dependency layer. README.md* : the glob tolerates a
# checkout without it.
COPY pyproject.toml README.md* ./
COPY monitor/ monitor/
COPY agents/ agents/


FROM base AS tools

# `xborder geoip fetch` downloads with the npm client (`npm pack`).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
# The package with its tooling, without the demo extra: that is the embedded
# broker of `xborder demo` (an x86-64-only wheel), and compose runs Kafka.
COPY xborder_tools/ xborder_tools/
RUN pip install . && rm -rf build *.egg-info

# npm keeps its cache under HOME, which the user must be able to write. The
# named volume compose mounts at /geoip starts as a copy of this folder, so it
# is owned by that user too.
ENV HOME=/tmp/xborder-home
RUN mkdir -p /geoip "$HOME" && chown xborder:xborder /geoip "$HOME"
USER xborder:xborder
ENTRYPOINT ["xborder"]
CMD ["geoip", "fetch", "--dest", "/geoip"]


FROM base AS service

# The tooling (xborder_tools: demo, simulator, embedded broker, GeoIP fetch)
# stays out: the service never runs it, and without it `xborder demo|simulate|geoip
# fetch` say what to install.
RUN pip install . && rm -rf build *.egg-info

# The rule pack is data; a non-editable install cannot find it beside the
# package, hence XBORDER_RULES below.
COPY rules/ rules/

RUN mkdir -p /data/geoip /state \
 && chown -R xborder:xborder /data /state

ENV XBORDER_RULES=/app/rules \
    XBORDER_DATA_DIR=/data \
    XBORDER_GEOIP_COUNTRY=/data/geoip/country.mmdb \
    XBORDER_STATE_DIR=/state \
    XBORDER_METRICS_HOST=0.0.0.0 \
    XBORDER_METRICS_PORT=9464

USER xborder:xborder
EXPOSE 9464

# slim has no curl: ask /metrics with the interpreter that is already here.
# /metrics, not /ready: a replica without partitions is idle, not broken.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('XBORDER_METRICS_PORT', '9464'), timeout=4)"]

ENTRYPOINT ["xborder"]
CMD ["worker"]
