# namegen: the HTTP service on the committed default checkpoint, CPU only.
# BASE_IMAGE: any image with Python 3.11 whose `python` and `pip` are on PATH (deploy/image-smoke.sh
# builds one from Debian packages where Docker Hub cannot be reached).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Where pip finds torch's CPU build, and (unset: PyPI) everything else: build arguments so the image
# can also be built against a local package index (deploy/image-smoke.sh).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The CPU build of torch from PyTorch's CPU index: no CUDA libraries, a far smaller image.
# Same version as pyproject.toml, so the project install below keeps it.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

COPY pyproject.toml README.md ./
COPY app ./app
COPY model ./model
RUN pip install .

COPY weights ./weights

RUN useradd --create-home --uid 10001 namegen
USER 10001

ENV NAMEGEN_HOST=0.0.0.0 \
    NAMEGEN_PORT=8000 \
    NAMEGEN_WEIGHTS=/app/weights
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/health' % os.environ.get('NAMEGEN_PORT', '8000'), timeout=2)"]

# The same command as `make serve`.
CMD ["python", "-m", "app"]
