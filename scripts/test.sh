#!/usr/bin/env bash
# The test command (README and .ci/run): install if needed, lint, type-check, run the tests.
#   bash scripts/test.sh              # default suite + the CI subset of slow end-to-end tests
#   bash scripts/test.sh --all        # every test, slow ones included
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install.sh
py="$root/.venv/bin/python"
echo "== ruff"
"$py" -m ruff check llm_emu orchestrator search tests bench
echo "== mypy"
"$py" -m mypy
if [ "${1:-}" = "--all" ]; then marker="slow or not slow"; else marker="not slow or ci_e2e"; fi
echo "== pytest -m \"$marker\""
set +e
"$py" -m pytest -m "$marker" tests
rc=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
if [ "$rc" -eq 5 ]; then echo "test.sh: pytest collected no tests" >&2; exit 1; fi
exit "$rc"
