"""torch.export + AOTInductor packages: parity with eager, the embedded contract, refusals.

Compiling costs 7 to 23 s a model on two cores, so twolayernet and dynamicnet are
compiled once per session and every test shares those packages (copies where a test
damages one).
"""

import itertools
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from torchship.errors import ArtifactError, ContractError, ExportError
from torchship.export.aoti import CONTRACT_KEY, DEVICE_KEY, METADATA_SUFFIX, TORCH_KEY, export_aoti
from torchship.export.backends.aoti import AotiBackend
from torchship.models import get_spec

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]

BATCHES = (1, 3, 7, 256)  # the export traces at 2


def trained_model(name: str, artifacts: Path) -> nn.Module:
    model = get_spec(name).build()
    model.load_state_dict(torch.load(artifacts / name / "weights.pt", weights_only=True))
    return model.eval()


def example(name: str) -> dict:
    spec = get_spec(name)
    return spec.example_inputs(spec.export_sizes(), **{i.name: i.scalar_values()[-1] for i in spec.scalar_inputs})


@pytest.fixture(scope="session")
def packages(exported: Path, tmp_path_factory) -> dict[str, Path]:
    """export-model's twolayernet and dynamicnet packages (compiled for the CPU), each alone
    in its own folder."""
    paths = {}
    for name in ("twolayernet", "dynamicnet"):
        path = tmp_path_factory.mktemp(name) / "model.aoti.pt2"
        shutil.copy(exported / name / "model.aoti.pt2", path)
        paths[name] = path
    return paths


def feeds(name: str):
    """Inputs at every batch size in BATCHES, with every combination of scalar values."""
    spec = get_spec(name)
    generator = torch.Generator().manual_seed(7)
    names = [i.name for i in spec.scalar_inputs]
    for batch in BATCHES:
        for values in itertools.product(*(i.scalar_values() for i in spec.scalar_inputs)):
            yield spec.example_inputs({"batch": batch}, generator, **dict(zip(names, values)))


@pytest.mark.parametrize("name", ["twolayernet", "dynamicnet"])
def test_package_matches_eager_at_every_batch_and_depth(name, packages, trained):
    contract = get_spec(name).contract()
    model = trained_model(name, trained)
    backend = AotiBackend().load_file(contract, packages[name])
    checked = 0
    for feed in feeds(name):
        with torch.no_grad():
            expected = model(**feed)
        (output_name,) = [o["name"] for o in contract["outputs"]]
        torch.testing.assert_close(backend.run(feed)[output_name], expected, **contract["tolerance"])
        checked += 1
    assert checked == len(BATCHES) * (4 if name == "dynamicnet" else 1)


def test_contract_comes_back_from_the_loaded_package(packages):
    metadata = torch._inductor.aoti_load_package(str(packages["dynamicnet"])).get_metadata()
    assert json.loads(metadata[CONTRACT_KEY]) == get_spec("dynamicnet").contract()
    assert metadata[TORCH_KEY] == torch.__version__
    assert metadata[DEVICE_KEY] == "cpu"


def test_compile_writes_nothing_but_the_package(packages):
    for path in packages.values():
        assert list(path.parent.iterdir()) == [path]


def test_omitted_optional_input_is_refused(packages):
    backend = AotiBackend().load_file(get_spec("dynamicnet").contract(), packages["dynamicnet"])
    with pytest.raises(ContractError, match=r"^input 'depth': the aoti export takes every input; pass it explicitly$"):
        backend.run({"x": torch.randn(2, 1000)})


class DataDependentBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # Python control flow on a value: torch.export cannot capture it
            return x * 2
        return x


def test_model_torch_export_cannot_capture_is_refused_in_one_line(tmp_path):
    contract = {"contract_version": 2, "model": "branchy",
                "inputs": [{"name": "x", "kind": "tensor", "dtype": "float32", "shape": ["batch", 3]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 3]}],
                "output_structure": "tensor", "axes": {"batch": {"min": 1, "max": 64}},
                "tolerance": {"atol": 1e-5, "rtol": 1e-4}}
    with pytest.raises(ExportError) as refused:
        export_aoti(DataDependentBranch(), contract, {"x": torch.randn(2, 3)}, tmp_path / "model.aoti.pt2")
    message = refused.value.message
    assert "\n" not in message
    assert message.startswith("branchy: torch.export cannot capture it (")
    assert message.endswith("use --format torchscript (script mode keeps Python control flow)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_export_for_cuda_without_a_gpu_is_refused(trained, tmp_path):
    with pytest.raises(ExportError, match="no CUDA device on this machine"):
        export_aoti(trained_model("twolayernet", trained), get_spec("twolayernet").contract(),
                    example("twolayernet"), tmp_path / "model.aoti.pt2", device="cuda")


def with_metadata(package: Path, copy: Path, **changes: str) -> Path:
    """A copy of `package` whose metadata says otherwise (what another machine would write)."""
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(copy, "w") as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename.endswith(METADATA_SUFFIX):
                data = json.dumps({**json.loads(data), **changes}).encode()
            target.writestr(entry, data)
    return copy


@pytest.mark.parametrize("changes, refusal", [
    ({DEVICE_KEY: "cuda"}, r"^model\.aoti\.pt2: compiled for cuda, asked to run on cpu; an aoti package runs "
                           r"only on the device it was compiled for; re-export with 'export-model twolayernet "
                           r"--format aoti'$"),
    ({TORCH_KEY: "2.11.0"}, r"^model\.aoti\.pt2: made with torch 2\.11\.0, but this is torch "),
    ({CONTRACT_KEY: "{}"}, r"^model\.aoti\.pt2: the contract inside the package differs from manifest\.json"),
])
def test_package_from_elsewhere_is_refused_before_loading(changes, refusal, packages, tmp_path):
    copy = with_metadata(packages["twolayernet"], tmp_path / "model.aoti.pt2", **changes)
    with pytest.raises(ArtifactError, match=refusal):
        AotiBackend().load_file(get_spec("twolayernet").contract(), copy)


@pytest.mark.skipif(not torch.cpu._is_avx2_supported(), reason="needs an x86 CPU with AVX2")
def test_package_for_an_instruction_set_this_cpu_lacks_is_refused(packages, tmp_path, monkeypatch):
    copy = with_metadata(packages["twolayernet"], tmp_path / "model.aoti.pt2", AOTI_CPU_ISA="AVX2")
    monkeypatch.setattr(torch.cpu, "_is_avx2_supported", lambda: False)  # an older CPU than the compiler's
    with pytest.raises(ArtifactError, match=r"^model\.aoti\.pt2: compiled for the AVX2 instruction set; "
                                            r"this CPU lacks AVX2; re-export with 'export-model twolayernet "
                                            r"--format aoti'$"):
        AotiBackend().load_file(get_spec("twolayernet").contract(), copy)


def test_damaged_package_is_refused_before_loading(packages, tmp_path):
    original = packages["twolayernet"].read_bytes()
    with zipfile.ZipFile(packages["twolayernet"]) as archive:
        library = next(e for e in archive.infolist() if e.filename.endswith(".so"))
    inside = library.header_offset + 1024 + library.compress_size // 2  # past the entry's header
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("model/data.pkl", b"something else")
    damaged = {"truncated": original[: len(original) // 2],
               "flipped": original[:inside] + bytes([original[inside] ^ 0xFF]) + original[inside + 1:],
               "not a zip": b"PK\x03\x04 not a package",
               "foreign zip": foreign.read_bytes()}
    contract = get_spec("twolayernet").contract()
    for kind, data in damaged.items():
        path = tmp_path / kind.replace(" ", "-") / "model.aoti.pt2"
        path.parent.mkdir()
        path.write_bytes(data)
        with pytest.raises(ArtifactError, match=r"^model\.aoti\.pt2: .*re-export with") as refused:
            AotiBackend().load_file(contract, path)
        assert "\n" not in refused.value.message, kind


def test_exporters_temp_name_loads(packages, tmp_path):
    """The exporter proves a package under its temp name, which does not end in .pt2."""
    temp = tmp_path / ".model.aoti.pt2.0123456789ab.tmp"
    shutil.copy(packages["twolayernet"], temp)
    backend = AotiBackend().load_file(get_spec("twolayernet").contract(), temp)
    assert backend.run({"x": torch.zeros(1, 1000)})["y"].shape == (1, 10)


@pytest.mark.cuda
def test_cuda_package_matches_eager_and_refuses_the_cpu(trained, tmp_path):
    name = "dynamicnet"
    contract, model = get_spec(name).contract(), trained_model(name, trained)
    path = tmp_path / "model.aoti.pt2"
    export_aoti(model, contract, example(name), path, device="cuda")
    backend = AotiBackend(device="cuda").load_file(contract, path)
    model = model.cuda()
    for feed in feeds(name):
        with torch.no_grad():
            expected = model(**{k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in feed.items()})
        torch.testing.assert_close(backend.run(feed)["y"], expected.cpu(), **contract["tolerance"])
    with pytest.raises(ArtifactError, match="compiled for cuda, asked to run on cpu"):
        AotiBackend().load_file(contract, path)
