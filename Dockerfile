# IndexTTS Studio in a container. Not built in CI: no Docker engine runs on our machines, so this
# file is reviewed, not tested. See docs/deploy.md.
#
#   docker build -t indextts-studio .                        # CPU (default)
#   docker build -t indextts-studio:cuda --build-arg COMPUTE=cuda .
#   docker run -p 7860:7860 -e INDEX_TTS_TOKEN=$(openssl rand -hex 16) \
#       -v /srv/indextts/cache_hub:/app/cache_hub:ro -v /srv/indextts/data:/app/data indextts-studio
#   (CUDA: add --gpus all; the host needs the NVIDIA driver and the NVIDIA container toolkit.)
FROM python:3.11-slim-bookworm

# cpu: torch from PyTorch's CPU index (no CUDA libraries, ~10x smaller).
# cuda: torch from PyPI, whose Linux wheels bring their own CUDA runtime; only the driver comes from the host.
ARG COMPUTE=cpu

# gcc/g++: pyworld has no wheel and is built from source.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN case "$COMPUTE" in \
        cpu) extra="--extra-index-url https://download.pytorch.org/whl/cpu" ;; \
        cuda) extra="" ;; \
        *) echo "COMPUTE must be cpu or cuda, got $COMPUTE" >&2; exit 2 ;; \
    esac \
    && pip install --no-cache-dir $extra -r requirements.txt

COPY index_tts/ index_tts/
COPY webui.py start_app.sh ./

# An unprivileged user owns only the data folder; the weights are mounted read-only.
RUN useradd --create-home --uid 1000 studio && mkdir -p /app/data /app/cache_hub && chown studio /app/data
USER studio

ENV INDEX_TTS_DATA=/app/data \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HUB_OFFLINE=1 \
    PYTHONUNBUFFERED=1
VOLUME ["/app/cache_hub", "/app/data"]
EXPOSE 7860

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/healthz', timeout=4)"

# 0.0.0.0 inside the container: webui.py refuses to start unless INDEX_TTS_TOKEN is set.
CMD ["python", "webui.py", "--host", "0.0.0.0", "--port", "7860", "--model-dir", "/app/cache_hub/IndexTTS-2"]
