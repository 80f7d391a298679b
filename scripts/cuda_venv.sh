# Sourced by setup.sh and build.sh: where pip's CUDA LibTorch lives (a virtual environment outside
# the tree, so that it is never carried, copied or cleaned with it) and which torch it holds.
densenet_torch_version=2.11.0
densenet_cuda_venv=${DENSENET_CUDA_VENV:-$HOME/.cache/densenet/torch-$densenet_torch_version}
