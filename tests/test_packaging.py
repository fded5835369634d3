"""The distribution installs one top-level package, torchship, and coexists with a
user's own `models` and `export` packages (most ML projects have a models/); the seed
models join the registry through the wheel's entry points."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED_ENTRY_POINTS = ["convnet = torchship.models.seeds:CONVNET", "dynamicnet = torchship.models.seeds:DYNAMICNET",
                     "twolayernet = torchship.models.seeds:TWOLAYERNET"]


def _source_copy(tmp_path) -> Path:
    """The project's sources, so the build leaves no torchship.egg-info in the checkout:
    a stale one there shadows the installed metadata, entry points and all, for every
    process whose sys.path holds the repository (pytest's does)."""
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "artifacts", "*.egg-info", "__pycache__", ".pytest_cache", "examples", "benchmarks"))
    return source


def test_wheel_installs_only_the_torchship_package_and_registers_the_seeds(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(_source_copy(tmp_path))], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("torchship-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"torchship"}, tops
    for data in ("messages.json", "comparison_cases.json", "contract.schema.json", "manifest.schema.json", "rules.md"):
        assert f"torchship/export/schema/{data}" in names, data
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert _seed_entry_points(text) == SEED_ENTRY_POINTS


def _seed_entry_points(entry_points_txt: str) -> list[str]:
    if "[torchship.models]" not in entry_points_txt:
        return []
    section = entry_points_txt.split("[torchship.models]")[1].split("[")[0]
    return sorted(line.strip() for line in section.splitlines() if line.strip())


def test_metadata_in_the_checkout_is_not_stale():
    """An egg-info beside pyproject.toml (an editable install's, an in-tree build's) comes
    first on a sys.path that holds the repository; one older than the entry points hides
    every seed model ('known models: none')."""
    for egg_info in REPO.glob("*.egg-info"):
        text = (egg_info / "entry_points.txt").read_text() if (egg_info / "entry_points.txt").is_file() else ""
        assert set(SEED_ENTRY_POINTS) <= set(_seed_entry_points(text)), \
            f"{egg_info} is stale: delete it or reinstall with 'pip install -e .'"


def test_the_installed_package_registers_the_seeds_from_its_entry_points(tmp_path):
    code = ("from torchship.models import entries;"
            "print('\\n'.join(f'{n}|{e.origin}' for n, e in entries().items()))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    origins = dict(line.split("|") for line in result.stdout.splitlines())
    for name in ("twolayernet", "dynamicnet", "convnet"):
        assert origins[name].startswith(f"entry point {name} = torchship.models.seeds:{name.upper()} (torchship ")


def test_a_users_own_models_and_export_packages_do_not_shadow_torchship(tmp_path):
    for name in ("models", "export"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name}')\n")
    code = ("import torchship.export.cli, torchship.models;"
            "print(torchship.models.__name__, torchship.export.cli.__name__, *torchship.models.entries())")
    # The user's project folder comes first on sys.path, as it does when they run their code.
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert words[:2] == ["torchship.models", "torchship.export.cli"]
    assert {"twolayernet", "dynamicnet", "convnet"} <= set(words[2:])
