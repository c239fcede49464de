# syntax=docker/dockerfile:1.7
#
# Two images from one file:
#   docker build --target operator -t ghcr.io/chroma-operator/chroma-operator:0.1.0 .
#   docker build --target encoder  -t ghcr.io/chroma-operator/chroma-operator-encoder:0.1.0 .
# The operator image also runs the router sidecar and the tuning Jobs.
#
# The encoder is CPU by default. For NVIDIA GPUs, take torch's CUDA wheels (they carry the
# CUDA runtime; the node's driver comes from the NVIDIA container toolkit):
#   docker build --target encoder \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#     -t ghcr.io/chroma-operator/chroma-operator-encoder:0.1.0-cuda .
# ENCODER_BASE may name a CUDA base image instead, if it provides Python 3.11 at
# /usr/local/bin/python3.11 (as the python images do).
#
# Base images are pinned by exact version. Release builds pin them by digest too:
#   --build-arg PYTHON_BASE=python:3.11.11-slim-bookworm@sha256:<digest>

ARG PYTHON_BASE=python:3.11.11-slim-bookworm
ARG ENCODER_BASE=python:3.11.11-slim-bookworm
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# ---- operator: build a virtualenv with the package and its dependencies ----------------
FROM ${PYTHON_BASE} AS operator-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/chroma-operator
COPY pyproject.toml README.md constraints.txt ./
COPY operator/ operator/
RUN /opt/chroma-operator/bin/pip install -c constraints.txt . \
 && /opt/chroma-operator/bin/pip uninstall -y pip

# ---- operator: the slim runtime (no compilers, no pip) ----------------------------------
FROM ${PYTHON_BASE} AS operator
LABEL org.opencontainers.image.title="chroma-operator" \
      org.opencontainers.image.description="Operator, query router and HNSW tuner for sharded Chroma clusters" \
      org.opencontainers.image.source="https://github.com/chroma-operator/chroma-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/chroma-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=operator-build /opt/chroma-operator /opt/chroma-operator
# 65532 is the UID/GID the pod securityContexts use (chroma_operator/build/security.py).
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["chroma-operator"]
CMD ["--help"]

# ---- encoder: torch + sentence-transformers (CPU wheels unless TORCH_INDEX_URL says) ----
FROM ${ENCODER_BASE} AS encoder-build
ARG TORCH_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3.11 -m venv /opt/chroma-operator
COPY pyproject.toml README.md constraints.txt ./
COPY operator/ operator/
# torch first, from its own index: the CPU build by default, not PyPI's CUDA one.
RUN grep '^torch==' constraints.txt > /tmp/torch.txt \
 && /opt/chroma-operator/bin/pip install --index-url "${TORCH_INDEX_URL}" -r /tmp/torch.txt \
 && /opt/chroma-operator/bin/pip install -c constraints.txt ".[encoder]" \
 && /opt/chroma-operator/bin/pip uninstall -y pip

FROM ${ENCODER_BASE} AS encoder
LABEL org.opencontainers.image.title="chroma-operator-encoder" \
      org.opencontainers.image.description="Embedding server (TEI and OpenAI compatible) for Chroma clusters" \
      org.opencontainers.image.source="https://github.com/chroma-operator/chroma-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/chroma-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HF_HUB_OFFLINE=1 \
    HF_HOME=/tmp/hf
COPY --from=encoder-build /opt/chroma-operator /opt/chroma-operator
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
# Pods pass the subcommand (`encoder ...`), as for the operator image.
ENTRYPOINT ["chroma-operator"]
CMD ["encoder", "--help"]
