# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# The health endpoint is on inside the image, on every interface so that the port can be published (it has no
# authentication: publish it to the host or a private network only, as docker-compose.yml does).
ENV PYTHONUNBUFFERED=1 \
    DATABASE_PATH=/data/bot.sqlite3 \
    METRICS_PORT=9108 \
    METRICS_HOST=0.0.0.0
COPY --from=build /install /usr/local
RUN useradd --create-home --uid 10001 bot && mkdir /data && chown bot:bot /data
USER bot
WORKDIR /home/bot
VOLUME ["/data"]
EXPOSE 9108
# Healthy: the event loop answers /healthz (a stuck loop or a dead process does not). /readyz, which also needs
# the Discord gateway and the database, is for monitoring: a gateway reconnect is no reason to restart.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['METRICS_PORT'], timeout=4)" || exit 1
# SIGTERM lets running generations finish (SHUTDOWN_GRACE_SECONDS) and refunds the waiting ones.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
