# xborder-monitor worker image.
#   docker build -t xborder-monitor:0.1.0 .
#   docker run --rm -v "$PWD/demo-data/geoip:/data/geoip:ro" \
#     -e KAFKA_BOOTSTRAP_SERVERS=kafka:9092 xborder-monitor:0.1.0
# The GeoIP database is not baked in (licence, freshness): mount a folder
# holding country.mmdb at /data/geoip. `xborder geoip fetch` needs npm and the
# tooling, which this image deliberately lacks, so run it on the host first.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package build needs, so edits to rules or deploy files do
# not invalidate the dependency layer. README.md* : the glob tolerates a
# checkout without it. The tooling (xborder_tools: demo, simulator, embedded
# broker, GeoIP fetch) stays out: the service never runs it, and without it
# `xborder demo|simulate|geoip fetch` say what to install.
COPY pyproject.toml README.md* ./
COPY monitor/ monitor/
COPY agents/ agents/
RUN pip install . && rm -rf build *.egg-info

# The rule pack is data; a non-editable install cannot find it beside the
# package, hence XBORDER_RULES below.
COPY rules/ rules/

# Fixed uid/gid so volumes and Kubernetes securityContext can match it.
RUN groupadd --system --gid 10001 xborder \
 && useradd --system --uid 10001 --gid xborder --home-dir /app --no-create-home xborder \
 && mkdir -p /data/geoip /state \
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
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('XBORDER_METRICS_PORT', '9464'), timeout=4)"]

ENTRYPOINT ["xborder"]
CMD ["worker"]
