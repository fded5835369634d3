"""AOTInductor `.pt2` packages in Python, through torch._inductor.aoti_load_package."""

import json
from pathlib import Path

import torch

from torchship.compat import check_artifact_torch
from torchship.errors import ArtifactError, first_line
from torchship.export.bounds import check_json_text
from torchship.export.program import graph_inputs
from torchship.export.aoti import (CONTRACT_KEY, CPU_ISA_KEY, DEVICE_KEY, TORCH_KEY, contract_of,
                                   read_metadata)
from torchship.export.backends.base import Backend
from torchship.export.contract import name_flat_outputs

# AOTI_CPU_ISA's parts (inductor's vector ISAs, upper case) -> torch.cpu's check for each.
ISA_CHECKS = {"AVX2": "_is_avx2_supported", "AVX512": "_is_avx512_supported",
              "AVX512_VNNI": "_is_vnni_supported", "AMX_TILE": "_is_amx_tile_supported"}
FIX = "re-export with 'export-model {model} --format aoti{device}'"


class AotiBackend(Backend):
    """A package is compiled for one device; it runs there or is refused, never moved."""

    name = "aoti"
    format = "aoti"

    def _load(self, path) -> None:
        path = Path(path)
        model = self.contract["model"]
        device = self.device.split(":")[0]
        fix = FIX.format(model=model, device="" if device == "cpu" else f" --device {device}")
        metadata = read_metadata(path, fix)  # zip CRCs and metadata, before the native loader sees it
        compiled_for = metadata.get(DEVICE_KEY)
        if compiled_for != device:
            raise ArtifactError(f"{path.name}: compiled for {compiled_for}, asked to run on {self.device}; "
                                f"an aoti package runs only on the device it was compiled for; {fix}")
        check_artifact_torch(metadata.get(TORCH_KEY), path.name, fmt="pt2")
        if device == "cpu" and (missing := _missing_isa(metadata.get(CPU_ISA_KEY, ""))):
            raise ArtifactError(f"{path.name}: compiled for the {metadata[CPU_ISA_KEY]} instruction set; "
                                f"this CPU lacks {', '.join(missing)}; {fix}")
        if _json(metadata.get(CONTRACT_KEY)) != contract_of(self.contract):
            raise ArtifactError(f"{path.name}: the contract inside the package differs from "
                                f"manifest.json; {fix}")
        index = int(self.device.split(":")[1]) if ":" in self.device else -1
        # The loader wants a name ending in .pt2 (an exporter's temp file does not): a
        # buffer it copies to one. Where the name fits, it reads the file in place.
        source = str(path) if path.suffix == ".pt2" else open(path, "rb")
        try:
            self.loader = torch._inductor.aoti_load_package(source, device_index=index).loader
        except Exception as e:  # the native loader raises RuntimeError with its own text
            raise ArtifactError(f"{path.name}: AOTInductor cannot load it: {first_line(e)}; {fix}") from None
        finally:
            if not isinstance(source, str):
                source.close()

    def _run(self, feed: dict) -> list[torch.Tensor]:
        return self.loader.boxed_run(graph_inputs(self.contract, feed, "aoti", self.device))

    def _flatten(self, returned: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The package returns forward's outputs flattened (pytree order: contract order)."""
        return name_flat_outputs(self.contract, [t.cpu() for t in returned])


def _missing_isa(isa: str) -> list[str]:
    """The parts of a package's instruction set (AOTI_CPU_ISA) this CPU lacks, asked of
    torch's cpuinfo (inductor's own check compiles test programs: seconds). Parts torch
    cannot ask about (other architectures) are not judged here."""
    return [part for part in isa.split() if part in ISA_CHECKS and not getattr(torch.cpu, ISA_CHECKS[part])()]


def _json(text: str | None):
    try:
        if text is None:
            return None
        check_json_text(text, "the package's contract", "re-export it")
        return json.loads(text)
    except (ValueError, ArtifactError):  # read as no contract: the caller refuses that in one line
        return None
