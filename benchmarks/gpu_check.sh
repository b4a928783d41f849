#!/usr/bin/env bash
# The CUDA benchmarks of issue 5 in one command, for a lent GPU machine (Python 3.12, PyTorch
# with CUDA, onnx; no package index, maybe no torchvision). Run from anywhere in the checkout:
#
#   bash benchmarks/gpu_check.sh
#
# onnxruntime there is CPU-only: carry the 55 MB CUDA build that ../shared/tools/ort-gpu-pack
# makes (run it here first; name ".ortgpu" in the device run's carry): .ortgpu/ortgpu.tar.xz is
# unpacked to /tmp/netc-ortgpu (ORTGPU_DIR) and put first on PYTHONPATH. netc is this checkout (put on
# PYTHONPATH); torchvision is used where it imports, else netc.torch's own module is exported
# as the PyTorch baseline. Everything ends in under ~8 minutes (LIMIT bounds the timing loop).
# Prints the tables; with $OUT set, the logs and JSON go there too.
#
# Environment: PYTHON (default python3), MODELS (default resnet50,vgg16,googlenet,resnet18,
# alexnet: the last two only if time is left), BATCHES (default 1,32,128), LIMIT (seconds for
# latency.py, default 300), EXTRA (more latency.py flags, e.g. "--baseline both").
set -uo pipefail
cd "$(dirname "$0")/.."
begin=$SECONDS
PY=${PYTHON:-python3}
DEST=${OUT:-$(mktemp -d /tmp/netc-gpu-XXXXXX)}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1

# unpacked outside the checkout (an unpacked copy inside would double what travels)
ORTGPU=${ORTGPU_DIR:-/tmp/netc-ortgpu}
if [ -f .ortgpu/ortgpu.tar.xz ] && [ ! -f "$ORTGPU/.complete" ]; then
  rm -rf "$ORTGPU" && mkdir -p "$ORTGPU" &&
    xz -d < .ortgpu/ortgpu.tar.xz | tar -x -C "$ORTGPU" && touch "$ORTGPU/.complete" ||
    echo "gpu_check: could not unpack .ortgpu/ortgpu.tar.xz"
fi
if [ -f "$ORTGPU/.complete" ]; then
  export PYTHONPATH=$ORTGPU${PYTHONPATH:+:$PYTHONPATH}
else
  echo "gpu_check: no .ortgpu/ortgpu.tar.xz: using the installed onnxruntime (CUDA only if it has it)"
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

echo "== machine ($(date -u '+%Y-%m-%d %H:%M UTC'))"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
grep -m1 'model name' /proc/cpuinfo; nproc
"$PY" - <<'EOF' 2>&1 | tee "$DEST/versions.txt"
import platform, onnx, onnxruntime as ort, torch
try:
    import torchvision; tv = torchvision.__version__
except Exception as e:
    tv = f"none ({type(e).__name__})"
print(f"python {platform.python_version()}, torch {torch.__version__} (cuda {torch.version.cuda}, "
      f"cudnn {torch.backends.cudnn.version()}), torchvision {tv}, onnx {onnx.__version__}, "
      f"onnxruntime {ort.__version__} from {ort.__file__}")
print("ORT providers:", ort.get_available_providers(), "| torch sees:",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
EOF

echo "== netc run --provider cuda (must run on the GPU or fail clearly)"
timeout 60 "$PY" -m netc run specs/resnet18.yaml --provider cuda --batch 2 2>&1 | tail -5

echo "== latency: netc vs torch.onnx.export in ONNX Runtime CUDA (IO binding), PyTorch eager"
timeout $(( ${LIMIT:-300} + 90 )) "$PY" benchmarks/latency.py --provider cuda \
  --models "${MODELS:-resnet50,vgg16,googlenet,resnet18,alexnet}" \
  --batches "${BATCHES:-1,32,128}" --time-limit "${LIMIT:-300}" \
  --json "$DEST/latency_cuda.json" ${EXTRA:-} 2>&1 | tee "$DEST/latency_cuda.log"
echo "latency.py exit: ${PIPESTATUS[0]}"

# netc's own benchmark command, where it exists yet (issue 5, item 2)
if "$PY" -m netc bench --help >/dev/null 2>&1; then
  echo "== netc bench (resnet50, CUDA: fp32 NCHW, then fp16 prefer_nhwc)"
  timeout 45 "$PY" -m netc bench specs/resnet50.yaml --provider cuda --batch 1,32,128 \
    --seconds 0.5 2>&1 | tr '\r' '\n' | grep -v '^ *$' | tail -10
  timeout 45 "$PY" -m netc bench specs/resnet50.yaml --provider cuda --batch 1,32,128 \
    --seconds 0.5 --dtype float16 --prefer-nhwc 2>&1 | tr '\r' '\n' | grep -v '^ *$' | tail -10
fi
echo "== gpu_check done in $(( SECONDS - begin )) s; logs in $DEST"
