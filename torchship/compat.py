"""The one place for what differs between the torch versions torchship supports.

pyproject.toml declares `torch>=2.11,<2.16`; the tested pin, 2.13.0, is in
constraints.txt. What the code needs to know about that range lives here:

1. Which torch made an artifact, and whether the running torch can load it
   (`check_artifact_torch`). Every manifest records `versions.torch` at export.

   ========================  =============================================  ==========================================
   format (`fmt`)            loads when the artifact was made with          why
   ========================  =============================================  ==========================================
   ``pt2`` (AOTInductor)     the same major.minor as the running torch      the package holds a shared library compiled
                             (2.13.x made, 2.13.y runs); unknown: refused   against that torch's C shim and kernels;
                                                                            PyTorch promises no loading across minors,
                                                                            and the .pt2 records no torch version
   ``torchscript``           any torch older than or equal to the running   newer torch loads older archives (operator
                             one, or any torch in the supported range;      upgraders); the archive format is frozen
                             unknown: allowed                               across 2.11-2.15, so an archive from a
                                                                            newer torch in the range loads as well
   ``onnx``                  any torch, known or not                        torch is not involved in loading: onnx and
                                                                            onnxruntime read the file and judge its IR
                                                                            and opset versions themselves
   ========================  =============================================  ==========================================

   A refusal is one line naming the artifact, both torch versions and what to do.

2. Warnings that changed between versions (`jit_deprecation_category`).

Checked against the Python sources of torch 2.11.0, 2.12.0, 2.13.0, 2.14.1 and
2.15.0 and found identical across the range, so torchship calls them directly with
no shim: `torch.onnx.export(..., dynamo=True, dynamic_shapes=..., opset_version=...,
input_names=..., output_names=...)` and `ONNXProgram.save(path, external_data=...)`;
the exporter's default opset (20, torchlib at 18) and its `while_loop` -> ONNX `Loop`
translation; `torch.export.Dim`; `torch._inductor.aoti_compile_and_package(ep, *,
package_path=, inductor_configs=)`; `torch._inductor.aoti_load_package(path,
run_single_threaded=False, device_index=-1)` (2.15 adds keyword-only `num_runners`
and `use_stream_affinity`: do not pass them); the C++
`torch::inductor::AOTIModelPackageLoader(path, model_name, run_single_threaded,
num_runners, device_index)` (2.15 appends `use_stream_affinity`, defaulted).
"""

from __future__ import annotations

import re

from torchship.errors import ArtifactError

#: The supported range, as declared in pyproject.toml: lowest (major, minor)
#: included, highest excluded. tests/test_compat.py holds the two equal.
SUPPORTED = ((2, 11), (2, 16))
#: The version the README's commands install (constraints.txt) and CI tests.
TESTED = "2.13.0"

#: The formats and their rules (see the module docstring): "same-minor" needs the
#: made-with major.minor to equal the running one; "older-or-in-range" accepts any
#: torch up to the running one and any torch in SUPPORTED; "any" accepts all.
POLICY = {
    "pt2": "same-minor",
    "torchscript": "older-or-in-range",
    "onnx": "any",
}
_SUFFIXES = {".pt2": "pt2", ".onnx": "onnx", ".pt": "torchscript"}

_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(version: str | None) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a torch version string ('2.11.0+cu130', '2.16.0.dev20260101',
    '2.15.0a0+git1234'); None when it is missing or not a version."""
    match = _VERSION.match(version or "")
    if not match:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def running_torch() -> str:
    import torch

    return torch.__version__


def in_supported_range(version: str | None) -> bool:
    """Whether a torch version lies in the range pyproject.toml declares."""
    parsed = parse_version(version)
    return parsed is not None and SUPPORTED[0] <= parsed[:2] < SUPPORTED[1]


def supported_range() -> str:
    (lo_major, lo_minor), (hi_major, hi_minor) = SUPPORTED
    return f">={lo_major}.{lo_minor},<{hi_major}.{hi_minor}"


def format_of(what: str) -> str:
    """The POLICY key for an artifact file name (model.pt2, model.onnx, model.torchscript.pt)."""
    for suffix, fmt in _SUFFIXES.items():
        if str(what).endswith(suffix):
            return fmt
    raise ValueError(f"no torch-version policy for {what!r}; pass fmt= one of {sorted(POLICY)}")


def check_artifact_torch(made_with: str | None, what: str, *, fmt: str | None = None,
                         running: str | None = None) -> None:
    """Return when the running torch can load an artifact made with torch `made_with`.

    `what` names the artifact in the message (a path or file name; its suffix picks
    the format unless `fmt` is given); `running` defaults to torch.__version__.
    Raises ArtifactError with one line otherwise (see POLICY and the module docstring).
    """
    fmt = fmt or format_of(what)
    if fmt not in POLICY:
        raise ValueError(f"no torch-version policy for format {fmt!r}; known: {sorted(POLICY)}")
    rule = POLICY[fmt]
    if rule == "any":
        return
    running = running or running_torch()
    made, now = parse_version(made_with), parse_version(running)
    if now is None:
        raise ValueError(f"cannot read the running torch version {running!r}")

    if rule == "same-minor":
        if made is not None and made[:2] == now[:2]:
            return
        made_text = f"torch {made_with}" if made_with else "an unrecorded torch version"
        wanted = f"{made[0]}.{made[1]}" if made is not None else "the one that made it"
        raise ArtifactError(
            f"{what}: made with {made_text}, but this is torch {running}; an AOTInductor package "
            f"runs only on the torch major.minor that compiled it; re-export it with this torch "
            f"or load it with torch {wanted}")

    # "older-or-in-range"
    if made is None or made[:2] <= now[:2] or in_supported_range(made_with):
        return
    raise ArtifactError(
        f"{what}: made with torch {made_with}, newer than this torch {running} and outside the "
        f"range torchship supports ({supported_range()}), so it may use operators this torch "
        f"cannot read; re-export it with this torch or load it with torch >= "
        f"{made[0]}.{made[1]}")


def jit_deprecation_category(version: str | None = None) -> type[Warning]:
    """The warning class torch.jit.{script,trace,save,load,...} deprecations use.

    DeprecationWarning (hidden outside __main__ and tests) up to torch 2.13;
    FutureWarning (shown to every user) from 2.14 on. Same messages:
    "`torch.jit.X` is deprecated. Please switch to ...".
    """
    parsed = parse_version(version or running_torch())
    return FutureWarning if parsed is not None and parsed[:2] >= (2, 14) else DeprecationWarning
