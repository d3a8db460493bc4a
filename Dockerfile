# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    DATABASE_PATH=/data/bot.sqlite3
COPY --from=build /install /usr/local
RUN useradd --create-home --uid 10001 bot && mkdir /data && chown bot:bot /data
USER bot
WORKDIR /home/bot
VOLUME ["/data"]
# The bot answers no HTTP; healthy means the configuration is valid and the database file can be opened.
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s CMD ["python", "-m", "bot", "check", "--quiet"]
# SIGTERM lets running generations finish (SHUTDOWN_GRACE_SECONDS) and refunds the waiting ones.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
