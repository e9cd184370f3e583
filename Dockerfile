# sonomap: the same thing `make demo` does, in a container.
#
#   docker build -t sonomap .                 CPU torch (default)
#   docker run --rm -p 5000:5000 sonomap      builds the demo collection and serves it on port 5000
#
# CUDA variant: torch's CUDA wheels come from the PyTorch index instead of the CPU one; run with the GPU visible:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 -t sonomap:cuda .
#   docker run --rm --gpus all -p 5000:5000 sonomap:cuda
# (the host needs the NVIDIA driver and the NVIDIA Container Toolkit; nothing else in sonomap changes)
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

RUN apt-get update \
    && apt-get install -y --no-install-recommends make nodejs npm libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV VENV=/app/.venv NUMBA_CACHE_DIR=/app/.numba_cache PIP_NO_CACHE_DIR=1

# dependencies first (cached layer): torch from the chosen index, then the pinned rest
COPY requirements.txt ./
RUN python -m venv "$VENV" \
    && "$VENV/bin/pip" install --index-url "$TORCH_INDEX" "$(grep '^torch==' requirements.txt)" \
    && "$VENV/bin/pip" install -r requirements.txt

COPY . .
RUN bash scripts/install.sh

EXPOSE 5000
CMD ["make", "demo", "HOST=0.0.0.0", "PORT=5000"]
