#!/usr/bin/env bash
# Build and test the C++, Go and Julia bindings against an already built losskit library.
#
#   cargo build --release && bindings/run_tests.sh            # or: cargo build && ... debug
#   bindings/run_tests.sh [release|debug]                      # default: the newer build
#   LOSSKIT_BINDINGS="cpp go" bindings/run_tests.sh            # a subset (cpp, go, julia)
#
# Needs g++, cmake (>= 3.16), pkg-config, go (>= 1.19), node + npm. Every step runs; the
# script exits non-zero when any failed. Nothing is installed outside the repository:
# the C++ build goes to bindings/cpp/build, Go's caches to bindings/go/.cache, the npm
# packages to bindings/julia/check/node_modules (all git-ignored).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile="${1:-auto}"
langs="${LOSSKIT_BINDINGS:-cpp go julia}"

case "$profile" in
  release | debug) libdir="$root/target/$profile" ;;
  auto)
    rel="$root/target/release/liblosskit.so"
    dbg="$root/target/debug/liblosskit.so"
    if [[ -f "$rel" && (! -f "$dbg" || "$rel" -nt "$dbg") ]]; then
      libdir="$root/target/release"
    else
      libdir="$root/target/debug"
    fi
    ;;
  *) echo "usage: $0 [release|debug]" >&2; exit 2 ;;
esac
if [[ ! -f "$libdir/liblosskit.so" ]]; then
  echo "no $libdir/liblosskit.so: run cargo build first" >&2
  exit 2
fi

# Cargo does not create the SONAME link (liblosskit.so.MAJOR.MINOR.PATCH before 1.0) that
# programs linked against the library ask the loader for.
ver() { sed -n "s/^#define LK_VERSION_$1 \([0-9]*\)$/\1/p" "$root/include/losskit.h"; }
soname="liblosskit.so.$(ver MAJOR).$(ver MINOR).$(ver PATCH)"
ln -sfn liblosskit.so "$libdir/$soname"
echo "== library: $libdir/liblosskit.so ($soname)"

failed=()
step() {
  local name="$1"
  shift
  echo "== $name: $*"
  if ! "$@"; then
    echo "!! FAILED: $name"
    failed+=("$name")
  fi
}
want() { [[ " $langs " == *" $1 "* ]]; }

if want cpp; then
  tmp="$(mktemp -d)"
  printf '#include <losskit.h>\n#include <losskit_plugin.h>\nint main(void) { return lk_abi_version() == LK_ABI_VERSION && LK_PLUGIN_ABI_VERSION ? 0 : 1; }\n' > "$tmp/h.c"
  step "header as C99" gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -I"$root/include" -fsyntax-only "$tmp/h.c"
  step "header as C11" gcc -std=c11 -Wall -Wextra -Wpedantic -Werror -I"$root/include" -fsyntax-only "$tmp/h.c"
  rm -rf "$tmp"
  build="$root/bindings/cpp/build"
  step "cpp configure" cmake -S "$root/bindings/cpp" -B "$build" -DLOSSKIT_LIB_DIR="$libdir"
  step "cpp build" cmake --build "$build" -j "$(nproc)"
  step "cpp ctest" ctest --test-dir "$build" --output-on-failure
fi

if want go; then
  cache="$root/bindings/go/.cache"
  mkdir -p "$cache/tmp"
  export GOCACHE="$cache/go-build" GOPATH="$cache/gopath" GOTMPDIR="$cache/tmp" GOPROXY=off GOFLAGS=-mod=mod
  export GOTOOLCHAIN=local GO111MODULE=on
  # -L and the rpath of the chosen build come first (CGO_LDFLAGS precede #cgo LDFLAGS).
  export CGO_LDFLAGS="-g -O2 -L$libdir -Wl,-rpath,$libdir"
  gofmt_check() {
    local out
    out="$(cd "$root/bindings/go" && gofmt -l .)" || return 1
    [[ -z "$out" ]] || { echo "not gofmt-formatted: $out"; return 1; }
  }
  step "go fmt" gofmt_check
  step "go vet" bash -c "cd '$root/bindings/go' && go vet ./..."
  step "go test" bash -c "cd '$root/bindings/go' && go test -count=1 ./..."
  step "go test (race, cgocheck=2)" bash -c "cd '$root/bindings/go' && GODEBUG=cgocheck=2 go test -count=1 -race ./..."
fi

if want julia; then
  check="$root/bindings/julia/check"
  if [[ ! -d "$check/node_modules/tree-sitter-julia" ]]; then
    step "npm ci" bash -c "cd '$check' && npm ci --ignore-scripts --no-audit --no-fund"
  fi
  step "julia parse" node "$check/parse_julia.mjs"
  step "julia ccall signatures" node "$check/check_ccalls.mjs"
fi

if ((${#failed[@]})); then
  echo "== bindings: ${#failed[@]} step(s) failed: ${failed[*]}"
  exit 1
fi
echo "== bindings: all steps passed ($langs)"
