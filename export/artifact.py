"""An exported model on disk: its folder, manifest and files, integrity-checked on use."""

from dataclasses import dataclass
from pathlib import Path

from torchship.compat import check_artifact_torch
from torchship.export.bounds import check_torch_archive
from torchship.errors import ArtifactError
from torchship.export.schema_check import check_manifest
from torchship.models import get_spec
from torchship.models.artifacts import read_json, sha256_file
from torchship.models.spec import ModelSpec

MANIFEST = "manifest.json"
SAMPLES = "samples.pt"
FILES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx", "aoti": "model.aoti.pt2"}
FORMATS = tuple(FILES)
COMPAT_FORMATS = {"aoti": "pt2"}  # torchship.compat's name for a format, where it differs


@dataclass(frozen=True)
class Artifact:
    spec: ModelSpec
    folder: Path
    manifest: dict

    @classmethod
    def open(cls, artifacts: Path, name: str) -> "Artifact":
        folder = Path(artifacts) / name
        fix = f"run 'export-model {name} --format all' first"
        spec = get_spec(name)
        manifest = read_json(folder / MANIFEST, f"export of {name!r} (manifest.json)", fix)
        check_manifest(manifest, folder / MANIFEST, f"re-export with 'export-model {name} --format all'")
        return cls(spec, folder, manifest)

    @property
    def contract(self) -> dict:
        return self.manifest

    def has(self, fmt: str) -> bool:
        return fmt in self.manifest.get("formats", {})

    def file(self, fmt: str) -> Path:
        """The format's file after its integrity checks; a clear error when it fails one."""
        name = self.spec.name
        if not self.has(fmt):
            raise ArtifactError(f"no {fmt} export of {name!r} in {self.folder}; "
                            f"run 'export-model {name} --format {fmt}' first")
        path = self.folder / self.manifest["formats"][fmt]["file"]
        check_integrity(path, self.manifest["formats"][fmt]["sha256"], f"export-model {name} --format {fmt}")
        check_artifact_torch(self.manifest["versions"]["torch"], str(path), fmt=COMPAT_FORMATS.get(fmt, fmt))
        return path

    def samples(self) -> Path:
        path = self.folder / self.manifest["samples"]["file"]
        check_integrity(path, self.manifest["samples"]["sha256"], f"export-model {self.spec.name}")
        return path


def check_integrity(path: Path, sha256: str | None, fix: str) -> None:
    """sha256 against the manifest; for torch's zip archives (TorchScript, samples) every
    entry's CRC32 and every pickled tensor's bounds (export.bounds), before torch sees them.

    The archive checks also guard a lone copied file; the sha256 also covers bytes the
    zip format leaves unchecked (headers, names). A .pt2 package is checked by its backend.
    """
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; re-export with '{fix}'")
    if sha256 is not None and (got := sha256_file(path)) != sha256:
        raise ArtifactError(f"{path.name}: sha256 does not match manifest.json (expected {sha256[:12]}…, "
                        f"got {got[:12]}…); re-export with '{fix}'")
    if path.suffix == ".pt":  # torch's zip container: TorchScript archives, samples
        check_torch_archive(path, f"re-export with '{fix}'")
