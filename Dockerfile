# circlebot in a container: installed as a package, run as a non-root user, the database on a volume.
#   docker build -t circlebot .
#   docker run -it -v circlebot-data:/data circlebot                       # the terminal console
#   docker run -d -v circlebot-data:/data -v ./circlebot.toml:/config/circlebot.toml:ro \
#              -e CIRCLEBOT_CONFIG=/config/circlebot.toml -e CIRCLEBOT_MATRIX_TOKEN circlebot
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TZ=UTC \
    CIRCLEBOT_CONFIG=/etc/circlebot/circlebot.toml

# tini as PID 1 passes `docker stop`'s SIGTERM to the bot (which then finishes what is in hand, flushes its
# writes and exits 0) and reaps any child process
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && rm -rf /app/src

COPY readings /usr/share/circlebot/readings
COPY config.example.toml /etc/circlebot/config.example.toml
RUN sed -e 's#^database = .*#database = "/data/circlebot.sqlite3"#' \
        -e 's#^readings = .*#readings = "/usr/share/circlebot/readings"#' \
        -e 's#^listen = .*#listen = "0.0.0.0"#' -e 's#^port = .*#port = 8080#' \
        /etc/circlebot/config.example.toml > /etc/circlebot/circlebot.toml \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin circlebot \
    && mkdir -p /data && chown circlebot:circlebot /data

VOLUME ["/data"]
USER circlebot
WORKDIR /data
RUN circlebot check-config /etc/circlebot/circlebot.toml
# the web server ([web] in the config): calendar feeds, circle pages, /healthz, /readyz, /metrics
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["circlebot", "run"]
