"""The course's notebook conventions, checked without running anything (nbval runs the notebooks themselves).

Each notebook: a title, learning goals, prerequisites, the time per profile and links to its neighbours;
a parameters cell; exercises with folded solutions; no APIs that Keras 3 or current PyTorch tooling
removed; no committed error outputs or out-of-order execution state; listed in the README.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# What newer releases removed, and what replaced it (the message a failing test shows).
REMOVED_APIS = {
    r"layers\.experimental": "Keras 3 has no layers.experimental: use keras.layers.RandomFlip etc.",
    r"ImageDataGenerator": "Keras 3 has no ImageDataGenerator: use alexnet_lab.data.preprocessing or keras.utils",
    r"keras\.preprocessing\.image": "Keras 3 removed keras.preprocessing.image: use keras.utils.load_img",
    r"\btorchsummary\b": "torchsummary is unmaintained: use torchinfo.summary",
    r"\.h5['\"]": "Keras 3 saves whole models as .keras files",
    r"\btf\.keras\b": "import keras (Keras 3) rather than tf.keras",
    r"np_utils": "keras.utils.np_utils is gone: use keras.utils.to_categorical",
}


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_the_series_is_complete_and_numbered():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 9)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_has_title_goals_prerequisites_time_and_links(path):
    header = source(cells(path)[0])
    assert header.startswith(f"# {path.name[:2]} · "), "the first cell starts with '# NN · Title'"
    for part in ("**Learning goals**", "**Prerequisites**", "**Time**"):
        assert part in header, f"the first cell should have {part}"
    number = int(path.name[:2])
    neighbours = [p.name for p in NOTEBOOKS if abs(int(p.name[:2]) - number) == 1]
    for name in neighbours:
        assert f"]({name})" in header, f"the first cell should link to {name}"
    for link in re.findall(r"\]\(([^)#]+\.(?:ipynb|md))", header):
        assert (path.parent / link).exists(), f"broken link {link}"
    assert not re.search(r"\b[A-Z]+_[A-Z]\b|TODO|TBD|FIXME", header), "a placeholder was left in the header"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_picks_the_profile(path):
    tagged = [c for c in cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "one code cell tagged 'parameters'"
    text = source(tagged[0])
    assert re.search(r"^PROFILE = None\b", text, re.M) and re.search(r"^SEED = \d+", text, re.M)
    assert any("notebook.start(PROFILE" in source(c) for c in cells(path)), "notebook.start(PROFILE, ...) is called"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercises_have_folded_solutions(path):
    markdown = "\n".join(source(c) for c in cells(path) if c["cell_type"] == "markdown")
    assert re.search(r"exercise", markdown, re.I), "a notebook ends with exercises"
    assert "<details" in markdown and "</details>" in markdown, "solutions are folded away in <details>"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_api_that_newer_releases_removed(path):
    for i, cell in enumerate(cells(path)):
        if cell["cell_type"] != "code":
            continue
        for pattern, why in REMOVED_APIS.items():
            assert not re.search(pattern, source(cell)), f"cell {i}: {why}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_one_clean_run(path):
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code if c.get("execution_count") is not None]
    assert counts == sorted(counts) and len(set(counts)) == len(counts), \
        "execution counts out of order: restart the kernel and run all before committing"
    for i, cell in enumerate(code):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"code cell {i} has a committed error: {errors[0].get('ename')}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_readme_lists_the_notebook(path):
    assert f"](notebooks/{path.name})" in (ROOT / "README.md").read_text()


def test_installed_versions_are_the_supported_ones():
    """The README states the supported ranges; pyproject.toml enforces them; the installed ones must fit."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    checked = []
    for line in deps:
        req = Requirement(line)
        if req.name not in {"torch", "tensorflow-cpu", "tensorflow", "keras", "torchinfo", "nbval"}:
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            pytest.fail(f"{req.name} is not installed: run `bash course.sh test`, which installs it")
        assert req.specifier.contains(installed.split("+")[0], prereleases=True), \
            f"{req.name} {installed} is outside the supported range {req.specifier}"
        checked.append(req.name)
    assert {"torch", "keras"} <= set(checked)


# Issue 15 ("the code a student reads") applies these to every notebook, and every notebook has been rewritten to them.
REWRITTEN = NOTEBOOKS  # all of them, 01 to 08
MARKDOWN_WORDS = 1_800


@pytest.mark.parametrize("path", REWRITTEN, ids=lambda p: p.stem)
def test_prose_stays_short(path):
    words = sum(len(re.findall(r"\w+", source(c))) for c in cells(path) if c["cell_type"] == "markdown")
    assert words <= MARKDOWN_WORDS, f"{words} words of markdown: at most {MARKDOWN_WORDS} (explain, show, check)"
    trust = [c for c in cells(path) if c["cell_type"] == "markdown"
             and source(c).startswith("## How much to trust these numbers")]
    assert len(trust) == 1, "one 'How much to trust these numbers' cell holds the caveats"


@pytest.mark.parametrize("path", REWRITTEN, ids=lambda p: p.stem)
def test_self_checks_check_what_the_student_computed(path):
    code = [source(c) for c in cells(path) if c["cell_type"] == "code"]
    asked = [name for cell in code for name in re.findall(r"^(\w+) = None\b", cell, re.M)]
    checked = [name for cell in code for name in re.findall(r"selfcheck\.check\((\w+),", cell)]
    assert len(checked) >= 2, "at least two exercises whose answer the student computes, each followed by a check"
    assert set(checked) <= set(asked), f"each checked answer is a variable the student fills in: {checked} vs {asked}"


def test_notebook_02_writes_alexnet_out_in_both_frameworks():
    """The network in plain PyTorch and plain Keras, checked against the reference layer by layer and by its logits."""
    code = "\n".join(source(c) for c in cells(NOTEBOOKS[1]) if c["cell_type"] == "code")
    for line in ("nn.Conv2d(3, 96, kernel_size=11, stride=4)", "nn.MaxPool2d(kernel_size=3, stride=2)",
                 "nn.Linear(6 * 6 * 256, 4096)", "nn.Dropout(0.5)", "layers.Conv2D(96, kernel_size=11, strides=4)",
                 "layers.MaxPooling2D(pool_size=3, strides=2)", "layers.Dense(4096)", "checks.check_model(model, \"classic\")",
                 "assert torch_gap < 1e-4 and keras_gap < 1e-4"):
        assert line in code, f"notebook 02 should contain {line!r}"
    assert code.index("torch_alexnet = nn.Sequential(") < code.index("keras_models.build("), \
        "the plain networks come before the package's builders"


def test_notebook_05_writes_the_network_and_the_training_loop_out_in_both_frameworks():
    """The compact network in plain PyTorch and Keras, checked, then a plain loop and compile/fit before the course's fit."""
    code = "\n".join(source(c) for c in cells(NOTEBOOKS[4]) if c["cell_type"] == "code")
    for line in ("torch_net = nn.Sequential(", "nn.Conv2d(3, 96, kernel_size=5, bias=False)", "nn.Linear(2 * 2 * 56, 496)",
                 "keras_net = keras.Sequential([", "layers.Conv2D(96, kernel_size=5, use_bias=False)",
                 'checks.check_model(model, "compact", norm="batch")',
                 "optimizer.zero_grad()", "loss.backward()", "optimizer.step()", "keras_net.compile(", "keras_net.fit(",
                 "transfer.keras_to_torch(k_model, t_model)"):
        assert line in code, f"notebook 05 should contain {line!r}"
    assert code.index("loss.backward()") < code.index("keras_training.fit(") and \
        code.index("keras_net.fit(") < code.index("keras_training.fit("), "the plain loops come before the course's fit"


def test_notebook_04_writes_the_study_note_network_out_and_trains_without_gradient_clipping():
    """The study note's network in plain Keras, as written and diagnosed by its dead ReLUs; no run clips gradients."""
    code = [source(c) for c in cells(NOTEBOOKS[3]) if c["cell_type"] == "code"]
    joined = "\n".join(code)
    for line in ("def study_note_network(", "layers.Conv2D(filters, size, padding=padding, activation=\"relu\"",
                 "layers.Dense(496, activation=\"relu\"", "layers.Dense(10, activation=\"softmax\"",
                 "keras.optimizers.Adam(learning_rate=lr)", "smoke_test.dead_relus(", "study_note_run(lr=3e-3",
                 "keras_models.alexnet(\"compact\", norm=\"batch\")"):
        assert line in joined, f"notebook 04 should contain {line!r}"
    assert not any("clip_grad_norm" in cell for cell in code), "issue 14: no notebook needs gradient clipping to learn"
