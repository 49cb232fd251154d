# namegen: the HTTP service on the committed default checkpoint, CPU only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The CPU build of torch from PyTorch's CPU index: no CUDA libraries, a far smaller image.
# Same version as pyproject.toml, so the project install below keeps it.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml README.md ./
COPY app ./app
COPY model ./model
RUN pip install .

COPY weights ./weights

RUN useradd --create-home --uid 10001 namegen
USER 10001

ENV NAMEGEN_HOST=0.0.0.0 \
    NAMEGEN_PORT=8000 \
    NAMEGEN_CHECKPOINT=/app/weights/names-mlp.safetensors
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]

# The same command as `make serve`.
CMD ["python", "-m", "app"]
