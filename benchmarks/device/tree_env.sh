# Source from the repo root on a device machine: the carried wheels into /tmp/site and golfprof imported from this
# tree through symlinks in /tmp/gp (the golfprof.X -> X/ mapping of pyproject.toml), then the NCCL settings.
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >/dev/null 2>&1
mkdir -p /tmp/gp/golfprof
for f in golfprof/*; do ln -sf "$PWD/$f" /tmp/gp/golfprof/; done
python3 - <<'PY'
import os, tomllib
dirs = tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]["package-dir"]
for name, d in dirs.items():
    link = "/tmp/gp/" + name.replace(".", "/")
    if name != "golfprof" and not os.path.lexists(link):  # a warm machine's second call finds them made
        os.symlink(os.path.abspath(d), link)
PY
export PYTHONPATH=/tmp/gp:/tmp/site PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
