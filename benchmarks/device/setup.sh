# Source on a device machine: installs the carried wheels (golfprof's own included) into /tmp/site.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
(cd /tmp && python3 -c "import torch, pandas, golfprof.model.gpt as g; print('torch', torch.__version__, 'gpus', torch.cuda.device_count(), torch.cuda.get_device_name(0))")  # not from the repo root: its golfprof/ folder would shadow the wheel
python3 -c "import pyarrow; print('pyarrow', pyarrow.__version__)" || echo "pyarrow missing"
