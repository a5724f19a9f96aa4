# boxtune inference container: `boxtune serve` on port 8080 with the managed platform's hosting
# contract (GET /ping, POST /invocations), plus /metrics and the KServe v2 health routes.
#
#   docker build -t boxtune .
#   docker run --rm -p 8080:8080 -v "$PWD/out/model:/opt/ml/model:ro" boxtune
#   curl -s -X POST -H 'Content-Type: application/x-image' \
#        -H 'Accept: application/json;verbose' --data-binary @cat.jpg localhost:8080/invocations
#
# The image holds the slim `boxtune[serve]` install (ONNX Runtime + numpy, no torch and no
# TensorFlow: about 280 MB of Python packages instead of several GB), so it serves the torch
# engine's artifacts that hold a model.onnx (every artifact of the default model, its
# model.int8.onnx too). For torchvision detectors or `--backend torch`, build with
# --build-arg BOXTUNE_EXTRAS=torch; for TensorFlow models, BOXTUNE_EXTRAS=tensorflow.
#
# The model is read from BOXTUNE_MODEL (default /opt/ml/model, where the managed platform
# unpacks model.tar.gz): an artifact directory, a model.tar.gz, an s3:// URI (with the AWS_*
# variables and optionally BOXTUNE_S3_ENDPOINT_URL), or a deployable catalog model_id.
# `docker run boxtune serve` (how the managed platform starts containers) works too, and any
# option can be added: `docker run ... boxtune serve --workers 2 --max-batch-size 16`.
# SIGTERM (docker stop) lets in-flight requests finish before the process exits.
#
# With BOXTUNE_EXTRAS=torch, a CPU-only torch wheel keeps the image much smaller: pass your CPU
# wheel index with --build-arg PIP_EXTRA_INDEX_URL=<index>.
FROM python:3.11-slim

ARG BOXTUNE_EXTRAS=serve
ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    BOXTUNE_HOME=/var/cache/boxtune \
    BOXTUNE_MODEL=/opt/ml/model \
    BOXTUNE_HOST=0.0.0.0 \
    BOXTUNE_PORT=8080

WORKDIR /opt/boxtune
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[${BOXTUNE_EXTRAS}]" \
    && useradd --system --create-home --uid 10001 boxtune \
    && mkdir -p /var/cache/boxtune /opt/ml/model \
    && chown boxtune /var/cache/boxtune

USER boxtune
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ping' % os.environ.get('BOXTUNE_PORT', '8080'), timeout=2)"

ENTRYPOINT ["boxtune"]
CMD ["serve"]
