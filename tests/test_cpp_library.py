"""torchship::runtime as a library a service links: installed into a prefix with
`cmake --install`, found by examples/cpp-service/ through find_package(torchship),
serving one model from several threads, every output checked against eager."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import SEEDS
from torchship.export.cpp_runner import REPO_ROOT
from torchship.models import get_spec

pytestmark = [pytest.mark.cpp, pytest.mark.slow]

BUILD = REPO_ROOT / "build"


def reference_cases(name: str, artifacts: Path) -> list[dict]:
    """Inputs at several batch sizes (every scalar value at each) and eager's outputs,
    in the samples.pt format the example reads."""
    spec = get_spec(name)
    model = spec.build()
    model.load_state_dict(torch.load(artifacts / name / "weights.pt", weights_only=True))
    model.eval()
    generator = torch.Generator().manual_seed(11)
    cases = []
    for batch in (1, 5, 64):
        for value in (spec.scalar_inputs[0].scalar_values() if spec.scalar_inputs else [None]):
            scalars = {spec.scalar_inputs[0].name: value} if value is not None else {}
            inputs = spec.example_inputs({"batch": batch}, generator, **scalars)
            with torch.no_grad():
                returned = model(**inputs)
            cases.append({"name": f"batch{batch}" + (f"-{value}" if value is not None else ""),
                          "inputs": inputs, "outputs": {spec.contract()["outputs"][0]["name"]: returned}})
    return cases


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Path:
    """The library installed into a temp prefix, and the example built against it alone."""
    if not (BUILD / "CMakeCache.txt").is_file():
        pytest.skip("no build/ folder: run 'make build' first")
    tmp = tmp_path_factory.mktemp("library")
    prefix, build = tmp / "prefix", tmp / "build"
    subprocess.run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)], check=True, capture_output=True)
    configure = subprocess.run(
        ["cmake", "-S", str(REPO_ROOT / "examples" / "cpp-service"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         f"-DCMAKE_PREFIX_PATH={prefix};{torch.utils.cmake_prefix_path}"], capture_output=True, text=True)
    assert configure.returncode == 0, configure.stderr
    built = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    return build / "cpp-service"


def test_installed_package_keeps_its_private_dependencies_private(service):
    prefix = service.parent.parent / "prefix"
    targets = (prefix / "lib" / "cmake" / "torchship" / "torchshipTargets.cmake").read_text()
    assert "torchship::runtime" in targets
    for private in ("zip", "OpenSSL", "nlohmann", "CLI11"):
        assert private not in targets, f"{private} leaks into the installed interface"
    headers = sorted(p.name for p in (prefix / "include" / "torchship").iterdir())
    assert {"runtime.h", "model.h", "errors.h", "contract.h"} <= set(headers)
    for header in headers:  # the public headers include only each other and torch
        text = (prefix / "include" / "torchship" / header).read_text()
        assert "nlohmann" not in text and "zip.h" not in text and "openssl" not in text


@pytest.mark.parametrize("file", ["model.torchscript.pt", "model.aoti.pt2"])
@pytest.mark.parametrize("name", SEEDS)
def test_service_serves_one_model_from_several_threads_as_eager_does(name, file, service, exported, tmp_path):
    reference = tmp_path / "reference.pt"
    torch.save(reference_cases(name, exported), reference)
    # The model alone in its folder: the service loads a copy, as a deployment would.
    model = tmp_path / file
    shutil.copy(exported / name / file, model)
    result = subprocess.run([str(service), str(model), str(reference), "--threads", "1,2,4", "--calls", "30"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["threads"] for line in lines] == [1, 2, 4]
    assert all(line["mismatches"] == 0 and line["model"] == name for line in lines)


def test_service_refuses_a_damaged_model_with_the_library_error(service, exported, tmp_path):
    damaged = tmp_path / "model.torchscript.pt"
    data = bytearray((exported / "twolayernet" / "model.torchscript.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(data)
    result = subprocess.run([str(service), str(damaged), str(exported / "twolayernet" / "samples.pt")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("cpp-service: error: ") and len(result.stderr.splitlines()) == 1
