# The gateway's image: docker-compose.yml builds and runs it (README, "Docker Compose").
FROM python:3.12-slim

# ffmpeg (with the ffprobe neonize's audio and video builders call) makes voice notes and
# thumbnails, libmagic sniffs media types, redis-server backs the embedded default (no
# GATEWAY_REDIS_URL), tini is PID 1: it forwards signals and reaps the session hosts the worker
# forks. Debian's security updates, not pinned versions, keep these current.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libmagic1 redis-server tini \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The dependencies first, from pyproject.toml alone: a change to the sources reuses this layer.
COPY pyproject.toml deploy/docker/requirements.py ./
RUN python requirements.py postgres > requirements.txt \
    && pip install --no-cache-dir -r requirements.txt

COPY README.md ./
COPY config ./config
COPY core ./core
COPY webhooks ./webhooks
COPY scheduler ./scheduler
COPY gateway ./gateway
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info

# Its own user, and a /data it owns: a new named volume takes the ownership from the image.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /data gateway \
    && mkdir /data \
    && chown gateway:gateway /data
USER 10001:10001
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    GATEWAY_DATA_DIR=/data \
    GATEWAY_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
# `wa-gateway health` asks /health on GATEWAY_PORT, whatever it is set to.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["wa-gateway", "health"]
ENTRYPOINT ["tini", "--", "wa-gateway"]
CMD ["serve"]
