#!/usr/bin/env bash
# The GPU half of torchship's promise in one command (docs/gpu.md).
#
#   scripts/gpu-check.sh [--dry-run] [--bundle DIR] [--use-bundle-debs] [REPORT_DIR]
#
# On a machine with an NVIDIA GPU and a CUDA build of torch already installed, with no
# network: installs torchship from this working tree (pip --no-deps --no-index, into the
# environment of $PYTHON, default python3), adds what the machine lacks from the bundle
# that scripts/gpu-bundle.sh made (wheels installed offline; Debian packages unpacked
# with `dpkg -x` into build/gpu-check/deps, never into /), builds torchship-run with
# its CUDA path against that torch, trains and exports the seed models to every format,
# then runs `pytest -m cuda`, `verify-model all --device all` and
# `bench-model all --device cuda`, and writes one report folder:
#   report.txt    environment, steps, the parity table, the bench table, pytest's summary
#   verify.json   bench.json   bench-cuda.png   env.json   pytest.txt   gpu-check.log
# REPORT_DIR defaults to $OUT when set (the device machine's return folder), else
# build/gpu-report (git-ignored). Exit 0 when every step passed, 1 otherwise (and when there is no GPU).
#
# --dry-run          everything that needs no GPU and changes no Python environment:
#                    the checks, the bundle, the deb prefix, the CMake build; then it
#                    lists the GPU steps and stops (works on a CPU machine)
# --bundle DIR       the bundle folder (default: build/gpu-bundle)
# --use-bundle-debs  unpack every bundled deb even where the machine has the package
#
# Environment: PYTHON, GPU_CHECK_BUDGET (seconds for the whole run, default 540, so it
# ends inside the device machine's 10-minute limit with the report written),
# BENCH_ARGS (default: --batch-sizes 1,64 --cold-starts 1).
set -uo pipefail  # no -e: a failed step is recorded and the report is still written
cd "$(dirname "$0")/.." || exit 1
root=$PWD

usage() { sed -n '4,5p' "$0" | sed 's/^# *//'; }
dry_run=0
force_debs=0
bundle=build/gpu-bundle
report=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --use-bundle-debs) force_debs=1 ;;
    --bundle) [ $# -ge 2 ] || { usage >&2; exit 2; }; bundle=$2; shift ;;
    --bundle=*) bundle=${1#*=} ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) echo "gpu-check: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$report" ] || { usage >&2; exit 2; }; report=$1 ;;
  esac
  shift
done
report=${report:-${OUT:-build/gpu-report}}
python=${PYTHON:-python3}
budget=${GPU_CHECK_BUDGET:-540}
read -r -a bench_args <<< "${BENCH_ARGS:---batch-sizes 1,64 --cold-starts 1}"
work=$root/build/gpu-check          # git-ignored: the CUDA build, the deb prefix, artifacts
build_dir=$work/build
prefix=$work/deps
artifacts=$work/artifacts
start=$(date +%s)

# 1. A GPU, or nothing to check. --------------------------------------------------------
gpu=""
if command -v nvidia-smi >/dev/null 2>&1; then
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
fi
if [ -z "$gpu" ]; then
  if [ "$dry_run" = 0 ]; then echo "gpu-check: no NVIDIA GPU on this machine" >&2; exit 1; fi
  echo "gpu-check: no NVIDIA GPU on this machine (dry run: going on with what needs none)"
fi

mkdir -p "$report" "$work" || exit 1
report=$(cd "$report" && pwd)
log=$report/gpu-check.log
: > "$log"
rm -f "$report"/{report.txt,verify.json,bench.json,bench-cuda.png,env.json,pytest.txt} "$work"/{verify,bench}.txt
steps=()      # "name|result|seconds"
failed=()
notes=()
say() { echo "gpu-check: $*" | tee -a "$log"; }
fail() { say "FAILED: $1${2:+: $2}"; failed+=("$1"); }  # fail STEP [WHY]

# step NAME CAP CAPTURE CMD...: runs CMD with a time limit (CAP seconds, less when the
# budget is running out), its output into the log (and into CAPTURE unless it is -).
step() {
  local name=$1 cap=$2 capture=$3 left t0 rc
  shift 3
  left=$(( budget - ($(date +%s) - start) - 20 ))
  if [ "$left" -lt 10 ]; then
    steps+=("$name|not run: out of time (GPU_CHECK_BUDGET=$budget)|0"); failed+=("$name"); return 1
  fi
  [ "$cap" -le "$left" ] || cap=$left
  say "== $name (limit ${cap}s)"
  echo "\$ $*" >> "$log"
  t0=$(date +%s)
  if [ "$capture" = - ]; then
    timeout --kill-after=10 "$cap" "$@" >> "$log" 2>&1; rc=$?
  else
    timeout --kill-after=10 "$cap" "$@" 2>&1 | tee "$capture" >> "$log"; rc=$?
  fi
  local secs=$(( $(date +%s) - t0 )) result=passed
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then result="timed out after ${cap}s"
  elif [ "$rc" != 0 ]; then result="failed (exit $rc)"; fi
  steps+=("$name|$result|$secs")
  if [ "$result" = passed ]; then say "   $name: passed in ${secs}s"; return 0; fi
  fail "$name" "$result; see gpu-check.log"
  return 1
}

# The report is written however the run ends.
# shellcheck disable=SC2317  # called by the EXIT trap
write_report() {
  local status=$1 out=$report/report.txt
  [ "$status" = 0 ] || [ ${#failed[@]} -gt 0 ] || failed+=("exit status $status")
  {
    echo "torchship GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)$([ "$dry_run" = 1 ] && echo ' (DRY RUN)')"
    echo "gpu:    ${gpu:-none}"
    echo "torch:  ${torch_version:-?} (CUDA ${torch_cuda:-none}), python ${py_version:-?}, onnxruntime ${ort_version:-?} (${ort_providers:-?})"
    echo "runner: ${runner_note:-not built}"
    echo "bundle: ${bundle_note:-nothing taken from it}"
    echo
    echo "steps:"
    local s
    for s in "${steps[@]}"; do IFS='|' read -r n r t <<< "$s"; printf '  %-22s %-40s %5ss\n' "$n" "$r" "$t"; done
    echo
    if [ -s "$work/verify.txt" ]; then echo "verify-model all --device all:"; cat "$work/verify.txt"; echo; fi
    if [ -s "$work/bench.txt" ]; then echo "bench-model all --device cuda ${bench_args[*]}:"; cat "$work/bench.txt"; echo; fi
    if [ -s "$report/pytest.txt" ]; then
      echo "pytest -m cuda:"; grep -E "^(PASSED|FAILED|ERROR|SKIPPED)|[0-9]+ (passed|failed|error|skipped|deselected)" "$report/pytest.txt"; echo
    fi
    for s in "${notes[@]}"; do echo "note: $s"; done
    if [ ${#failed[@]} -eq 0 ]; then echo "gpu-check: PASS$([ "$dry_run" = 1 ] && echo ' (dry run: no GPU step ran)')"
    else echo "gpu-check: FAIL: $(printf '%s\n' "${failed[@]}" | awk '!seen[$0]++' | paste -sd, | sed 's/,/, /g')"; fi
  } > "$out"
  cat "$out"
}
trap 'write_report $?' EXIT
trap 'fail "interrupted"; exit 1' INT TERM

say "report folder: $report; work folder: $work; budget ${budget}s"

# 2. The Python side: torch, the packages torchship imports, the bundle. ------------------
torch_version="" torch_cuda="" cuda_ok="" py_version="" arch="" torch_prefix=""
if ! info=$("$python" - <<'EOF' 2>>"$log"
import platform, shlex, torch
cuda = torch.cuda.is_available()
values = {
    "torch_version": torch.__version__, "torch_cuda": torch.version.cuda or "",
    "cuda_ok": "1" if cuda else "", "py_version": platform.python_version(),
    "arch": "%d.%d" % torch.cuda.get_device_capability(0) if cuda else "",
    "torch_prefix": torch.utils.cmake_prefix_path,
}
for key, value in values.items():
    print(f"{key}={shlex.quote(str(value))}")
EOF
); then
  fail "python" "cannot import torch with $python (set PYTHON to the interpreter that has the CUDA build)"; exit 1
fi
eval "$info"
say "torch $torch_version (CUDA ${torch_cuda:-none}) with Python $py_version at $(command -v "$python")"
if [ "$dry_run" = 0 ]; then
  [ -n "$torch_cuda" ] || { fail "torch" "torch $torch_version is a CPU build; install a CUDA build of torch"; exit 1; }
  [ -n "$cuda_ok" ] || { fail "torch" "torch $torch_version (CUDA $torch_cuda) sees no GPU: torch.cuda.is_available() is False"; exit 1; }
fi
if ! PYTHONPATH=$root "$python" -c "import sys; from torchship.compat import in_supported_range as ok; sys.exit(not ok(sys.argv[1]))" "$torch_version"; then
  notes+=("torch $torch_version is outside torchship's supported range (pyproject.toml); results say nothing about the range")
  say "${notes[-1]}"
fi

missing=$("$python" - <<'EOF'
import importlib.util
needed = {"onnx": "onnx", "onnxscript": "onnxscript", "onnxruntime": "onnxruntime", "click": "click",
          "rich": "rich", "sklearn": "scikit-learn", "matplotlib": "matplotlib", "pytest": "pytest",
          "jsonschema": "jsonschema", "setuptools": "setuptools"}
print(" ".join(dist for module, dist in needed.items() if importlib.util.find_spec(module) is None))
EOF
)
bundle_parts=()
if [ -n "$missing" ]; then
  say "Python packages missing here: $missing"
  for dist in $missing; do
    compgen -G "$bundle/whl/${dist//-/_}-*.whl" >/dev/null || compgen -G "$bundle/whl/$dist-*.whl" >/dev/null || {
      fail "python packages" "$dist is missing and not in $bundle/whl: add it to scripts/gpu-bundle.sh and rerun it"; exit 1; }
  done
  # shellcheck disable=SC2086  # $missing is a list of names
  if [ "$dry_run" = 1 ]; then
    say "would run: $python -m pip install --no-index --find-links $bundle/whl $missing"
  else
    step "install wheels" 120 - "$python" -m pip install --quiet --no-index --no-cache-dir --find-links "$bundle/whl" $missing || exit 1
    bundle_parts+=("wheels: $missing (+ their dependencies from $bundle/whl)")
  fi
fi
if [ "$dry_run" = 1 ]; then
  say "would run: $python -m pip install --no-index --no-deps --no-build-isolation -e ."
  bin=$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
else
  step "install torchship" 120 - "$python" -m pip install --quiet --no-index --no-deps --no-build-isolation -e . || exit 1
  bin=$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  "$bin/train-model" --help >/dev/null 2>>"$log" || { fail "install torchship" "train-model is not in $bin after the install"; exit 1; }
fi
ort_version=$("$python" -c "import onnxruntime as o; print(o.__version__)" 2>/dev/null)
ort_providers=$("$python" -c "import onnxruntime as o; print(','.join(o.get_available_providers()))" 2>/dev/null)
if [[ ",$ort_providers," != *,CUDAExecutionProvider,* ]]; then
  notes+=("onnxruntime ${ort_version:-?} has no CUDAExecutionProvider here (providers: ${ort_providers:-none}): the onnxruntime (cuda) rows are skipped, that path stays unproven on this machine")
fi

# 3. The C++ runner's build dependencies: the machine's own, else the bundle's. ----------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
unpack=()
for pkg in libcli11-dev nlohmann-json3-dev libzip-dev libssl-dev; do
  if [ "$force_debs" = 1 ] || ! installed "$pkg"; then
    unpack+=("$pkg")
    case $pkg in libzip-dev) unpack+=(libzip4) ;; libssl-dev) unpack+=(libssl3) ;; esac
  fi
done
pkg_config=$(command -v pkg-config || command -v pkgconf || true)
if [ "$force_debs" = 1 ] || [ -z "$pkg_config" ]; then unpack+=(pkgconf-bin libpkgconf3); fi
cmake_extra=()
rm -rf "$prefix"
if [ ${#unpack[@]} -gt 0 ]; then
  say "unpacking from $bundle/deb into $prefix: ${unpack[*]}"
  command -v dpkg-deb >/dev/null || { fail "deps" "dpkg-deb is needed to unpack $bundle/deb"; exit 1; }
  mkdir -p "$prefix"
  for pkg in "${unpack[@]}"; do
    deb=$(compgen -G "$bundle/deb/${pkg}_*.deb" | head -1)
    [ -n "$deb" ] || { fail "deps" "$pkg is not installed here and not in $bundle/deb: run scripts/gpu-bundle.sh where there is network"; exit 1; }
    dpkg-deb -x "$deb" "$prefix" || { fail "deps" "dpkg-deb -x $deb failed"; exit 1; }
  done
  multiarch=$prefix/usr/lib/x86_64-linux-gnu
  # The .pc files say prefix=/usr; point them at the unpacked tree.
  for pc in "$multiarch"/pkgconfig/*.pc; do
    [ -e "$pc" ] && sed -i "s|^prefix=/usr\$|prefix=$prefix/usr|" "$pc"
  done
  export PKG_CONFIG_PATH=$multiarch/pkgconfig:$prefix/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  # Debian keeps arch-specific headers (openssl/configuration.h) in a multiarch folder
  # that the compiler searches only under /usr.
  export CPATH=$prefix/usr/include/x86_64-linux-gnu:$prefix/usr/include${CPATH:+:$CPATH}
  # Not LIBRARY_PATH: CMake would take it for a compiler default and leave the prefix
  # out of the runner's RUNPATH, which must find libzip.so.4 and libcrypto.so.3 there.
  [[ " ${unpack[*]} " != *" libssl-dev "* ]] || cmake_extra+=("-DOPENSSL_ROOT_DIR=$prefix/usr")
  if [[ " ${unpack[*]} " == *" pkgconf-bin "* ]]; then
    pkg_config=$prefix/bin/pkg-config
    mkdir -p "$prefix/bin"
    # shellcheck disable=SC2016  # $LD_LIBRARY_PATH and $@ expand when the wrapper runs
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
      "$multiarch" "$prefix/usr/bin/pkgconf" > "$pkg_config"
    chmod +x "$pkg_config"
  fi
  bundle_parts+=("debs unpacked into build/gpu-check/deps: ${unpack[*]}")
fi
[ -z "$pkg_config" ] || cmake_extra+=("-DPKG_CONFIG_EXECUTABLE=$pkg_config")
bundle_note=$(printf '%s; ' "${bundle_parts[@]}" | sed 's/; $//')
[ -n "$bundle_note" ] || bundle_note="nothing taken from it"

# 4. torchship-run with its CUDA path. -----------------------------------------------------
cxx=$(command -v c++ || command -v g++ || true)
[ -n "$cxx" ] || { fail "build" "no C++ compiler (c++ or g++) on this machine"; exit 1; }
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja)
elif ! command -v make >/dev/null; then fail "build" "neither ninja nor make on this machine"; exit 1; fi
nvcc=""
if [ -n "$torch_cuda" ]; then  # libtorch's CMake config then needs the CUDA toolkit
  # The toolkit's own nvcc first: one on PATH may be a wrapper script elsewhere.
  for candidate in ${CUDA_HOME:+$CUDA_HOME/bin/nvcc} /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc \
                   "$(command -v nvcc || true)"; do
    [ -n "$nvcc" ] || [ ! -x "$candidate" ] || nvcc=$candidate
  done
  [ -n "$nvcc" ] || { fail "build" "torch is a CUDA build but there is no nvcc (CUDA_HOME, /usr/local/cuda, PATH)"; exit 1; }
  cmake_extra+=("-DCMAKE_CUDA_COMPILER=$nvcc" "-DCUDA_TOOLKIT_ROOT_DIR=$(dirname "$(dirname "$(readlink -f "$nvcc")")")")
fi
[ -z "$arch" ] || export TORCH_CUDA_ARCH_LIST=$arch
export CMAKE_POLICY_VERSION_MINIMUM=3.5  # CMake 4 refuses older policy floors in some packages' configs
rm -rf "$build_dir"
step "cmake configure" 180 - cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "-DCMAKE_PREFIX_PATH=$torch_prefix;$prefix/usr" "${cmake_extra[@]}"
configured=$?
runner=$build_dir/torchship-run
if [ "$configured" = 0 ] && step "cmake build" 300 - cmake --build "$build_dir" -j "$(nproc)"; then
  if grep -q TORCHSHIP_WITH_CUDA "$build_dir/compile_commands.json"; then cuda_path="with its CUDA path"
  else cuda_path="WITHOUT its CUDA path (libtorch's CMake config listed no CUDA libraries)"
    [ "$dry_run" = 1 ] || fail "runner CUDA path" "TORCHSHIP_WITH_CUDA is not in compile_commands.json"
  fi
  if unresolved=$(ldd "$runner" 2>&1 | grep "not found"); then
    fail "runner libraries" "torchship-run cannot load: $unresolved"
  fi
  runner_note="$runner, built $cuda_path by $("$cxx" --version | head -1), CMake $(cmake --version | head -1 | cut -d' ' -f3)${nvcc:+, nvcc $("$nvcc" --version | grep -o 'release [0-9.]*' | cut -d' ' -f2)}"
  say "torchship-run: $runner_note"
  export TORCHSHIP_RUN=$runner
fi

# 5. On the GPU: train, export, test, verify, bench. ---------------------------------------
gpu_steps=(
  "train-model all --artifacts $artifacts"
  "export-model all --format all --artifacts $artifacts"
  "$python -m pytest -m cuda -rA -p no:cacheprovider"
  "verify-model all --device all --artifacts $artifacts --json $report/verify.json"
  "bench-model all --device cuda ${bench_args[*]} --artifacts $artifacts --json $report/bench.json --plot $report/bench-cuda.png"
)
if [ "$dry_run" = 1 ]; then
  for s in "${gpu_steps[@]}"; do say "would run: $s"; done
  exit $(( ${#failed[@]} > 0 ))
fi
export PYTHONUNBUFFERED=1 COLUMNS=200  # rich tables at full width in the report
# env.json first, so it comes back even when a later step runs out of time.
"$python" - "$report/env.json" "$gpu" "$runner_note" "$bundle_note" "${notes[@]}" <<'EOF' >> "$log" 2>&1 || say "could not write env.json; see gpu-check.log"
import importlib.metadata as md, json, platform, sys, torch
def version(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None
import onnxruntime
cuda = torch.cuda.is_available()
json.dump({
    "gpu": sys.argv[2], "runner": sys.argv[3], "bundle": sys.argv[4], "notes": sys.argv[5:],
    "python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version() if cuda else None,
    "device": torch.cuda.get_device_name(0) if cuda else None,
    "capability": list(torch.cuda.get_device_capability(0)) if cuda else None,
    "packages": {d: version(d) for d in ("torchship", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu",
                                         "jsonschema", "numpy", "scikit-learn", "click", "rich", "pytest")},
    "onnxruntime_providers": onnxruntime.get_available_providers(),
}, open(sys.argv[1], "w"), indent=2)
EOF
rm -rf "$artifacts"
step "train" 120 - "$bin/train-model" all --artifacts "$artifacts" || exit 1
step "export" 240 - "$bin/export-model" all --format all --artifacts "$artifacts" || exit 1
step "pytest -m cuda" 240 "$report/pytest.txt" "$python" -m pytest -m cuda -rA -p no:cacheprovider
grep -qE "[0-9]+ passed" "$report/pytest.txt" || fail "pytest -m cuda" "no CUDA test passed"
step "verify" 180 "$work/verify.txt" "$bin/verify-model" all --device all --artifacts "$artifacts" \
  --json "$report/verify.json"
# Every CUDA row that ran must pass, and eager, TorchScript and the runner must have run on
# CUDA for every model; skipped CUDA rows are listed with their reasons.
if [ -s "$report/verify.json" ]; then
  if verdict=$("$python" - "$report/verify.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
cuda = [r for r in rows if r["device"] == "cuda"]
models = sorted({r["model"] for r in rows})
passed = {(r["model"], r["backend"]) for r in cuda if r["status"] == "pass"}
bad = [f'{r["model"]} {r["backend"]} ({r["device"]}): {r["status"]}' for r in rows if r["status"] in ("fail", "error")]
bad += [f"{m} {b} (cuda): did not run" for m in models for b in ("eager", "torchscript", "libtorch")
        if (m, b) not in passed]
skipped = sorted({f'{r["backend"]} (cuda): {r["reason"]}' for r in cuda if r["status"] == "skipped"})
print(f"CUDA rows: {len(passed)} passed for {len(models)} models"
      + (f"; skipped: {'; '.join(skipped)}" if skipped else ""))
if bad or not models:
    print("not proven: " + ("; ".join(bad) if bad else "verify-model reported no rows"))
    sys.exit(1)
EOF
  ); then notes+=("$verdict"); else fail "CUDA parity" "$(echo "$verdict" | paste -sd' ')"; fi
fi
step "bench" 240 "$work/bench.txt" "$bin/bench-model" all --device cuda "${bench_args[@]}" --artifacts "$artifacts" \
  --json "$report/bench.json" --plot "$report/bench-cuda.png"

exit $(( ${#failed[@]} > 0 ))
