"""The wheel installs one namespace, ``dropout_risk``, and carries everything the service reads at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("cli", "features", "models", "serving", "training")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> list[str]:
    # Built from a copy: setuptools writes build/ into the directory it runs in.
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("dropout_risk", *FOLDERS):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)]
    subprocess.run(command, check=True, capture_output=True, cwd=source)
    (wheel,) = out.glob("dropout_risk-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_only_top_level_name_is_dropout_risk(wheel_names):
    top = {name.split("/", 1)[0] for name in wheel_names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"dropout_risk"}


def test_every_python_package_of_the_tree_is_in_the_wheel(wheel_names):
    in_wheel = {name for name in wheel_names if name.endswith(".py")}
    for folder in FOLDERS:
        for source in (ROOT / folder).rglob("*.py"):
            assert f"dropout_risk/{source.relative_to(ROOT).as_posix()}" in in_wheel, source


def test_the_service_finds_its_migrations_templates_and_static_files(wheel_names):
    names = set(wheel_names)
    assert "dropout_risk/serving/migrations/script.py.mako" in names
    assert "dropout_risk/serving/migrations/versions/0001_initial.py" in names
    for kind in ("templates", "static"):
        assert any(n.startswith(f"dropout_risk/serving/ui/{kind}/") for n in names), kind


def test_every_folder_with_an_init_is_a_declared_package():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"dropout_risk"} | {
        "dropout_risk." + init.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert declared == found
