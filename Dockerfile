# smvision: one SageMaker bring-your-own image that trains and serves image classifiers.
#
#   docker build [--build-arg DEVICE=cpu|gpu] [--build-arg RESNET50_WEIGHTS=imagenet] -t smvision .
#   docker build --build-arg RUNTIME=lite -t smvision:lite .   (serves exported models only)
#   docker run -v JOBDIR/opt/ml:/opt/ml --hostname algo-1 smvision train
#   docker run -v JOBDIR/opt/ml:/opt/ml -p 8080:8080 smvision serve
#
# BASE_IMAGE must be Debian with a Python 3.11 `python3` that has the venv module; every
# stage starts from it, so the wheels built in the first fit the runtime's Python.
# DEVICE=gpu installs TensorFlow with its CUDA wheels (the host brings the driver).
# RUNTIME=lite builds a serving image without TensorFlow, Keras or scikit-learn: `serve`
# on LiteRT and ONNX Runtime for exported models (a cnn's or resnet50's from
# `smvision.local export`; an svm's or rf's ONNX, which train writes), and no `train`.
# Layers run from the slowest-changing to the fastest: a change to src/ rebuilds only the
# package stage and the last two layers.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# The only stage with a compiler: wheels for the dependencies published as source alone
# (the final stage installs binaries only, so a new one fails the build there, by name).
FROM ${BASE_IMAGE} AS wheels
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && if ! python3 -c 'import pathlib, sys, sysconfig; sys.exit(not pathlib.Path(sysconfig.get_paths()["include"], "Python.h").exists())'; then \
           apt-get install -y --no-install-recommends python3-dev; \
       fi \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/build
COPY requirements/base.txt requirements/constraints.txt /tmp/requirements/
RUN /opt/build/bin/pip wheel --use-pep517 --no-deps --wheel-dir /wheels \
        -c /tmp/requirements/base.txt -c /tmp/requirements/constraints.txt \
        sagemaker-training inotify-simple

FROM wheels AS package
COPY pyproject.toml README.md /tmp/smvision/
COPY src/ /tmp/smvision/src/
RUN /opt/build/bin/pip wheel --no-deps --wheel-dir /tmp/wheel /tmp/smvision

FROM ${BASE_IMAGE}
# SageMaker may move the port (SAGEMAKER_BIND_TO_PORT) and may host many models in one
# container (multi-model endpoints: SAGEMAKER_MULTI_MODEL=true, models loaded via /models).
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      com.amazonaws.sagemaker.capabilities.multi-models=true
# `serve` writes nothing outside /tmp (serverless endpoints may run it as a non-root user
# on a read-only root file system): bytecode is compiled when packages install, Keras'
# settings file and Matplotlib's font cache are made at build time, ONNX Runtime's
# telemetry (a device id in ~/.cache) is off, and gunicorn's
# heartbeat files go to /dev/shm or /tmp. Training runs as root, as SageMaker runs it.
ENV PATH=/opt/smvision/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KERAS_HOME=/opt/smvision/keras \
    MPLCONFIGDIR=/opt/smvision/matplotlib \
    ORT_DISABLE_TELEMETRY=1 \
    SAGEMAKER_TRAINING_MODULE=smvision.training.toolkit_entry:main
EXPOSE 8080
# SageMaker runs `IMAGE train` or `IMAGE serve`, and `monitor` (drift) or `gate` (the
# retraining pipeline's evaluation) as a processing job's entrypoint (the full runtime:
# they need scipy, matplotlib and boto3); SDK local mode runs the image bare.
CMD ["train"]
ARG DEVICE=cpu
ARG RUNTIME=full
COPY requirements/base.txt requirements/serve.txt requirements/constraints.txt \
     requirements/cpu.txt requirements/gpu.txt /tmp/requirements/
COPY --from=wheels /wheels/ /tmp/wheels/
# TensorFlow's C++ headers (about 290 MB) serve only to compile custom ops. Matplotlib's
# font cache is built here once rather than in every job (several seconds each).
RUN case "$DEVICE" in cpu|gpu) ;; \
        *) echo "Build argument DEVICE is '$DEVICE'; use cpu or gpu." >&2; exit 1 ;; \
    esac \
    && case "$RUNTIME" in \
        full) requirements="/tmp/requirements/$DEVICE.txt" ;; \
        lite) [ "$DEVICE" = cpu ] || { echo "RUNTIME=lite is for CPU endpoints; use DEVICE=cpu." >&2; exit 1; }; \
              requirements=/tmp/requirements/serve.txt ;; \
        *) echo "Build argument RUNTIME is '$RUNTIME'; use full or lite." >&2; exit 1 ;; \
    esac \
    && python3 -m venv /opt/smvision/venv \
    && pip install --only-binary :all: --find-links /tmp/wheels \
        -c /tmp/requirements/constraints.txt -r "$requirements" \
    && rm -rf /opt/smvision/venv/lib/python3*/site-packages/tensorflow/include /tmp/wheels /tmp/requirements \
    && if [ "$RUNTIME" = full ]; then python -c 'import matplotlib.font_manager'; fi
# Baked weights let network-isolated resnet50 jobs start from ImageNet; Keras finds
# them in $KERAS_HOME/models. Importing Keras once writes $KERAS_HOME/keras.json, which
# it would otherwise write on the first import in every container.
ARG RESNET50_WEIGHTS=none
RUN mkdir -p "$KERAS_HOME/models" \
    && if [ "$RUNTIME" = full ]; then \
           python -c 'import keras' && test -f "$KERAS_HOME/keras.json"; \
       fi \
    && case "$RESNET50_WEIGHTS/$RUNTIME" in \
        none/*) ;; \
        imagenet/full) python -c 'import keras; keras.applications.ResNet50(include_top=False, weights="imagenet")' ;; \
        imagenet/lite) echo "RESNET50_WEIGHTS=imagenet needs RUNTIME=full (Keras trains resnet50)." >&2; exit 1 ;; \
        *) echo "Build argument RESNET50_WEIGHTS is '$RESNET50_WEIGHTS'; use imagenet or none." >&2; exit 1 ;; \
    esac
COPY --from=package /tmp/wheel/ /tmp/wheel/
RUN pip install --no-deps /tmp/wheel/*.whl \
    && rm -rf /tmp/wheel \
    && python -c 'import pathlib, smvision; script = pathlib.Path(smvision.__file__).parent / "training" / "entry_script" / "train.py"; assert script.is_file(), f"{script} is missing from the installed package"' \
    && command -v serve \
    && { [ "$RUNTIME" = lite ] || { command -v train && command -v monitor && command -v gate; }; }
