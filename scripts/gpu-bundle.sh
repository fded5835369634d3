#!/usr/bin/env bash
# Prepares, on a machine with network, what scripts/gpu-check.sh needs on an offline GPU
# machine that the machine itself lacks (see docs/gpu.md):
#   BUNDLE/whl/  jsonschema and its dependencies as cp312 manylinux wheels
#   BUNDLE/deb/  the Debian packages the C++ runner builds with (headers, .so links,
#                pkg-config files), unpacked there with `dpkg -x` into a prefix, never into /
#   BUNDLE/MANIFEST.txt  what is in it, from where, with sha256
# BUNDLE defaults to build/gpu-bundle (git-ignored: build/). Usage:
#   scripts/gpu-bundle.sh [BUNDLE]
# Environment: GPU_PYTHON_VERSION (default 3.12), PYTHON (default .venv/bin/python if
# present, else python3). Needs pip, apt-get (apt-get update runs when its lists are
# empty) and dpkg-deb. Downloads about 6 MB; the whole bundle travels with the working
# tree to the device machine, whose limit is 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

bundle=${1:-build/gpu-bundle}
py_version=${GPU_PYTHON_VERSION:-3.12}
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi

# Python packages the GPU machine's image lacks (KINDS.md lists what it has: onnx,
# onnxscript, onnxruntime, click, rich, scikit-learn, matplotlib, pytest are there).
wheels=(jsonschema)
# The C++ runner's build dependencies (scripts/system-deps.sh), with the runtime
# libraries their -dev packages' .so links point at, and pkg-config (pkgconf) for
# CMake's pkg_check_modules in case the machine has none.
debs=(libcli11-dev nlohmann-json3-dev libzip-dev libzip4 libssl-dev libssl3 pkgconf-bin libpkgconf3)

# Pin each wheel to the version the test suite runs with here, when the venv has it.
pinned=()
for w in "${wheels[@]}"; do
  v=$("$python" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$w" 2>/dev/null || true)
  pinned+=("$w${v:+==$v}")
done

platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
target=(--only-binary=:all: --python-version "$py_version" --implementation cp "${platforms[@]}")

rm -rf "$bundle"
mkdir -p "$bundle/whl" "$bundle/deb"

echo "gpu-bundle: wheels for cp${py_version/./}: ${pinned[*]} (and what they need)"
quiet_pip() { "$python" -m pip --disable-pip-version-check "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
quiet_pip download --quiet "${target[@]}" -d "$bundle/whl" "${pinned[@]}"

echo "gpu-bundle: Debian packages: ${debs[*]}"
download_debs() {
  (cd "$bundle/deb" || exit 1; apt-get download "${debs[@]}" 2>&1) | { grep -v "^Get:\|unsandboxed" || true; }
}
download_debs
if [ "$(find "$bundle/deb" -name '*.deb' | wc -l)" -lt "${#debs[@]}" ]; then
  echo "gpu-bundle: apt-get download missed some; running apt-get update once" >&2
  apt-get update -qq
  rm -f "$bundle"/deb/*.deb
  download_debs
fi
for p in "${debs[@]}"; do
  compgen -G "$bundle/deb/${p}_*.deb" >/dev/null || { echo "Error: apt-get download got no $p; see apt-cache policy $p" >&2; exit 1; }
done

# The bundle must be enough on its own: resolve every wheel offline for the target
# Python, from the bundle alone (nothing is installed: --dry-run).
quiet_pip install --quiet --dry-run --ignore-installed --no-index \
  --find-links "$bundle/whl" --target "$(mktemp -d)" "${target[@]}" "${pinned[@]}" \
  || { echo "Error: the wheels in $bundle/whl do not resolve offline for Python $py_version" >&2; exit 1; }

{
  echo "# torchship GPU bundle, made $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release) $(uname -m)"
  echo "# wheels: pip download for cp${py_version/./} manylinux x86_64; debs: apt-get download"
  echo "# sha256  file  version"
  for f in "$bundle"/whl/*.whl; do
    echo "$(sha256sum "$f" | cut -d' ' -f1)  whl/$(basename "$f")"
  done
  for f in "$bundle"/deb/*.deb; do
    echo "$(sha256sum "$f" | cut -d' ' -f1)  deb/$(basename "$f")  $(dpkg-deb -f "$f" Version)"
  done
} > "$bundle/MANIFEST.txt"

size=$(du -sk "$bundle" | cut -f1)
echo "gpu-bundle: $(find "$bundle" -name '*.whl' | wc -l) wheels, $(find "$bundle" -name '*.deb' | wc -l) debs, ${size} KiB in $bundle"
if [ "$size" -gt 32768 ]; then
  echo "Error: $bundle is ${size} KiB; the device machine takes 64 MiB with the working tree" >&2
  exit 1
fi
echo "gpu-bundle: to use it there, name $bundle in the device run's carry and run scripts/gpu-check.sh"
