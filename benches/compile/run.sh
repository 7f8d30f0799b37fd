#!/usr/bin/env bash
# Compile-time cost of #[guiderail::machine] for machines of 10, 50 and 200
# states. For each size it generates two crates beside each other — the same
# enum with the macro, and the bare enum without it — builds each from clean
# (dependencies already built, in one target directory shared by all) and
# reports the difference: the macro's
# expansion plus type-checking what it generates. The macro's own expansion
# time comes from GUIDERAIL_MACROS_TIME=1, which makes it print it.
#
# Run with: benches/compile/run.sh            (results in docs/benchmarks.md)
# GUIDERAIL_ROOT=DIR measures another checkout (e.g. a clean clone of HEAD).
set -euo pipefail
root="${GUIDERAIL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
work="${TMPDIR:-/tmp}/guiderail-compile-bench"
runs="${RUNS:-5}"
mkdir -p "$work"

gen() { # gen N with_macro
  local n=$1 with=$2
  local dir="$work/m${n}_${with}"
  mkdir -p "$dir/src"
  cat >"$dir/Cargo.toml" <<TOML
[package]
name = "bench_m${n}_${with}"
version = "0.0.0"
edition = "2024"
[dependencies]
guiderail = { path = "$root" }
[workspace]
TOML
  {
    echo "#![allow(dead_code)]"
    if [[ $with == macro ]]; then
      echo "#[guiderail::machine(context = (), max_steps = 100000)]"
    fi
    echo "pub enum M {"
    for ((i = 0; i < n; i++)); do
      local attrs=""
      [[ $i == 0 ]] && attrs+="#[initial] "
      if ((i == n - 1)); then
        attrs+="#[terminal]"
      else
        local next=$((i + 1)) back=$(( i > 0 ? i - 1 : 0 ))
        if [[ $with == macro ]]; then
          if ((i % 5 == 2)); then attrs+="#[gate] "; fi
          attrs+="#[to(S$next, S$back)]"
        fi
      fi
      [[ $with == macro ]] || attrs=""
      echo "    $attrs S$i(u32),"
    done
    echo "}"
  } >"$dir/src/lib.rs"
  echo "$dir"
}

build_time() { # median of $runs clean builds of the crate's own code, seconds
  local dir=$1 times=()
  (cd "$dir" && CARGO_TARGET_DIR="$work/target" cargo build -q) # dependencies, once
  for ((r = 0; r < runs; r++)); do
    touch "$dir/src/lib.rs"
    local t0 t1
    t0=$(date +%s.%N)
    (cd "$dir" && CARGO_TARGET_DIR="$work/target" cargo build -q)
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc)")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

expansion_ms() { # the macro's own expansion time, as it reports it
  local dir=$1
  touch "$dir/src/lib.rs"
  (cd "$dir" && GUIDERAIL_MACROS_TIME=1 CARGO_TARGET_DIR="$work/target" cargo build -vv 2>&1) |
    grep -o 'expanded `M` ([0-9]* states) in [0-9.]* ms' | grep -o '[0-9.]* ms' | head -1
}

printf '| states | expansion | build with macro (s) | bare enum (s) | build cost of the macro (s) |\n|---:|---:|---:|---:|---:|\n'
for n in 10 50 200; do
  dir=$(gen "$n" macro)
  with=$(build_time "$dir")
  bare=$(build_time "$(gen "$n" bare)")
  printf '| %d | %s | %.3f | %.3f | %.3f |\n' "$n" "$(expansion_ms "$dir")" "$with" "$bare" "$(echo "$with - $bare" | bc)"
done
