#!/usr/bin/env bash
# Build llm-emu's wheel, install it (non-editable) into a fresh venv outside the checkout and run the CLI there:
# proves that an installed llm-emu finds its shipped data (llm_emu/data) and needs nothing from a source tree.
#   bash scripts/wheel_check.sh [PYTHON]   # PYTHON: an interpreter whose environment has llm-emu's dependencies
#                                          # (default: ./.venv/bin/python, what scripts/install.sh builds)
# Cheap by construction: instead of a second 3.5 GB install of vLLM and torch (~75 s), the new venv's
# site-packages links every entry of PYTHON's site-packages except llm-emu's own (its editable finder, .pth
# and dist-info), and only the wheel is installed into it (pip --no-deps --no-index). The checks below assert
# that llm_emu, orchestrator, search, the console script and the vLLM plugin entry point all come from the
# wheel, with PYTHONPATH unset and the working directory outside the checkout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-$root/.venv/bin/python}
[ -f "$root/pyproject.toml" ] && [ -d "$root/llm_emu/data" ] || { echo "wheel check: $root is not llm-emu's source tree" >&2; exit 2; }
SECONDS=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/llm-emu-wheel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM PIPE
unset PYTHONPATH

# 1. The wheel, built from a clean copy of the source tree (so no build/ or *.egg-info lands in the checkout).
mkdir "$tmp/src" "$tmp/dist"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tmp/src")
else
  tar -C "$root" --exclude=.venv --exclude=.git --exclude=runs --exclude=build -cf - . | tar -C "$tmp/src" -xf -
fi
"$py" -m pip wheel -q --no-deps --no-build-isolation -w "$tmp/dist" "$tmp/src" >/dev/null
whl=$(ls "$tmp/dist"/llm_emu-*.whl)

# 2. A fresh venv: the dependencies linked in, llm-emu itself left out, then the wheel installed.
"$py" -m venv --without-pip "$tmp/venv"
vpy="$tmp/venv/bin/python"
site_of() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
deps=$(site_of "$py")
dest=$(site_of "$vpy")
for entry in "$deps"/* "$deps"/.[!.]*; do
  [ -e "$entry" ] || continue
  case "$(basename "$entry")" in
    llm_emu|orchestrator|search|llm_emu-*.dist-info|llm_emu.egg-link|__editable__*llm_emu*|easy-install.pth) continue ;;
  esac
  ln -s "$entry" "$dest/"
done
"$vpy" -m pip install -q --no-deps --no-index "$whl"

# 3. Run it from outside the checkout: imports, entry points and data files must all be the wheel's.
work="$tmp/work"
mkdir -p "$work/sweeps"
cp "$root/sweeps/chunked_prefill.yaml" "$work/sweeps/"
cd "$work"
export XDG_CACHE_HOME="$tmp/cache"  # shipped models are materialised here, not in the user's cache
"$vpy" - "$tmp/venv" "$root/llm_emu/data" <<'EOF'
import importlib.metadata as md
import sys
from pathlib import Path

venv, source_data = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
import llm_emu, orchestrator, search  # noqa: E401
from llm_emu.models import MODELS_DIR, shipped_models
from llm_emu.shipped import data_root

def inside(path: object, what: str) -> None:
    # resolve(): the venv's site-packages may itself be reached through a symlink (lib64)
    if venv not in Path(str(path)).resolve().parents:
        sys.exit(f"wheel check: {what} comes from {path}, not from the wheel installed in {venv}")

for mod in (llm_emu, orchestrator, search):
    inside(mod.__file__, f"import {mod.__name__}")
dist = md.distribution("llm-emu")
inside(dist.locate_file("llm_emu/__init__.py"), "the llm-emu distribution")
eps = {(ep.group, ep.name): ep for ep in dist.entry_points}
for group, name in (("console_scripts", "llm-emu"), ("vllm.platform_plugins", "llm_emu")):
    ep = [e for e in md.entry_points(group=group) if e.name == name]
    if len(ep) != 1 or ep[0].value != eps[(group, name)].value:
        sys.exit(f"wheel check: entry point {group}:{name} resolves to {ep}, expected the wheel's only")
    inside(Path(sys.modules[ep[0].load().__module__].__file__), f"entry point {group}:{name}")
inside(data_root(), "llm_emu/data")
want = sorted(str(p.relative_to(source_data)) for p in source_data.rglob("*") if p.is_file())
have = sorted(str(p.relative_to(data_root())) for p in data_root().rglob("*") if p.is_file())
if want != have:
    sys.exit(f"wheel check: the wheel's llm_emu/data differs from the source tree's: missing "
             f"{sorted(set(want) - set(have))}, extra {sorted(set(have) - set(want))}")
print(f"wheel check: imports, entry points and {len(have)} data files ({', '.join(shipped_models())}) "
      f"come from the wheel; models in {MODELS_DIR}")
EOF
llm_emu="$tmp/venv/bin/llm-emu"
"$llm_emu" serve --help >/dev/null
cmd=$("$llm_emu" serve --profile aic:h100_sxm --model llama-3.1-8b --dry-run 2>/dev/null)
case "$cmd" in
  *"--model $XDG_CACHE_HOME/llm-emu/models/llama-3.1-8b "*) ;;
  *) echo "wheel check: llm-emu serve --dry-run did not resolve the shipped model: $cmd" >&2; exit 1 ;;
esac
"$llm_emu" sweep sweeps/chunked_prefill.yaml --dry-run >/dev/null
echo "wheel check: llm-emu serve --help, serve --dry-run and sweep --dry-run ran from the installed wheel" \
     "(${SECONDS} s)"
