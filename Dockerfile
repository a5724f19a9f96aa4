# boxtune's container image, runnable as the managed platform runs a "bring your own container"
# training or hosting image (and as its SDK's local mode does):
#
#   docker run IMAGE train    the training job: /opt/ml/input -> /opt/ml/model (`boxtune container
#                             train`; needs BOXTUNE_EXTRAS=torch, see below)
#   docker run IMAGE serve    the endpoint: /opt/ml/model on port 8080, GET /ping and
#                             POST /invocations, plus /metrics and the KServe v2 health routes
#   docker run IMAGE          the same as `serve`
#   docker run IMAGE serve --workers 2 --max-batch-size 16    any `boxtune serve` option
#   docker run IMAGE models list     any other words are a `boxtune` command (`boxtune train ...`
#                                    for boxtune's own train command)
#
#   docker build -t boxtune .
#   docker run --rm -p 8080:8080 -v "$PWD/out/model:/opt/ml/model:ro" boxtune
#   curl -s -X POST -H 'Content-Type: application/x-image' \
#        -H 'Accept: application/json;verbose' --data-binary @cat.jpg localhost:8080/invocations
#
# ENTRYPOINT is `boxtune-container` (boxtune.container.entrypoint): the platform passes `train`
# or `serve` as the command, so both must be arguments of one entrypoint, not two scripts.
#
# Training: hyperparameters from /opt/ml/input/config/hyperparameters.json (`model_id` among
# them, else $BOXTUNE_MODEL_ID, else the default model), data from /opt/ml/input/data/training
# (+ validation), incremental training from a boxtune model.tar.gz in input/data/model; the
# artifact's files go to /opt/ml/model, metrics to /opt/ml/output/data, the reason of a failure
# to /opt/ml/output/failure. A checkpoint location (/opt/ml/checkpoints) lets a restarted (spot)
# job continue; SIGTERM stops the job after the checkpoint is saved.
#
# Serving: the model is /opt/ml/model (where the platform unpacks model.tar.gz), or
# $BOXTUNE_MODEL (an artifact directory, a model.tar.gz, an s3:// URI with the AWS_* variables
# and optionally BOXTUNE_S3_ENDPOINT_URL, or a deployable catalog model_id). The port is
# $SAGEMAKER_BIND_TO_PORT, else $BOXTUNE_PORT, else 8080; workers $SAGEMAKER_MODEL_SERVER_WORKERS,
# else $BOXTUNE_WORKERS, else 1; an option on the command line wins over them. SIGTERM (docker
# stop) lets in-flight requests finish before the process exits.
#
# The default image holds the slim `boxtune[serve]` install (ONNX Runtime + numpy, no torch and
# no TensorFlow: about 280 MB of Python packages instead of several GB): it serves the torch
# engine's artifacts that hold a model.onnx (every artifact of the default model, its
# model.int8.onnx too). To train, or for torchvision detectors or `--backend torch`, build with
# --build-arg BOXTUNE_EXTRAS=torch; for TensorFlow models, BOXTUNE_EXTRAS=tensorflow. With
# BOXTUNE_EXTRAS=torch, a CPU-only torch wheel keeps the image much smaller: pass your CPU wheel
# index with --build-arg PIP_EXTRA_INDEX_URL=<index>.
#
# The image runs as root: the platform creates /opt/ml for root and expects root in its
# containers, and the SDK's local mode mounts temp folders only their owner may open. For plain
# serving of a world-readable model, `docker run --user boxtune ...` runs unprivileged.
FROM python:3.11-slim

ARG BOXTUNE_EXTRAS=serve
ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    BOXTUNE_HOME=/var/cache/boxtune \
    BOXTUNE_HOST=0.0.0.0 \
    BOXTUNE_PORT=8080

WORKDIR /opt/boxtune
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[${BOXTUNE_EXTRAS}]" \
    && useradd --system --create-home --uid 10001 boxtune \
    && mkdir -p /var/cache/boxtune /opt/ml/model \
    && chmod 1777 /var/cache/boxtune

EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ping' % (os.environ.get('SAGEMAKER_BIND_TO_PORT') or os.environ.get('BOXTUNE_PORT') or '8080'), timeout=2)"

ENTRYPOINT ["boxtune-container"]
CMD ["serve"]
