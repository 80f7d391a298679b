#!/bin/bash
# Packs, here, what bench/gpu/device_check.sh runs on a lent GPU machine, into .devdeps/ (ignored
# by git; carry it with the call): the CLI of build-cuda/ (built here against pip's CUDA LibTorch
# 2.11, ./scripts/build.sh --cuda, which ./scripts/test.sh runs on a machine with nvcc) and the
# CUDA kernels' GPU test (densenet_cuda_tests), stripped, and the shared libraries they need
# beyond LibTorch, CUDA and the C/C++ runtime (yaml-cpp, cairo
# and what cairo needs, libjpeg, libpng, ...), which that machine's image may lack. LibTorch
# there is that machine's own pip torch (2.11.0+cu130, the same wheel), found at run time. The
# program needs glibc 2.34 and g++ 12's libstdc++ or newer there (that image had g++ 13.3).
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/build.sh --cuda  # incremental: nothing to do after ./scripts/test.sh
rm -rf .devdeps
mkdir -p .devdeps/bin .devdeps/lib
strip -o .devdeps/bin/densenet build-cuda/densenet
strip -o .devdeps/bin/densenet_cuda_tests build-cuda/tests/densenet_cuda_tests
# What the loader resolves here, less the wheel's own libraries (torch/lib, nvidia/*), the CUDA
# toolkit's and the C/C++ runtime (the GPU machine's glibc and libstdc++ are as new or newer);
# and Debian's libdnnl.so.2 with what it needs, which the program opens itself (dlopen,
# src/kernels/gemm.cpp), so that ldd does not list it.
dnnl=$(ldconfig -p | awk '$1 == "libdnnl.so.2" && !found {found = $NF} END {print found}')
[[ -n $dnnl ]] || { echo "make_devdeps: no libdnnl.so.2 here (scripts/setup.sh installs it)" >&2; exit 1; }
{ ldd build-cuda/densenet build-cuda/tests/densenet_cuda_tests; echo "libdnnl.so.2 => $dnnl"; ldd "$dnnl"; } |
  awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    case "$path" in */site-packages/* | /usr/local/cuda*) continue ;; esac
    case "$name" in
      ld-linux* | libc.so.* | libm.so.* | libdl.so.* | librt.so.* | libpthread.so.* | libutil.so.*) continue ;;
      libstdc++.so.* | libgcc_s.so.* | libgomp.so.*) continue ;;
    esac
    cp -L "$path" ".devdeps/lib/$name"
  done
echo "$(du -sh .devdeps | cut -f1) in .devdeps: bin/densenet $(du -h .devdeps/bin/densenet | cut -f1)," \
  "bin/densenet_cuda_tests $(du -h .devdeps/bin/densenet_cuda_tests | cut -f1)," \
  "$(ls .devdeps/lib | wc -l) libraries"
