#!/usr/bin/env bash
# GPU path check: launch a real PyTorch training run on an NVIDIA GPU through `workbench run` (local
# executor) and check that the run recorded the GPU facts and utilisation samples.
# Without an NVIDIA GPU it says so and exits 0. Usage: scripts/gpu_check.sh [python-with-torch]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi absent or sees none): nothing to check"
  exit 0
fi
echo "== GPUs"; nvidia-smi -L
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "== installing a CUDA build of torch into a scratch venv"
  venv="$(mktemp -d)/venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch nvidia-ml-py
  "$venv/bin/pip" install -q -e . >/dev/null
  PY="$venv/bin/python"
fi
"$PY" -c "import workbench.host.gpus as g; print('gpu_facts:', g.gpu_facts())"

proj="$(mktemp -d)/gpu-proj"
mkdir -p "$proj"
cat > "$proj/train.py" <<'PYEOF'
import argparse, time, torch
parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=3000)
parser.add_argument("--lr", type=float, default=0.01)
args = parser.parse_args()
device = torch.device("cuda")
torch.manual_seed(0)
x = torch.randn(8192, 1024, device=device)
y = (x[:, :1] > 0).float()
model = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 1)).to(device)
opt = torch.optim.SGD(model.parameters(), lr=args.lr)
loss_fn = torch.nn.BCEWithLogitsLoss()
start = time.time()
step = 0
while step < args.steps or time.time() - start < 8:   # at least 8 s so the sampler sees the GPU busy
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    if step % 200 == 0:
        torch.cuda.synchronize()
        print(f"step={step} loss={loss.item():.4f}", flush=True)
    step += 1
torch.save(model.state_dict(), "model.pt")
print(f"device: {torch.cuda.get_device_name(0)}")
PYEOF
cd "$proj"
"$PY" -m workbench init >/dev/null
"$PY" -m workbench run -n gpu-check -- "$PY" train.py --steps 3000
"$PY" -m workbench show latest --json > run.json
"$PY" - <<'PYEOF'
import json, sys
run = json.load(open("run.json"))
gpus = run.get("gpus") or []
print("recorded GPUs:", json.dumps(gpus))
samples = [k for k in (run.get("metrics") or {}) if k.startswith("system/gpu")]
print("recorded GPU series:", samples)
problems = []
if run.get("status") != "succeeded":
    problems.append(f"run status {run.get('status')}: {run.get('reason')}")
if not gpus or not all(g.get("model") and g.get("memory_total") and g.get("driver") for g in gpus):
    problems.append("GPU facts (model, memory, driver) missing from the run")
if not samples:
    problems.append("no GPU utilisation/memory samples recorded during the run")
if "loss" not in (run.get("metrics") or {}):
    problems.append("loss metric missing")
if problems:
    print("gpu_check: FAILED:", "; ".join(problems))
    sys.exit(1)
print("gpu_check: OK")
PYEOF
