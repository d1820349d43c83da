FROM python:3.12-slim

# ffmpeg transcodes voice notes, libmagic sniffs media types, redis-server backs the embedded default.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libmagic1 redis-server \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 gateway
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY scheduler ./scheduler
COPY webhooks ./webhooks
COPY config ./config
COPY core ./core
COPY wa_gateway_client ./wa_gateway_client
RUN pip install --no-cache-dir '.[postgres]'

USER gateway
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    GATEWAY_DATA_DIR=/data \
    GATEWAY_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health').status != 200)"
ENTRYPOINT ["wa-gateway"]
CMD ["serve"]
