"""Triton Inference Server: the generated repository (offline) and a live tritonserver.

Offline: triton-repo writes a repository Triton's own proto accepts and the contracts
confirm; hand-broken configs are refused with one line naming the field. Live (needs the
tritonserver nvidia-pytriton bundles; skipped with the reason without it): parity with
eager over HTTP and gRPC, malformed requests, a server killed mid-load and restarted,
serve-model stopping cleanly on SIGTERM and Ctrl-C.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import invoke

pytest.importorskip("tritonclient.grpc", reason="tritonclient not installed (pip install 'torchship[serve]')")

from torchship.export.artifact import Artifact  # noqa: E402
from torchship.export.backends import BACKENDS  # noqa: E402
from torchship.export.samples import load_samples  # noqa: E402
from torchship.export.triton.cli import check_command, repo_command  # noqa: E402
from torchship.export.triton.client import connect, infer, same_as  # noqa: E402
from torchship.export.triton.repository import TritonConfigError, serving_repository, write_repository  # noqa: E402
from torchship.export.triton.validate import check_repository  # noqa: E402

MODELS = ("twolayernet", "dynamicnet", "convnet")


@pytest.fixture(scope="module")
def repo(exported: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("triton") / "repo"
    result = invoke(repo_command, "all", "--artifacts", exported, "--out", out)
    assert result.exit_code == 0, result.output
    return out


# -- the repository, offline ---------------------------------------------------------


def test_repository_has_one_model_per_servable_format(repo: Path, exported: Path):
    folders = sorted(p.name for p in repo.iterdir() if p.is_dir() and not p.name.startswith("."))
    # dynamicnet's Python-int depth has no native Triton form (refused with one line, tested below)
    assert folders == ["convnet_aoti", "convnet_onnx", "convnet_torchscript",
                       "twolayernet_aoti", "twolayernet_onnx", "twolayernet_torchscript"]
    assert (repo / "README.md").read_text().count("docker run") == 1
    assert check_repository(repo) == folders
    manifest = json.loads((exported / "twolayernet" / "manifest.json").read_text())
    from torchship.models.artifacts import sha256_file

    assert sha256_file(repo / "twolayernet_onnx/1/model.onnx") == manifest["formats"]["onnx"]["sha256"]
    assert sha256_file(repo / "twolayernet_torchscript/1/model.pt") == manifest["formats"]["torchscript"]["sha256"]
    assert sha256_file(repo / "twolayernet_aoti/1/model.pt2") == manifest["formats"]["aoti"]["sha256"]
    assert not [p for p in repo.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_configs_follow_each_backends_conventions(repo: Path):
    onnx = (repo / "convnet_onnx/config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in onnx and "max_batch_size: 64" in onnx
    assert re.search(r'name: "x"\s+data_type: TYPE_FP32\s+dims: \[ 1, 32, 32 \]', onnx)  # no batch dim
    assert re.search(r'name: "logits"\s+data_type: TYPE_FP32\s+dims: \[ 10 \]', onnx)
    assert "preferred_batch_size: [ 16, 32, 64 ]" in onnx and "kind: KIND_CPU" in onnx
    ts = (repo / "twolayernet_torchscript/config.pbtxt").read_text()
    assert 'platform: "pytorch_libtorch"' in ts and 'name: "INPUT__0"' in ts and 'name: "OUTPUT__0"' in ts
    assert "# input INPUT__0: contract input 'x'" in ts


def test_dynamicnet_is_refused_by_native_backends_with_one_line(exported: Path, tmp_path: Path):
    for fmt, words in (("onnx", "Triton has no 0-dim inputs"), ("torchscript", "passes tensors only")):
        result = invoke(repo_command, "dynamicnet", "--format", fmt, "--artifacts", exported, "--out", tmp_path / fmt)
        assert result.exit_code == 1
        line = result.output.strip()
        assert line.startswith("Error: dynamicnet: input 'depth'") and words in line and "\n" not in line
        assert "serve-model dynamicnet" in line
        assert not (tmp_path / fmt).exists()  # nothing half-written


def test_max_batch_instances_and_no_batching(exported: Path, tmp_path: Path):
    result = invoke(repo_command, "twolayernet", "--format", "onnx", "--artifacts", exported, "--out", tmp_path / "a",
                    "--max-batch", "8", "--instances", "2", "--device", "gpu")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "a/twolayernet_onnx/config.pbtxt").read_text()
    assert "max_batch_size: 8" in text and "preferred_batch_size: [ 2, 4, 8 ]" in text
    assert "count: 2" in text and "kind: KIND_GPU" in text
    result = invoke(repo_command, "twolayernet", "--format", "onnx", "--artifacts", exported, "--out", tmp_path / "b",
                    "--max-batch", "0")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "b/twolayernet_onnx/config.pbtxt").read_text()
    assert "max_batch_size: 0" in text and "dims: [ -1, 1000 ]" in text and "dynamic_batching" not in text


BROKEN = [  # (edit of twolayernet_onnx/config.pbtxt, words the one-line refusal must hold)
    (("max_batch_size: 64", "max_batch: 64"), 'no field named "max_batch"'),
    (("data_type: TYPE_FP32", "data_type: TYPE_FLOAT32"), "TYPE_FLOAT32"),
    (("dims: [ 1000 ]", "dims: [ 1001 ]"), "input[0].dims: expected [1000] without the batch axis"),
    (("dims: [ 1000 ]", "dims: [ -1, 1000 ]"), "input[0].dims"),
    (('name: "y"', 'name: "OUTPUT__0"'), "output[0].name: expected \"y\""),
    (('"y"\n    data_type: TYPE_FP32', '"y"\n    data_type: TYPE_FP16'), "output[0].data_type: expected TYPE_FP32"),
    (('platform: "onnxruntime_onnx"', 'platform: "pytorch_libtorch"'), "platform: expected \"onnxruntime_onnx\""),
    (("max_batch_size: 64", "max_batch_size: 300000"), "max_batch_size: expected at most 262144"),
    (("max_batch_size: 64", "max_batch_size: 0"), "dynamic_batching: expected none"),
    (("preferred_batch_size: [ 16, 32, 64 ]", "preferred_batch_size: [ 16, 128 ]"), "preferred_batch_size"),
    (("kind: KIND_CPU", "kind: KIND_MODEL"), "instance_group[0].kind"),
    (("count: 1", "count: 0"), "instance_group[0].count"),
    (('name: "twolayernet_onnx"', 'name: "other"'), "name: expected \"twolayernet_onnx\""),
]


@pytest.mark.parametrize("edit,words", BROKEN, ids=[w.split(":")[0][:30] for _, w in BROKEN])
def test_hand_broken_config_is_refused_naming_the_field(repo: Path, tmp_path: Path, edit, words):
    broken = tmp_path / "repo"
    shutil.copytree(repo, broken)
    config = broken / "twolayernet_onnx/config.pbtxt"
    text = config.read_text()
    assert edit[0] in text
    config.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(TritonConfigError) as e:
        check_repository(broken)
    assert words in e.value.message and "\n" not in e.value.message
    assert e.value.message.startswith("twolayernet_onnx/config.pbtxt: ")
    result = invoke(check_command, broken)
    assert result.exit_code == 1 and result.output.startswith("Error: twolayernet_onnx/config.pbtxt: ")


def test_tampered_model_file_is_refused(repo: Path, tmp_path: Path):
    broken = tmp_path / "repo"
    shutil.copytree(repo, broken)
    with open(broken / "convnet_onnx/1/model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(TritonConfigError, match=r"convnet_onnx/1/model.onnx: sha256 .* does not match"):
        check_repository(broken)


def test_a_failed_rewrite_leaves_the_old_repository(repo: Path, tmp_path: Path, exported: Path):
    out = tmp_path / "repo"
    shutil.copytree(repo, out)
    before = (out / "twolayernet_onnx/config.pbtxt").read_text()
    from torchship.export.triton.repository import plan

    contract = Artifact.open(exported, "twolayernet").contract
    p = plan(contract, "onnx", max_batch=4)

    def failing_check(folder):
        raise TritonConfigError("refused")

    with pytest.raises(TritonConfigError, match="refused"):
        write_repository(out, [(p, contract, exported / "twolayernet/model.onnx", None)], check=failing_check)
    assert (out / "twolayernet_onnx/config.pbtxt").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


# -- a live tritonserver ---------------------------------------------------------------


def _install():
    from torchship.export.triton.server import ServerError, find_tritonserver

    try:
        return find_tritonserver()
    except ServerError as e:
        pytest.skip(str(e))


def test_tritonservers_core_accepts_every_generated_config(repo: Path):
    from torchship.export.triton.validate import core_check

    install = _install()
    assert core_check(repo, install=install) == sorted(p.name for p in repo.iterdir()
                                                       if p.is_dir() and not p.name.startswith("."))


def test_tritonservers_core_refusal_is_one_line(repo: Path, tmp_path: Path, monkeypatch):
    """With torchship's own checks out of the way, the core's words come back in one line."""
    from torchship.export.triton import validate

    install = _install()
    broken = tmp_path / "repo"
    shutil.copytree(repo, broken)
    config = broken / "twolayernet_onnx/config.pbtxt"
    config.write_text(config.read_text().replace("dims: [ 1000 ]", "dims: [ ]"))
    monkeypatch.setattr(validate, "check_repository", lambda path: [])
    with pytest.raises(TritonConfigError) as e:
        validate.core_check(broken, install=install)
    assert e.value.message == ("twolayernet_onnx/config.pbtxt: tritonserver's core refuses it: "
                               "Invalid argument: model input 'x' must specify 'dims' for twolayernet_onnx")


@pytest.fixture(scope="module")
def served(exported: Path, tmp_path_factory):
    """All three models on one tritonserver (onnxruntime inside Triton's Python backend)."""
    from torchship.export.triton.server import TritonServer

    install = _install()
    repository = tmp_path_factory.mktemp("serve") / "models"
    serving_repository(exported, list(MODELS), repository, backend="onnxruntime", max_batch=16)
    with TritonServer(repository, install=install) as server:
        yield server


def _artifact(exported, name):
    return Artifact.open(exported, name)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_parity_with_eager_on_golden_samples_and_fresh_shapes(served, exported: Path, protocol: str):
    client = connect(protocol, served.http_url if protocol == "http" else served.grpc_url)
    try:
        for name in MODELS:
            artifact = _artifact(exported, name)
            contract = artifact.contract
            cases = [c for c in load_samples(artifact.samples()) if _batch(c) <= 16]
            assert cases
            for case in cases:
                assert same_as(contract, infer(protocol, client, name, contract, case.inputs), case.outputs), \
                    (name, case.name)
            eager = BACKENDS["eager"]().load(artifact)
            generator = torch.Generator().manual_seed(7)
            for batch in (3, 13):  # sizes neither the export nor the samples used
                feed = _fresh(contract, batch, generator)
                assert same_as(contract, infer(protocol, client, name, contract, feed), eager.run(feed)), (name, batch)
    finally:
        client.close()


def _batch(case) -> int:
    return next(v.shape[0] for v in case.inputs.values() if isinstance(v, torch.Tensor))


def _fresh(contract: dict, batch: int, generator) -> dict:
    feed = {}
    for spec in contract["inputs"]:
        if spec["kind"] == "tensor":
            shape = [batch if isinstance(d, str) else d for d in spec["shape"]]
            feed[spec["name"]] = torch.randn(shape, generator=generator)
        else:
            feed[spec["name"]] = int(torch.randint(spec["low"], spec["high"] + 1, (), generator=generator))
    return feed


def test_torchscript_backend_serves_dynamicnet_with_and_without_depth(exported: Path, tmp_path: Path):
    """serve-model --backend torchscript: depth is optional there (forward() draws one when it is absent)."""
    from torchship.export.triton.server import TritonServer

    install = _install()
    repository = tmp_path / "models"
    serving_repository(exported, ["dynamicnet"], repository, backend="torchscript")
    assert "optional: true" in (repository / "dynamicnet/config.pbtxt").read_text()
    artifact = _artifact(exported, "dynamicnet")
    eager = BACKENDS["eager"]().load(artifact)
    with TritonServer(repository, install=install) as server:
        client = connect("grpc", server.grpc_url)
        try:
            for depth in range(4):
                feed = {"x": torch.randn(5, 1000), "depth": depth}
                assert same_as(artifact.contract, infer("grpc", client, "dynamicnet", artifact.contract, feed),
                               eager.run(feed))
            drawn = infer("grpc", client, "dynamicnet", artifact.contract, {"x": torch.randn(2, 1000)})
            assert drawn["y"].shape == (2, 10)
        finally:
            client.close()


MALFORMED = [  # (model, feed edit, words in the error, torchship's own message?)
    ("twolayernet", {"z": torch.zeros(2, 1000)}, "unexpected inference input 'z'", False),
    ("twolayernet", {"x": torch.zeros(2, 999)}, "unexpected shape for input 'x'", False),
    ("twolayernet", {"x": torch.zeros(2, 1000, dtype=torch.float64)}, "data-type is 'FP64'", False),
    ("twolayernet", {"x": torch.zeros(17, 1000)}, "batch-size must be <= 16", False),
    ("twolayernet", {"x": torch.full((2, 1000), float("nan"))}, "twolayernet: input 'x': 2000 non-finite", True),
    ("dynamicnet", {"x": torch.zeros(2, 1000), "depth": 7}, "dynamicnet: input 'depth': expected values in 0..3, got 7",
     True),
    ("dynamicnet", {"x": torch.zeros(2, 1000)}, "missing required input(s) ['depth']", False),  # ONNX needs it
]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_malformed_requests_get_an_error_and_the_server_keeps_serving(served, exported: Path, protocol: str):
    from tritonclient.utils import InferenceServerException

    module_client = connect(protocol, served.http_url if protocol == "http" else served.grpc_url)
    good = {n: load_samples(_artifact(exported, n).samples())[0] for n in ("twolayernet", "dynamicnet")}
    try:
        for model, feed, words, ours in MALFORMED:
            # Send what the feed holds, as if the contract said so: a name it lacks, another dtype.
            contract = dict(_artifact(exported, model).contract)
            contract["inputs"] = [*({**s, "dtype": str(feed[s["name"]].dtype).removeprefix("torch.")}
                                    for s in contract["inputs"] if s["kind"] == "tensor" and s["name"] in feed),
                                  *(s for s in contract["inputs"] if s["kind"] != "tensor"),
                                  *({"name": k, "kind": "tensor", "dtype": "float32", "shape": ["batch", 1000]}
                                    for k in feed if k == "z")]
            with pytest.raises(InferenceServerException) as e:
                infer(protocol, module_client, model, contract, feed)
            assert words in e.value.message(), e.value.message()
            assert str(e.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT")
            # and the next good request is answered, right
            case = good[model]
            contract = _artifact(exported, model).contract
            assert same_as(contract, infer(protocol, module_client, model, contract, case.inputs), case.outputs)
        assert served.ready()
    finally:
        module_client.close()


def test_a_bad_request_merged_with_good_ones_spoils_none(served, exported: Path):
    """Dynamic batching may put a NaN request in one batch with good ones: each gets its own answer."""
    contract = _artifact(exported, "twolayernet").contract
    eager = BACKENDS["eager"]().load(_artifact(exported, "twolayernet"))
    results, lock = [], threading.Lock()

    def worker(i):
        client = connect("grpc", served.grpc_url)
        try:
            for j in range(6):
                feed = {"x": torch.randn(2, 1000)}
                if (i + j) % 4 == 0:
                    feed["x"][1, 5] = float("nan")
                try:
                    out = infer("grpc", client, "twolayernet", contract, feed)
                    ok = "nan" not in str(feed["x"].sum().item()) and same_as(contract, out, eager.run(feed))
                    outcome = "right" if ok else "wrong"
                except Exception as e:  # noqa: BLE001
                    outcome = "refused" if "non-finite" in str(e) else f"other: {e}"
                with lock:
                    results.append(((i + j) % 4 == 0, outcome))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 36
    assert all(outcome == ("refused" if bad else "right") for bad, outcome in results), results


def test_server_killed_mid_load_gives_clean_errors_then_serves_again(exported: Path, tmp_path: Path):
    """SIGKILL to tritonserver and its stubs while 4 clients send: every answer is right or a
    clean client error (never a wrong answer), and after a restart on the same ports serving resumes."""
    from tritonclient.utils import InferenceServerException

    from torchship.export.triton.server import TritonServer

    install = _install()
    repository = tmp_path / "models"
    serving_repository(exported, ["twolayernet"], repository, max_batch=16)
    artifact = _artifact(exported, "twolayernet")
    contract = artifact.contract
    cases = [c for c in load_samples(artifact.samples()) if _batch(c) <= 16]
    server = TritonServer(repository, install=install).start()
    phase = {"value": "before"}
    outcomes, lock, stop = [], threading.Lock(), threading.Event()

    def worker(i):
        protocol = ("http", "grpc")[i % 2]
        client = connect(protocol, server.http_url if protocol == "http" else server.grpc_url, timeout=10)
        deadline = time.monotonic() + 90
        for n in range(400):  # bounded in count and time
            if stop.is_set() or time.monotonic() > deadline:
                break
            case = cases[n % len(cases)]
            current = phase["value"]
            try:
                out = infer(protocol, client, "twolayernet", contract, case.inputs, timeout=10)
                outcome = "right" if same_as(contract, out, case.outputs) else "wrong"
            except InferenceServerException:
                outcome = "error"
            except Exception as e:  # noqa: BLE001 - a raw socket/gRPC error is still clean, but record it
                outcome = f"error:{type(e).__name__}"
            with lock:
                outcomes.append((current, outcome))
            if outcome != "right":
                time.sleep(0.05)
        client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        _wait_for(lambda: sum(1 for p, o in outcomes if o == "right") >= 20, 60)
        phase["value"] = "killed"
        server.kill()
        _wait_for(lambda: sum(1 for p, o in outcomes if p == "killed") >= 8, 30)
        phase["value"] = "restarting"
        server.start()
        phase["value"] = "after"
        _wait_for(lambda: sum(1 for p, o in outcomes if p == "after" and o == "right") >= 20, 60)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.close()
    assert not [o for o in outcomes if o[1] == "wrong"]
    assert any(p == "killed" and o.startswith("error") for p, o in outcomes)
    assert sum(1 for p, o in outcomes if p == "after" and o == "right") >= 20


def _wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_serve_model_answers_health_and_stops_cleanly(exported: Path, sig):
    import urllib.request

    from torchship.export.triton.server import free_port

    _install()
    http_port, grpc_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from torchship.export.triton.cli import serve_command; serve_command()",
         "twolayernet", "--artifacts", str(exported), "--http-port", str(http_port), "--grpc-port", str(grpc_port),
         "--max-batch", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
    lines, serving = [], threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C or SIGTERM stops it" in line:
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert serving.wait(120), "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=2) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/live", timeout=2) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/twolayernet/ready", timeout=2) as r:
            assert r.status == 200
        process.send_signal(sig)
        process.wait(60)
        reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = "".join(lines)
    assert process.returncode == 0, output
    assert "twolayernet: 2 golden samples over HTTP and gRPC match eager" in output  # --check, the default
    assert "serving twolayernet" in output and "tritonserver stopped (exit code 0)" in output
    assert "Traceback" not in output
