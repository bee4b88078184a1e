#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds and runs a
# consumer twice: through find_package(mslab) and through pkg-config.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR CXX
set -euo pipefail
build=$1 src=$2 cxx=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cmake --install "$build" --prefix "$scratch/prefix" > /dev/null
cmake -S "$src/tests/install/consumer" -B "$scratch/consumer" -DCMAKE_PREFIX_PATH="$scratch/prefix" \
      -DCMAKE_CXX_COMPILER="$cxx" > /dev/null
cmake --build "$scratch/consumer" > /dev/null
"$scratch/consumer/consumer"
pc_dir=$(dirname "$(find "$scratch/prefix" -name mslab.pc | head -n 1)")
flags=$(PKG_CONFIG_PATH=$pc_dir pkg-config --cflags --libs mslab)
# shellcheck disable=SC2086
"$cxx" -o "$scratch/pc_consumer" "$src/tests/install/consumer/main.cpp" $flags
"$scratch/pc_consumer"
