"""The OpenSearch API spec ships inside the package (issue 17): `oskit validate` works from an installed
wheel outside any checkout; the bundle is the shared copy's spec, byte for byte in content."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from provision_helpers import ROOT, copy_default_project


def test_the_bundle_is_the_shared_copy(spec_dir: Path) -> None:
    from kit.spec.bundled import BUNDLE, bundle_label, read_bundle
    from kit.spec.document import _read_files, _spec_root

    bundle = read_bundle(BUNDLE)
    assert bundle["files"] == _read_files(_spec_root(spec_dir)), \
        "the bundled spec differs from ../shared: python -m kit.spec.bundled ../shared/opensearch-api-spec"
    assert bundle_label().startswith("bundled opensearch-api-specification@fbe9ede")


def test_validate_without_spec_uses_the_bundle_and_checks_as_many_requests(project_dir: Path, spec_dir: Path) -> None:
    from clihelp import oskit

    bundled = oskit("validate", "--project", str(project_dir))
    shared = oskit("validate", "--project", str(project_dir), "--spec", str(spec_dir))
    assert bundled.exit_code == 0 and shared.exit_code == 0, bundled.stderr + shared.stderr
    assert bundled.stdout == shared.stdout and "requests checked against the OpenSearch API spec" in bundled.stdout


@pytest.mark.slow
def test_validate_from_an_installed_wheel_outside_the_checkout(tmp_path: Path) -> None:
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = shutil.copytree(ROOT, tmp_path / "src", ignore=shutil.ignore_patterns(
        ".git", ".venv", "*.pt", "weights", "data", "bench", "tests", "__pycache__", "*.egg-info", "build"))
    shutil.copytree(ROOT / "kit", build / "kit", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))  # kit/spec/data was skipped by "data"
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(build)],
                   check=True, cwd=tmp_path, capture_output=True)
    wheel = next(wheels.glob("oskit-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    project = copy_default_project(elsewhere / "project")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OSKIT_", "PYTHON"))}
    env.update(PYTHONPATH=str(site), OSKIT_DATA_DIR=str(tmp_path / "data"))
    probe = subprocess.run([sys.executable, "-c", "import kit; print(kit.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True)
    assert probe.stdout.startswith(str(site))  # the installed copy, not the checkout
    res = subprocess.run([str(site / "bin" / "oskit"), "validate", "--project", str(project)], cwd=elsewhere,
                         env=env, capture_output=True, text=True)  # the wheel's console script
    assert res.returncode == 0, res.stderr
    assert "requests checked against the OpenSearch API spec" in res.stdout
