#!/bin/sh
# usage: run.sh BUILD_DIR CONSUMER_SOURCE WORK_DIR GENERATOR CXX
# Installs the build into WORK_DIR/prefix, then configures, builds and runs the consumer project
# against it with find_package(densenet) only (no path into the source or build tree).
set -e
build=$1 source=$2 work=$3 generator=$4 cxx=$5
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix" > "$work.install.log" 2>&1 \
  || { cat "$work.install.log"; exit 1; }
launcher=""
if command -v ccache > /dev/null; then launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"; fi
cmake -S "$source" -B "$work/build" -G "$generator" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$cxx" $launcher -DCMAKE_PREFIX_PATH="$work/prefix" > /dev/null
cmake --build "$work/build"
"$work/build/consumer"
