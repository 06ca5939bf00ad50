# Serving image for the Label Studio ML backend: ONNX Runtime + numpy + Pillow, no torch, no compilers.
# Build:  docker build -t recmeta-backend .
# Run:    docker run -p 9090:9090 -v $PWD/models:/models \
#           -e LABEL_STUDIO_URL=http://labelstudio:8080 -e LABEL_STUDIO_API_KEY=... recmeta-backend
# Every environment variable is documented in docs/backend.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MODEL_DIR=/models \
    PORT=9090 \
    WORKERS=1 \
    LOG_LEVEL=INFO \
    MALLOC=glibc \
    USE_INT8=true

# jemalloc stays installed for MALLOC=jemalloc; glibc malloc served faster here (docs/backend.md, "Speed").
# The serving wheels are prebuilt, nothing is compiled here.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml constraints-cpu.txt label_config.xml README.md ./
COPY training ./training
COPY backend ./backend
COPY scripts/docker_install.sh scripts/docker_entrypoint.sh ./scripts/
# The install step lives in a script so that tests/test_docker_image_steps.py runs it without a Docker engine.
RUN sh scripts/docker_install.sh

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin recmeta \
 && mkdir -p /models \
 && chown recmeta /models
USER recmeta

VOLUME ["/models"]
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '9090'), timeout=4)"

ENTRYPOINT ["/app/scripts/docker_entrypoint.sh"]
