# Two images from one Dockerfile (docs/backend.md, "Docker images"):
#   serve (default): the ML backend, ONNX Runtime + numpy + Pillow, no torch, no compilers.
#       docker build -t recmeta-backend .
#   train: the same backend plus the training extra (CPU torch, ILP, hashing), so the default local
#       active-learning retrain (`python -m training.fit` in a worker process) runs inside the container;
#       also the image for RQ workers (`rq worker active-learning --url $REDIS_URL`).
#       docker build --target train -t recmeta-backend-train .
# Run:    docker run -p 9090:9090 -v $PWD/models:/models \
#           -e LABEL_STUDIO_URL=http://labelstudio:8080 -e LABEL_STUDIO_API_KEY=... recmeta-backend[-train]
# Every environment variable is documented in docs/backend.md.
FROM python:3.11-slim AS base

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
# The wheels of both extras are prebuilt, nothing is compiled here.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml constraints-cpu.txt label_config.xml README.md ./
COPY training ./training
COPY backend ./backend
COPY scripts/docker_install.sh scripts/docker_entrypoint.sh ./scripts/
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin recmeta \
 && mkdir -p /models \
 && chown recmeta /models
VOLUME ["/models"]
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '9090'), timeout=4)"
ENTRYPOINT ["/app/scripts/docker_entrypoint.sh"]

FROM base AS train
# The install steps live in a script so that tests/test_docker_image_steps.py runs them without a Docker engine.
RUN EXTRAS=serve,train sh scripts/docker_install.sh
USER recmeta

FROM base AS serve
RUN sh scripts/docker_install.sh
USER recmeta
