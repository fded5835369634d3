"""Hostile and broken inputs (issue 13): refused in one line, never a signal, a traceback,
a silent pass, a changed file after a failure, or a folder whose files disagree.

Unit tests of export/bounds.py and models/artifacts.py, then the seeded campaign of
tests/hostile/campaign.py (each attempt in its own process; outcome counts printed).
Set HOSTILE_ARTIFACTS to a folder of exported models to skip the session's training.
"""

import errno
import json
import os
import signal
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch

from tests.hostile import craft
from tests.hostile.campaign import (BAD, CPP_CLASSES, PY_CLASSES, WRITE_CLASSES, can_mount_tmpfs,
                                    format_counts, run_campaign)
from torchship.errors import ArtifactError
from torchship.export.bounds import MAX_DEPTH, check_torch_archive, read_json_bounded
from torchship.models.artifacts import (LOCK_NAME, atomic_path, folder_lock, read_json, sweep_stale_temps,
                                        transaction)


@pytest.fixture(scope="module")
def hostile_artifacts(request) -> Path:
    given = os.environ.get("HOSTILE_ARTIFACTS")
    return Path(given) if given else request.getfixturevalue("exported")


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and text
    return text


# --- export/bounds.py ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bounds")
    module = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()))
    torch.jit.save(module, str(folder / "model.pt"), _extra_files={"manifest.json": '{"a": [1, 2]}'})
    torch.jit.save(torch.jit.trace(torch.nn.Linear(4, 3), torch.ones(2, 4)), str(folder / "traced.pt"))
    torch.save([torch.arange(12.0).reshape(3, 4)[1:, ::2], 3, {"k": (torch.zeros(0, 5),)}], folder / "inputs.pt")
    # _rebuild_tensor_v3 over an untyped storage, and a bfloat16 view with an offset
    torch.save([torch.arange(6).to(torch.uint16).reshape(2, 3)[:, 1:], torch.zeros(3, dtype=torch.float8_e4m3fn),
                torch.ones(4, 2, dtype=torch.bfloat16)[2:]], folder / "dtypes.pt")
    return folder


def test_real_archives_pass(small_files):
    for name in ("model.pt", "traced.pt", "inputs.pt", "dtypes.pt"):  # traced: torch writes empty traced_inputs records
        check_torch_archive(small_files / name)


def test_real_exports_pass(hostile_artifacts):
    for path in sorted(hostile_artifacts.glob("*/*.pt")):
        check_torch_archive(path)


@pytest.mark.parametrize("kind", ["numel", "offset", "size", "stride", "negative"])
def test_lying_storage_is_refused(small_files, tmp_path, kind):
    archive = small_files / "model.pt"
    pkl = dict((i.filename, d) for i, d in craft.read_zip(archive))[craft.entry_name(archive, "/data.pkl")]
    site = craft.tensor_sites(pkl)[0]
    patch = {"numel": {site["numel"]: 100_000_000}, "offset": {site["offset"]: 12},
             "size": {site["sizes"][0]: 50}, "stride": {site["strides"][0]: 1000},
             "negative": {site["strides"][-1]: -1}}[kind]
    lying = tmp_path / "lying.pt"
    craft.replace_entries(archive, lying, {"/data.pkl": craft.patch_ints(pkl, patch)})
    with zipfile.ZipFile(lying) as z:
        assert z.testzip() is None  # the CRCs are valid: only the content lies
    with pytest.raises(ArtifactError) as e:
        check_torch_archive(lying)
    assert str(lying) in one_line(e)


def test_cut_record_is_refused(small_files, tmp_path):
    cut = tmp_path / "cut.pt"
    craft.replace_entries(small_files / "model.pt", cut, {"/data/0": b"\0\0\0\0"})
    with pytest.raises(ArtifactError, match="record holds 4 bytes"):
        check_torch_archive(cut)


@pytest.mark.parametrize("pkl", [craft.deep_list(300_000), craft.deep_tuple1(300_000),
                                 craft.deep_mark_tuple(10_000), craft.deep_dict(10_000),
                                 craft.late_nesting(MAX_DEPTH + 10), craft.cycle(),
                                 craft.tensor_pickle(1024, 0, (1, 1000), (1000, 1)),
                                 b"\x80\x02]", b"\x80\x02(.", b"\x80\x02h\x05."],
                         ids=["list", "tuple1", "mark", "dict", "late", "cycle", "4KB-over-4B", "truncated",
                              "mark-left", "memo"])
def test_hostile_pickles_are_refused(tmp_path, pkl):
    path = tmp_path / "inputs.pt"
    craft.torch_save_archive(pkl, {"0": b"\0" * 4}, path)
    with pytest.raises(ArtifactError) as e:
        check_torch_archive(path)
    one_line(e)


def test_nesting_within_the_limit_passes(tmp_path):
    path = tmp_path / "inputs.pt"
    craft.torch_save_archive(craft.deep_list(MAX_DEPTH), {}, path)
    check_torch_archive(path)


@pytest.mark.parametrize("kind", ["parens", "unary", "binop", "list", "not", "call"])
def test_code_bombs_are_refused(small_files, tmp_path, kind):
    """TorchScript source 20,000 deep or long: libtorch's compiler dies by SIGSEGV on it."""
    bomb = tmp_path / "bomb.pt"
    craft.code_bomb(small_files / "model.pt", bomb, kind, 20_000)
    with pytest.raises(ArtifactError, match="source") as e:
        check_torch_archive(bomb)
    one_line(e)


def test_code_within_the_limits_passes(small_files, tmp_path):
    for kind, n in (("parens", 200), ("binop", 500)):
        fine = tmp_path / f"{kind}.pt"
        craft.code_bomb(small_files / "model.pt", fine, kind, n)
        check_torch_archive(fine)
        torch.jit.load(str(fine))  # and libtorch compiles it


@pytest.mark.parametrize("text,match", [(craft.deep_json(100_000), "nests deeper"),
                                        ('{"a": "[[[[' + "[" * 1000 + '"}', None),
                                        ("[]", None), ("{'a': 1}", "not valid JSON"), ("", "not valid JSON")])
def test_read_json_bounded(tmp_path, text, match):
    path = tmp_path / "x.json"
    path.write_text(text)
    if match is None:
        read_json_bounded(path, "x.json", "fix it")  # brackets inside strings do not count
        return
    with pytest.raises(ArtifactError, match=match) as e:
        read_json_bounded(path, "x.json", "fix it")
    one_line(e)


def test_read_json_wants_an_object(tmp_path):
    for text in ("[]", "null", "3"):
        (tmp_path / "m.json").write_text(text)
        with pytest.raises(ArtifactError, match="not an object"):
            read_json(tmp_path / "m.json", "manifest.json", "re-export it")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ArtifactError, match="not a regular file"):
        read_json(tmp_path / "dir.json", "manifest.json", "re-export it")


# --- models/artifacts.py --------------------------------------------------------------------

def files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != LOCK_NAME}


def seed_folder(folder: Path) -> dict:
    with transaction(folder) as tx:
        tx.write_bytes("weights.pt", b"old weights")
        tx.write_json("train.json", {"v": "old"})
    return files(folder)


def test_transaction_commits_together(tmp_path):
    seed_folder(tmp_path)
    with transaction(tmp_path) as tx:
        tx.write_torch("weights.pt", {"w": torch.ones(3)})
        tx.write_json("train.json", {"v": "new"})
        assert json.loads((tmp_path / "train.json").read_text()) == {"v": "old"}  # nothing renamed yet
    assert json.loads((tmp_path / "train.json").read_text()) == {"v": "new"}
    assert torch.equal(torch.load(tmp_path / "weights.pt", weights_only=True)["w"], torch.ones(3))
    assert set(files(tmp_path)) == {"weights.pt", "train.json"}


def test_failure_in_a_transaction_changes_nothing(tmp_path):
    before = seed_folder(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with transaction(tmp_path) as tx:
            tx.write_bytes("weights.pt", b"new")
            raise KeyboardInterrupt
    assert files(tmp_path) == before


def test_enospc_at_the_os_boundary(tmp_path, monkeypatch):
    before = seed_folder(tmp_path)
    real_write = os.write

    def full(fd, data):
        if len(data) > 100:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(ArtifactError, match=r"^no space left on device writing .*weights\.pt") as e:
        with transaction(tmp_path) as tx:
            tx.write_json("train.json", {"v": "new"})
            tx.write_bytes("weights.pt", b"x" * 1000)
    one_line(e)
    assert files(tmp_path) == before


def test_edquot_from_fsync(tmp_path, monkeypatch):
    before = seed_folder(tmp_path)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EDQUOT, "Disk quota exceeded")))
    with pytest.raises(ArtifactError, match="no space left on device"):
        with transaction(tmp_path) as tx:
            tx.write_bytes("weights.pt", b"new")
    assert files(tmp_path) == before


def test_a_failed_rename_is_undone(tmp_path, monkeypatch):
    before = seed_folder(tmp_path)
    real_replace = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(ArtifactError, match="cannot write"):
        with transaction(tmp_path) as tx:
            tx.write_bytes("weights.pt", b"new")
            tx.write_json("train.json", {"v": "new"})
    monkeypatch.setattr(os, "replace", real_replace)
    assert files(tmp_path) == before


def test_write_with_translates_torch_zip_writer_failures(tmp_path):
    def writer(path):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    with pytest.raises(ArtifactError, match="cannot write .*model.pt") as e:
        with transaction(tmp_path) as tx:
            tx.write_with("model.pt", writer)
    one_line(e)
    assert files(tmp_path) == {}


@pytest.mark.skipif(not can_mount_tmpfs(), reason="cannot mount a tmpfs here (needs root)")
def test_full_tmpfs(tmp_path):
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        before = seed_folder(disk)
        with pytest.raises(ArtifactError, match="no space left on device"):
            with transaction(disk) as tx:
                tx.write_torch("weights.pt", {"w": torch.zeros(100_000)})
        assert files(disk) == before
        # the old single-file API, with torch's own zip writer on a full disk
        with pytest.raises(ArtifactError, match="no space left on device|cannot write"):
            with atomic_path(disk / "weights.pt") as tmp:
                torch.save({"w": torch.zeros(100_000)}, tmp)
        assert files(disk) == before
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_lock_refuses_a_second_writer(tmp_path):
    held, release = threading.Event(), threading.Event()

    def holder():
        with folder_lock(tmp_path):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    try:
        start = time.monotonic()
        with pytest.raises(ArtifactError, match="being written by another torchship command") as e:
            with folder_lock(tmp_path, timeout=0.3):
                pass
        one_line(e)
        assert time.monotonic() - start >= 0.3
    finally:
        release.set()
        thread.join()
    with folder_lock(tmp_path, timeout=0.3):  # free again
        with folder_lock(tmp_path, timeout=0):  # re-entrant in one thread
            pass


def test_sweep_removes_only_our_stale_temps(tmp_path):
    old = time.time() - 3600
    stale = tmp_path / ".weights.pt.0123456789ab.tmp"
    fresh = tmp_path / ".train.json.ba9876543210.tmp"
    theirs = [tmp_path / ".weights.pt.xyz.tmp", tmp_path / "notes.tmp", tmp_path / ".weights.pt.0123456789AB.tmp"]
    for path in [stale, fresh, *theirs]:
        path.write_bytes(b"x")
        os.utime(path, (old, old))
    future = time.time() + 3600
    os.utime(fresh, (future, future))  # newer than this process: maybe a live writer's
    assert sweep_stale_temps(tmp_path) == [stale]
    assert fresh.exists() and all(p.exists() for p in theirs)
    stale.write_bytes(b"x")
    os.utime(stale, (old, old))
    with transaction(tmp_path):  # taking the lock sweeps
        assert not stale.exists()


def test_atomic_path_keeps_working(tmp_path):
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_sigterm_becomes_an_exception_only_inside_a_command():
    import click
    from click.testing import CliRunner

    from torchship.models.console import Command

    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # nothing installed at import
    cleaned = []

    @click.command(cls=Command)
    def cmd():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            cleaned.append(True)

    result = CliRunner().invoke(cmd, [])
    assert result.exit_code == 128 + signal.SIGTERM and cleaned
    assert "stopped by SIGTERM" in result.output
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_full_disk_anywhere_in_a_command_is_one_line(tmp_path):
    import click
    from click.testing import CliRunner

    from torchship.models.console import Command

    @click.command(cls=Command)
    def cmd():
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "report.json"))

    result = CliRunner().invoke(cmd, [])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: no space left on device writing {tmp_path / 'report.json'}; " \
                                    "free some space and run the command again"


# --- the campaign ---------------------------------------------------------------------------

def check_counts(counts) -> None:
    print("\n" + format_counts(counts))
    bad = {cls: {k: v for k, v in c.items() if k in BAD} for cls, c in counts.items()}
    assert not any(bad.values()), bad
    for cls, c in counts.items():
        if cls.endswith("_control"):
            assert set(c) == {"ok"}, (cls, c)


@pytest.mark.cpp
def test_campaign_cpp_runner(hostile_artifacts, tmp_path):
    counts, examples = run_campaign(hostile_artifacts, tmp_path, "after", CPP_CLASSES)
    check_counts(counts)


def test_campaign_python_loaders_and_writers(hostile_artifacts, tmp_path):
    counts, examples = run_campaign(hostile_artifacts, tmp_path, "after", PY_CLASSES + WRITE_CLASSES)
    check_counts(counts)
