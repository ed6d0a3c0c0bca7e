"""The repository as a whole: environment files in step, the package's shape (light imports, module sizes), the CLI."""

from __future__ import annotations

import os
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


PACKAGE = ROOT / "alexnet_lab"
FRAMEWORK_SIDES = ("torch", "keras")  # alexnet_lab.torch and alexnet_lab.keras import their framework: that is their job


def _module_names(only_light: bool = False) -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__" or (only_light and parts[1] in FRAMEWORK_SIDES):
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_importing_the_package_imports_no_framework():
    """`import alexnet_lab`, and every module outside the two framework sides, imports no framework (nor pyplot or
    ipywidgets) until a function needs it: a Keras-only notebook never waits for PyTorch, and the reverse.
    The import-linter contracts (pyproject.toml) keep `core` and `data` free of frameworks even inside functions;
    this checks what actually happens at import time, for the layers above them too."""
    light = _module_names(only_light=True)
    assert "alexnet_lab" in light and "alexnet_lab.teaching.plots" in light and "alexnet_lab.cli.main" in light
    code = (
        "import importlib, sys\n"
        f"for name in {light!r}:\n"
        "    importlib.import_module(name)\n"
        "    heavy = [m for m in ('torch', 'tensorflow', 'keras', 'matplotlib.pyplot', 'ipywidgets') if m in sys.modules]\n"
        "    assert not heavy, f'importing {name} imported {heavy}'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_module_is_longer_than_500_lines():
    lengths = {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert len(lengths) > 30
    too_long = {path: n for path, n in lengths.items() if n > 500}
    assert not too_long, f"split these modules by meaning (at most 500 lines each): {too_long}"


def test_every_package_module_is_importable():
    """Every module of the package imports (both sides included): no module left behind by a move or a split."""
    code = "import importlib\n" + "".join(f"importlib.import_module({name!r})\n" for name in _module_names())
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]


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
