"""Triton Inference Server: model repositories generated from torchship contracts, and live serving.

- repository.py: contract -> config.pbtxt (one Triton model per exported format), written atomically.
- validate.py: offline checks with Triton's own model_config proto plus the contract.
- server.py: a real tritonserver (the one nvidia-pytriton bundles) on 127.0.0.1.
- model.py: the Python-backend model serve-model gives Triton: a torchship backend, contract-checked.
- client.py: tritonclient calls by the contract's names.
- cli.py: triton-repo, triton-check, serve-model.

Importing this package needs neither tritonclient nor tritonserver; the functions that do
say how to install them.
"""
