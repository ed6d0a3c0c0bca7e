"""The repository as a whole: environment files in step, a light package import, the CLI."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _requirement_name(req: str) -> str:
    for sep in ("==", ">=", "<=", "~=", "<", ">", ";", "["):
        req = req.split(sep)[0]
    return req.strip().lower()


def _pip_section_of_environment_yml() -> list[str]:
    """The `pip:` list of environment.yml, read without a YAML library (the file is plain)."""
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    entries = []
    for line in lines[start + 1:]:
        if not line.startswith("      - "):
            break
        entries.append(line.strip()[2:].strip())
    return entries


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pyproject = sorted(r.replace(" ", "") for r in project["dependencies"])
    conda = sorted(r.replace(" ", "") for r in _pip_section_of_environment_yml())
    assert {_requirement_name(r) for r in conda} == {_requirement_name(r) for r in pyproject}
    # Not only the same names: the same version ranges and platform markers.
    assert conda == pyproject
    python = [line for line in (ROOT / "environment.yml").read_text().splitlines() if "- python=" in line]
    assert python and python[0].split("=")[1] in ("3.10", "3.11", "3.12")


def test_torch_is_pinned_to_the_cpu_wheel_on_disk():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in deps


def test_import_alexnet_lab_is_light():
    code = (
        "import sys, alexnet_lab, alexnet_lab.architecture, alexnet_lab.cli, alexnet_lab.data, alexnet_lab.history\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "alexnet_lab", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_summary_prints_the_table():
    result = _cli("summary", "--preset", "paper")
    assert result.returncode == 0, result.stderr
    assert "conv1" in result.stdout and "fc8" in result.stdout
    assert "60,965,224" in result.stdout
    assert "659,272" in result.stdout


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_cli_summary_checks_the_framework_model(framework):
    pytest.importorskip("tensorflow" if framework == "keras" else "torch")
    result = _cli("summary", "--framework", framework, "--preset", "cifar10", "--norm", "batch")
    assert result.returncode == 0, result.stderr
    assert "matches the table's" in result.stdout


def test_cli_reports_bad_arguments():
    result = _cli("summary", "--preset", "classic", "--image-size", "20")
    assert result.returncode == 2
    assert "smallest image this network accepts is 67×67" in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="course.sh is a bash script")
def test_the_readme_lab_command_starts_jupyterlab(tmp_path):
    """`bash course.sh lab` serves the course, also as root (where Jupyter refuses to start unless told)."""
    import os
    import socket
    import time
    import urllib.error
    import urllib.request

    if not (ROOT / ".venv" / "bin" / "jupyter").exists():
        pytest.skip("no .venv: `bash course.sh test` creates it")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)}  # its runtime files stay out of ~/.local
    lab = subprocess.Popen(["bash", "course.sh", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if lab.poll() is not None:
                pytest.fail(f"JupyterLab exited with {lab.returncode}:\n{lab.stdout.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2) as answer:
                    assert answer.status == 200 and "version" in answer.read().decode()
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        pytest.fail("JupyterLab did not answer within 90 s")
    finally:
        lab.terminate()
        try:
            lab.wait(timeout=20)
        except subprocess.TimeoutExpired:
            lab.kill()
