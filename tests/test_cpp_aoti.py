"""torchship-run on AOTInductor `.pt2` packages: told from TorchScript by their contents,
checked like them (zip CRCs, sidecar sha256, the contract inside), run with scalars as
0-dim tensors, and refused in one line when damaged, foreign, or made for another
device, machine, CPU or torch. The packages are export-model's (the `exported` fixture)."""

import hashlib
import json
import random
import re
import shutil
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from tests.conftest import SEEDS
from tests.test_fuzz_cpp import WORKERS, probe, tally
from torchship.export.aoti import CONTRACT_KEY, CPU_ISA_KEY, DEVICE_KEY, METADATA_SUFFIX, TORCH_KEY
from torchship.export.cpp_runner import run_runner
from torchship.models import get_spec

pytestmark = [pytest.mark.cpp, pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]

SEED = 20261201
MUTATIONS = 260
TRUNCATIONS = 40


@pytest.fixture(scope="session")
def cpp_packages(exported: Path, tmp_path_factory) -> dict[str, Path]:
    """export-model's twolayernet and dynamicnet packages, each alone in a folder with its
    samples.pt (no manifest.json: the zip checks alone stand guard)."""
    paths = {}
    for name in ("twolayernet", "dynamicnet"):
        folder = tmp_path_factory.mktemp(name)
        for file in ("model.aoti.pt2", "samples.pt"):
            shutil.copy(exported / name / file, folder / file)
        paths[name] = folder / "model.aoti.pt2"
    return paths


@pytest.mark.parametrize("name", SEEDS)
def test_check_passes_beside_the_manifest(name, exported):
    """The export's own folder: the sidecar sha256 is checked too."""
    result = run_runner([exported / name / "model.aoti.pt2", "--check", exported / name / "samples.pt", "--json"])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["model"] == name


def refusal(result) -> str:
    """The runner's one stderr line after a refusal (exit 1, nothing on stdout)."""
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and result.stdout == "" and len(lines) == 1, result.stderr
    assert lines[0].startswith("torchship-run: error: ")
    return lines[0].removeprefix("torchship-run: error: ")


@pytest.mark.parametrize("name", ["twolayernet", "dynamicnet"])
def test_check_passes_every_golden_case_alone(name, cpp_packages):
    package = cpp_packages[name]
    result = run_runner([package, "--check", package.with_name("samples.pt"), "--json"])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["model"] == name and len(report["cases"]) >= 3


def test_inputs_by_name_give_eager_outputs_with_scalars_as_tensors(cpp_packages, exported, tmp_path):
    spec = get_spec("dynamicnet")
    model = spec.build()
    model.load_state_dict(torch.load(exported / "dynamicnet" / "weights.pt", weights_only=True))
    for depth in (0, 3):
        feed = spec.example_inputs({"batch": 5}, torch.Generator().manual_seed(depth), depth=depth)
        torch.save(feed, tmp_path / "in.pt")
        result = run_runner([cpp_packages["dynamicnet"], "--inputs", tmp_path / "in.pt", "--output", tmp_path / "out.pt"])
        assert result.returncode == 0, result.stderr
        outputs = torch.load(tmp_path / "out.pt", weights_only=True)
        with torch.no_grad():
            expected = model.eval()(**feed)
        assert list(outputs) == ["y"]
        torch.testing.assert_close(outputs["y"], expected, atol=1e-5, rtol=1e-4)


def test_an_absent_optional_input_is_refused_not_guessed(cpp_packages, tmp_path):
    torch.save({"x": torch.randn(2, 1000)}, tmp_path / "in.pt")
    result = run_runner([cpp_packages["dynamicnet"], "--inputs", tmp_path / "in.pt", "--output", tmp_path / "out.pt"])
    assert refusal(result) == "input 'depth': the aoti package takes every input; pass it explicitly"


def test_bench_reports_the_format_and_a_second_shape(cpp_packages):
    result = run_runner([cpp_packages["dynamicnet"], "--bench", "20", "--shape", "batch=64", "--int", "depth=3", "--json"])
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["format"] == "aoti" and record["batch"] == 64 and record["median_us"] > 0


def test_sidecar_manifest_sha256_is_checked(cpp_packages, tmp_path):
    package = tmp_path / "model.aoti.pt2"
    shutil.copy(cpp_packages["twolayernet"], package)
    record = {"file": package.name, "sha256": "0" * 64}
    (tmp_path / "manifest.json").write_text(json.dumps({"formats": {"aoti": record}}))
    assert "sha256 does not match manifest.json" in refusal(run_runner([package, "--bench", "1"]))
    record["sha256"] = hashlib.sha256(package.read_bytes()).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps({"formats": {"aoti": record}}))
    assert run_runner([package, "--bench", "1"]).returncode == 0


def with_metadata(package: Path, copy: Path, **changes: str | None) -> Path:
    """A copy of `package` whose metadata says otherwise (None drops a key)."""
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(copy, "w") as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename.endswith(METADATA_SUFFIX):
                metadata = {**json.loads(data), **changes}
                data = json.dumps({k: v for k, v in metadata.items() if v is not None}).encode()
            target.writestr(entry, data)
    return copy


@pytest.mark.parametrize("changes, expected", [
    ({DEVICE_KEY: "cuda"}, r"model\.aoti\.pt2: compiled for cuda, asked to run on cpu; an aoti package runs only on "
                           r"the device it was compiled for; re-export it with 'export-model twolayernet --format aoti'$"),
    ({TORCH_KEY: "2.11.0"}, r"model\.aoti\.pt2: made with torch 2\.11\.0, but this is torch 2\.\d+.*; an AOTInductor "
                            r"package runs only on the torch major\.minor that compiled it; .* load it with torch 2\.11$"),
    ({TORCH_KEY: None}, r"made with an unrecorded torch version, but this is torch"),
    ({"AOTI_MACHINE": "aarch64"}, r"model\.aoti\.pt2: compiled for aarch64 machines, this one is "),
    ({CONTRACT_KEY: None}, r"model\.aoti\.pt2: has no embedded contract \(metadata 'torchship_contract'\)"),
    ({CONTRACT_KEY: "{"}, r"model\.aoti\.pt2: the contract is not valid JSON"),
])
def test_package_from_elsewhere_is_refused_in_one_line_before_loading(changes, expected, cpp_packages, tmp_path):
    copy = with_metadata(cpp_packages["twolayernet"], tmp_path / "model.aoti.pt2", **changes)
    assert re.search(expected, refusal(run_runner([copy, "--bench", "1"])))


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() == "AMX" or not torch.cpu._is_avx2_supported(),
                    reason="needs an x86 CPU without AMX")
def test_package_for_an_instruction_set_this_cpu_lacks_is_refused(cpp_packages, tmp_path):
    copy = with_metadata(cpp_packages["twolayernet"], tmp_path / "model.aoti.pt2", **{CPU_ISA_KEY: "AVX512 AMX_TILE"})
    assert refusal(run_runner([copy, "--bench", "1"])).endswith(
        "compiled for the AVX512 AMX_TILE instruction set; this CPU lacks AMX_TILE; "
        "re-export it with 'export-model twolayernet --format aoti'")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine can run on cuda")
def test_cuda_asked_of_a_cpu_build_is_refused(cpp_packages):
    assert "CUDA requested but" in refusal(run_runner([cpp_packages["twolayernet"], "--bench", "1", "--device", "cuda"]))


def test_foreign_files_are_refused(cpp_packages, tmp_path):
    foreign = tmp_path / "zip" / "model.aoti.pt2"
    foreign.parent.mkdir()
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("archive/data/weights.bin", b"\0" * 64)
    assert "neither a TorchScript archive nor an AOTInductor package" in refusal(run_runner([foreign, "--bench", "1"]))
    renamed = tmp_path / "renamed" / "model.pt"
    renamed.parent.mkdir()
    shutil.copy(cpp_packages["twolayernet"], renamed)
    assert "AOTInductor loads packages only from files named *.pt2" in refusal(run_runner([renamed, "--bench", "1"]))
    text = tmp_path / "text" / "model.aoti.pt2"
    text.parent.mkdir()
    text.write_text("not a package\n")
    assert "not a valid zip archive" in refusal(run_runner([text, "--bench", "1"]))


def test_damaged_packages_are_refused_or_harmless(cpp_packages, tmp_path):
    """Single-byte flips and truncations of a lone package (no manifest beside it, so the
    zip checks alone must catch them): refused in one line, or bit-identical outputs;
    never a signal, never a different answer."""
    rng = random.Random(SEED)
    original = cpp_packages["twolayernet"].read_bytes()
    inputs = tmp_path / "inputs.pt"
    torch.save(get_spec("twolayernet").example_inputs({"batch": 3}, torch.Generator().manual_seed(0)), inputs)
    jobs = [("original", original)]
    jobs += [(f"byte {o} ^ {x:#04x}", original[:o] + bytes([original[o] ^ x]) + original[o + 1:])
             for o, x in ((rng.randrange(len(original)), rng.randrange(1, 256)) for _ in range(MUTATIONS))]
    jobs += [(f"truncated to {n}", original[:n]) for n in (rng.randrange(len(original)) for _ in range(TRUNCATIONS))]
    paths = []
    for k, (_, data) in enumerate(jobs):
        path = tmp_path / f"j{k}" / "model.aoti.pt2"
        path.parent.mkdir()
        path.write_bytes(data)
        paths.append(path)
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda path: probe(path, inputs), paths))
    baseline_result, baseline = results[0]
    assert baseline_result.returncode == 0, baseline_result.stderr
    tally(f"{MUTATIONS} byte mutations + {TRUNCATIONS} truncations of a .pt2",
          [(what, result, output, baseline) for (what, _), (result, output) in zip(jobs[1:], results[1:])],
          MUTATIONS + TRUNCATIONS)
