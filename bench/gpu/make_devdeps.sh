#!/bin/bash
# Gathers, from this Debian machine, what the build needs beyond LibTorch (libjpeg, libpng,
# zlib headers and static libraries; nlohmann-json's headers and CMake package) into .devdeps/,
# for a GPU machine whose image has CUDA LibTorch but none of Debian's -dev packages.
# Static C libraries, so nothing has to be found at run time there. .devdeps/ is ignored by git.
set -euo pipefail
cd "$(dirname "$0")/../.."
for pkg in libjpeg62-turbo-dev libpng-dev zlib1g-dev nlohmann-json3-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || { echo "missing $pkg: run scripts/setup.sh first" >&2; exit 1; }
done
rm -rf .devdeps
mkdir -p .devdeps/include .devdeps/lib .devdeps/share/cmake
cp /usr/include/{jpeglib.h,jmorecfg.h,jerror.h,png.h,pngconf.h,pnglibconf.h,zlib.h,zconf.h} \
  /usr/include/x86_64-linux-gnu/jconfig.h .devdeps/include/
cp -r /usr/include/nlohmann .devdeps/include/
cp -r /usr/share/cmake/nlohmann_json .devdeps/share/cmake/
cp /usr/lib/x86_64-linux-gnu/{libjpeg.a,libpng16.a,libz.a} .devdeps/lib/
du -sh .devdeps
