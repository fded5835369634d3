"""The distribution installs one top-level package, torchship, and coexists with a
user's own `models` and `export` packages (most ML projects have a models/)."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_installs_only_the_torchship_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("torchship-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"torchship"}, tops
    assert "torchship/export/schema/messages.json" in zipfile.ZipFile(wheel).namelist()


def test_a_users_own_models_and_export_packages_do_not_shadow_torchship(tmp_path):
    for name in ("models", "export"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name}')\n")
    code = ("import torchship.export.cli, torchship.models;"
            "print(torchship.models.__name__, torchship.export.cli.__name__)")
    # The user's project folder comes first on sys.path, as it does when they run their code.
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["torchship.models", "torchship.export.cli"]

