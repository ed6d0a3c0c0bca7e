"""alexnet_lab.grading.assignments and .grader: release removes solutions and hidden tests; grade runs submissions
safely and scores them.

Three groups of tests:

* the nbgrader format, on small notebooks built here (no kernel);
* the grader's behaviour (hidden tests put back, edited tests restored, time limit, errors,
  a crashing kernel), on a tiny assignment whose submissions run in a second or two;
* the course's assignments themselves: the solution scores full marks, the released student
  version scores zero, and submissions with planted mistakes lose the right points with a
  message naming the mistake. These execute the real notebooks (the smoke profile).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from alexnet_lab.grading import assignments as A
from alexnet_lab.grading import grader as G

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "assignments"


def nbg(grade_id, *, solution=False, grade=False, locked=False, points=None, task=False):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": task}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def code(source, **metadata):
    cell = new_code_cell(source)
    cell.metadata.update(metadata)
    return cell


def markdown(source, **metadata):
    cell = new_markdown_cell(source)
    cell.metadata.update(metadata)
    return cell


def tiny_assignment():
    """A small assignment in nbgrader's format: a function to write, two tests (one hidden), a written answer."""
    return new_notebook(cells=[
        markdown("# Tiny assignment\nWrite `add`."),
        code("def add(a, b):\n    # Return the sum of a and b.\n    ### BEGIN SOLUTION\n    return a + b\n"
             "    ### END SOLUTION", **nbg("add", solution=True)),
        code("LIMIT = 10", **nbg("given", locked=True)),
        code('assert add(1, 2) == 3, "add(1, 2) should be 3"\n### BEGIN HIDDEN TESTS\n'
             'assert add(-1, 1) == 0, "hidden test: add(-1, 1) should be 0"\n### END HIDDEN TESTS',
             **nbg("test_add", grade=True, locked=True, points=2)),
        code('assert LIMIT == 10, "LIMIT was changed"', **nbg("test_limit", grade=True, locked=True, points=1)),
        markdown("Addition is commutative because ...", **nbg("explain", solution=True, grade=True, points=3)),
        code("import os\nprint('pid', os.getpid())"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})


def edit(nb, old: str, new: str, count: int = 1):
    """Replace ``old`` by ``new`` in the cells' sources; fail if it does not occur exactly ``count`` times."""
    found = sum(cell.source.count(old) for cell in nb.cells)
    assert found == count, f"expected {count} occurrence(s) of {old!r} in the notebook, found {found}"
    for cell in nb.cells:
        cell.source = cell.source.replace(old, new)
    return nb


def write(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# ---------------------------------------------------------------------------------------------
# The format: validation and the student version
# ---------------------------------------------------------------------------------------------
def test_student_version_replaces_solutions_and_removes_hidden_tests():
    source = tiny_assignment()
    source.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="secret output")]
    student = A.student_version(source, "tiny.ipynb")
    func, given, test_add, _, answer, _ = student.cells[1:]
    assert func.source == ("def add(a, b):\n    # Return the sum of a and b.\n"
                           "    # YOUR CODE HERE: replace this line with your code (the comments above say what to write).\n"
                           "    raise NotImplementedError(\"your code goes here\")")
    assert given.source == "LIMIT = 10"
    assert test_add.source == 'assert add(1, 2) == 3, "add(1, 2) should be 3"'
    assert answer.source == A.TEXT_STUB
    assert all(c.get("outputs", []) == [] for c in student.cells if c.cell_type == "code")
    assert student.metadata["alexnet_lab"]["assignment"] == "tiny"
    assert [A.cell_role(c) for c in student.cells] == [None, "solution", "locked", "autograded", "autograded",
                                                      "manual", None]
    # The source is left as it was.
    assert "return a + b" in source.cells[1].source and "HIDDEN" in source.cells[3].source


def test_a_solution_cell_without_markers_is_replaced_whole():
    nb = new_notebook(cells=[code("x = 42", **nbg("x", solution=True))])
    assert A.student_version(nb).cells[0].source == A.CODE_STUB


@pytest.mark.parametrize(("change", "words"), [
    (lambda nb: nb.cells[2].metadata["nbgrader"].update(grade_id="add"), "grade_id 'add' is used by cells 1 and 2"),
    (lambda nb: setattr(nb.cells[1], "source", "### BEGIN SOLUTION\nx = 1"), "is never closed"),
    (lambda nb: setattr(nb.cells[1], "source", "x = 1\n### END SOLUTION"), "without a '### BEGIN SOLUTION' before it"),
    (lambda nb: setattr(nb.cells[2], "source", "### BEGIN SOLUTION\nx\n### END SOLUTION"), "not a solution cell"),
    (lambda nb: setattr(nb.cells[1], "source", "### BEGIN HIDDEN TESTS\nx\n### END HIDDEN TESTS"),
     "hidden tests in a cell that is not an autograded test cell"),
    (lambda nb: nb.cells[4].metadata["nbgrader"].update(points=0), "needs points > 0"),
    (lambda nb: nb.cells[4].metadata["nbgrader"].pop("grade_id"), "without a grade_id"),
])
def test_inconsistent_markings_are_refused_with_the_cell_named(change, words):
    nb = tiny_assignment()
    change(nb)
    with pytest.raises(A.AssignmentFormatError, match="tiny.ipynb") as info:
        A.validate(nb, "tiny.ipynb")
    assert words in str(info.value)


def test_release_of_the_course_assignments(tmp_path):
    written = A.release(SOURCES, tmp_path / "release")
    assert sorted(p.name for p in written) == sorted(p.name for p in SOURCES.glob("*.ipynb"))
    assert len(written) >= 2
    for path in written:
        student = nbformat.read(path, as_version=4)
        solution = nbformat.read(SOURCES / path.name, as_version=4)
        text = "\n".join(c.source for c in student.cells)
        for marker in (A.BEGIN_SOLUTION, A.END_SOLUTION, A.BEGIN_HIDDEN, A.END_HIDDEN):
            assert marker not in text, f"{path.name}: {marker} left in the student version"
        assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
        assert [A.cell_role(c) for c in student.cells] == [A.cell_role(c) for c in solution.cells]
        # Every solution line is gone from the student's solution cells.
        for s_cell, st_cell in zip(solution.cells, student.cells):
            if A.cell_role(s_cell) in ("solution", "manual"):
                inside = s_cell.source.split(A.BEGIN_SOLUTION)[-1].split(A.END_SOLUTION)[0]
                hidden = [line for line in inside.splitlines() if line.strip() and line.strip() not in st_cell.source]
                assert hidden or not inside.strip(), f"{path.name}: solution not removed"
                assert "NotImplementedError" in st_cell.source or st_cell.source == A.TEXT_STUB


def test_release_is_atomic_and_refuses_missing_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="No assignment notebooks at"):
        A.release(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no .ipynb files"):
        A.release(tmp_path / "empty", tmp_path / "out")
    # A notebook that fails validation writes nothing.
    bad = tiny_assignment()
    bad.cells[1].source = "### BEGIN SOLUTION"
    write(bad, tmp_path / "bad" / "bad.ipynb")
    with pytest.raises(A.AssignmentFormatError):
        A.release(tmp_path / "bad", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_prepare_for_grading_restores_tests_and_read_only_cells():
    source = tiny_assignment()
    submission = A.student_version(source, "tiny.ipynb")
    submission.cells[3].source = "pass  # I removed the test"
    submission.cells[3].metadata["nbgrader"]["points"] = 100
    submission.cells[2].source = "LIMIT = 11"
    del submission.cells[4]  # the LIMIT test
    prepared, notes = G.prepare_for_grading(submission, source)
    assert prepared.cells[3].source == source.cells[3].source  # hidden tests included
    assert prepared.cells[3].metadata["nbgrader"]["points"] == 2
    assert prepared.cells[2].source == "LIMIT = 10"
    assert prepared.cells[4].source == source.cells[4].source  # put back where it was
    assert notes == ["the cell 'test_limit' was missing and has been put back from the assignment."]
    assert "NotImplementedError" in prepared.cells[1].source  # the student's own cells stay


# ---------------------------------------------------------------------------------------------
# The grader, on the tiny assignment
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_grades(tmp_path_factory):
    """Grade a set of submissions of the tiny assignment once; the tests below read the results."""
    root = tmp_path_factory.mktemp("tiny")
    source = tiny_assignment()
    write(source, root / "source" / "tiny.ipynb")
    student = A.student_version(source, "tiny.ipynb")
    subs = root / "submitted"
    write(source, subs / "solution.ipynb")
    write(student, subs / "released.ipynb")
    write(edit(A.student_version(source, "tiny.ipynb"), 'raise NotImplementedError("your code goes here")',
               "return 3  # passes the visible test"), subs / "hardcoded.ipynb")
    tampered = edit(A.student_version(source, "tiny.ipynb"), 'raise NotImplementedError("your code goes here")',
                    "return a + b")
    tampered.cells[3].source = "pass"
    tampered.cells[2].source = "LIMIT = 11"
    del tampered.cells[4]
    write(tampered, subs / "tampered.ipynb")
    write(edit(A.student_version(source, "tiny.ipynb"), 'raise NotImplementedError("your code goes here")',
               'raise RuntimeError("boom")'), subs / "raises.ipynb")
    (subs / "unreadable.ipynb").write_text("{ this is not a notebook")
    write(new_notebook(cells=[code("1 + 1")]), subs / "unrelated.ipynb")
    start = time.monotonic()
    results = G.grade([subs], source=root / "source", out=root / "grades", timeout=60, verbose=False)
    return {Path(g.submission).stem: g for g in results}, root, time.monotonic() - start


def test_tiny_solution_and_release(tiny_grades):
    grades, _, _ = tiny_grades
    solution, released = grades["solution"], grades["released"]
    assert (solution.points, solution.auto_max, solution.manual_max) == (3, 3, 3)
    assert solution.by_id("explain").message == "to grade by hand: answered"
    assert released.points == 1 and released.status == "completed"  # test_limit needs no code of the student
    assert released.by_id("test_add").message == "NotImplementedError: your code goes here"
    assert released.by_id("explain").message == "to grade by hand: not answered (still the placeholder)"


def test_hidden_tests_are_put_back_for_grading(tiny_grades):
    grades, _, _ = tiny_grades
    hardcoded = grades["hardcoded"]
    assert hardcoded.by_id("test_add").points == 0
    assert hardcoded.by_id("test_add").message == "AssertionError: hidden test: add(-1, 1) should be 0"


def test_edited_and_deleted_tests_are_restored(tiny_grades):
    grades, _, _ = tiny_grades
    tampered = grades["tampered"]
    assert [(c.grade_id, c.points) for c in tampered.cells if c.kind == "auto"] == [("test_add", 2), ("test_limit", 1)]
    assert any("'test_limit' was missing" in p for p in tampered.problems)


def test_a_submission_that_raises_loses_the_points_that_depend_on_it(tiny_grades):
    grades, _, _ = tiny_grades
    raises = grades["raises"]
    assert raises.status == "completed"
    assert raises.by_id("test_add").points == 0 and raises.by_id("test_limit").points == 1
    assert raises.by_id("test_add").message == "RuntimeError: boom"


def test_unreadable_and_unrelated_notebooks_are_reported(tiny_grades):
    grades, root, _ = tiny_grades
    assert grades["unreadable"].status == "unreadable" and grades["unreadable"].cells == []
    assert grades["unrelated"].status == "unmatched"
    assert "matches none of the assignments (tiny)" in grades["unrelated"].problems[0]
    (report,) = (root / "grades").glob("*unrelated.md")
    assert "Not graded (unmatched)" in report.read_text()


def test_the_student_code_runs_in_another_process(tiny_grades):
    grades, _, _ = tiny_grades
    executed = grades["solution"].executed
    printed = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    assert printed.startswith("pid ") and int(printed.split()[1]) != os.getpid()
    assert "add" not in globals()


def test_csv_and_reports(tiny_grades):
    grades, root, _ = tiny_grades
    with open(root / "grades" / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == G.CSV_COLUMNS
    hardcoded = [r for r in rows if r["submission"].endswith("hardcoded.ipynb")]
    assert [(r["grade_id"], r["points"], r["max_points"], r["kind"]) for r in hardcoded] == [
        ("test_add", "0", "2", "auto"), ("test_limit", "1", "1", "auto"), ("explain", "0", "3", "manual")]
    reports = {p.name: p.read_text() for p in (root / "grades").glob("*.md")}
    report = next(text for name, text in reports.items() if name.endswith("hardcoded.md"))
    assert "**Autograded: 1 / 3 points** · 3 more points are graded by hand" in report
    assert "| test_add | 0 / 2 | AssertionError: hidden test: add(-1, 1) should be 0 |" in report
    assert any(p.name.endswith("solution.graded.ipynb") for p in (root / "grades").iterdir())


def test_a_notebook_that_loops_forever_is_stopped_at_the_time_limit(tmp_path):
    source = tiny_assignment()
    write(source, tmp_path / "source" / "tiny.ipynb")
    looping = edit(A.student_version(source, "tiny.ipynb"), 'raise NotImplementedError("your code goes here")',
                   "return a + b")
    looping.cells[1].source = "while True:\n    pass\n" + looping.cells[1].source
    write(looping, tmp_path / "loops.ipynb")
    start = time.monotonic()
    (g,) = G.grade([tmp_path / "loops.ipynb"], source=tmp_path / "source", out=tmp_path / "grades", timeout=6,
                   verbose=False)
    assert time.monotonic() - start < 60
    assert g.status == "timeout" and g.points == 0
    assert g.by_id("test_add").message.startswith("not run: the notebook ran out of time: it is allowed 6 s in all "
                                                   "and cell 1 was still running")
    assert "stopped at the time limit" in (tmp_path / "grades" / next(
        p.name for p in (tmp_path / "grades").glob("*.md"))).read_text()


def test_a_notebook_that_kills_its_kernel_is_graded_as_crashed(tmp_path):
    source = tiny_assignment()
    write(source, tmp_path / "source" / "tiny.ipynb")
    crashing = A.student_version(source, "tiny.ipynb")
    crashing.cells[1].source = "import os\nos._exit(1)"
    write(crashing, tmp_path / "crash.ipynb")
    (g,) = G.grade([tmp_path / "crash.ipynb"], source=tmp_path / "source", out=tmp_path / "grades", timeout=60,
                   verbose=False)
    assert g.status == "crashed" and g.points == 0
    assert g.by_id("test_add").message.startswith("not run: the kernel died in cell 1")


def test_cli_release_and_grade(tmp_path):
    source = tiny_assignment()
    write(source, tmp_path / "source" / "tiny.ipynb")
    run = [sys.executable, "-m", "alexnet_lab", "assignment"]
    result = subprocess.run(run + ["release", "--source", "source", "--out", "release"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "wrote release/tiny.ipynb" in result.stdout
    result = subprocess.run(run + ["grade", "release/tiny.ipynb", "--source", "source", "--out", "grades",
                                   "--timeout", "60"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "release/tiny.ipynb" in result.stdout and "1 / 3" in result.stdout
    assert (tmp_path / "grades" / "grades.csv").exists()
    result = subprocess.run(run + ["release", "--source", "missing"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert "No assignment notebooks at missing" in result.stderr


# ---------------------------------------------------------------------------------------------
# The course's implementation assignment: solution, release, planted mistakes
# ---------------------------------------------------------------------------------------------
IMPLEMENTATION = SOURCES / "alexnet_implementation.ipynb"
KERAS_CONV1_PAD = "        layers.ZeroPadding2D(2),              # 224×224×3 -> 228×228×3\n"
KERAS_RELU = "        block.append(layers.ReLU())  # max(0, x): the non-linearity that made deep nets fast to train\n"
TORCH_EVAL = "    model.eval()  # dropout off, BatchNorm uses its running averages\n"
KERAS_PREDICT = "    logits = model(images, training=False)  # dropout off, BatchNorm uses its moving averages\n"
TORCH_FC8 = "        nn.Linear(4096, num_classes),                 # fc8"


def planted_submissions(folder: Path) -> dict[str, Path]:
    """Submissions made from the solution by textual edits, two or three mistakes in separate graded parts each."""
    def from_solution(*edits):
        nb = nbformat.read(IMPLEMENTATION, as_version=4)
        for old, new in edits:
            edit(nb, old, new)
        return nb

    return {
        # 224×224 input without conv1's padding (Keras); BatchNorm left in training mode by torch_predict.
        "nopad_noeval": write(from_solution((KERAS_CONV1_PAD, ""), (TORCH_EVAL, "")), folder / "nopad_noeval.ipynb"),
        # Missing ReLU (Keras); the per-GPU channel count 128 for conv2 (PyTorch); keras_predict raises.
        "relu_channels_raises": write(from_solution(
            (KERAS_RELU, ""),
            ("*conv_block(96, 256, 5, padding=2),", "*conv_block(96, 128, 5, padding=2),"),
            ("*conv_block(256, 384, 3, padding=1),", "*conv_block(128, 384, 3, padding=1),"),
            (KERAS_PREDICT, "    logits = model.predict_logits(images)\n")), folder / "relu_channels_raises.ipynb"),
        # Softmax at the end of the PyTorch model, with nn.CrossEntropyLoss: the double softmax.
        "double_softmax": write(from_solution((TORCH_FC8, "        nn.Linear(4096, num_classes), nn.Softmax(dim=1),  # fc8")),
                                folder / "double_softmax.ipynb"),
    }


@pytest.fixture(scope="module")
def implementation_grades(tmp_path_factory):
    """Grade the solution, the released version and the planted-mistake submissions in one go (smoke profile)."""
    root = tmp_path_factory.mktemp("implementation")
    released = A.release(IMPLEMENTATION, root / "release")[0]
    planted = planted_submissions(root / "planted")
    results = G.grade([IMPLEMENTATION, released, *planted.values()], source=SOURCES, out=root / "grades",
                      timeout=300, profile="smoke", verbose=False)
    names = ["solution", "released", *planted]
    return dict(zip(names, results))


AUTO_IDS = ["keras_architecture", "keras_batchnorm", "torch_architecture", "torch_batchnorm", "loss_setup", "eval_mode"]


def lost(g: G.SubmissionGrade) -> set[str]:
    return {c.grade_id for c in g.cells if c.kind == "auto" and c.points < c.max_points}


def test_the_solution_scores_full_marks(implementation_grades):
    g = implementation_grades["solution"]
    assert g.status == "completed", g.problems
    assert [c.grade_id for c in g.cells if c.kind == "auto"] == AUTO_IDS
    assert g.points == g.auto_max == 50, [(c.grade_id, c.message) for c in g.cells]
    assert g.manual_max == 15
    assert not g.problems, g.problems


def test_the_released_notebook_runs_and_scores_zero(implementation_grades):
    g = implementation_grades["released"]
    assert g.status == "completed"
    assert g.points == 0 and lost(g) == set(AUTO_IDS)
    assert all("not answered" in c.message for c in g.cells if c.kind == "manual")
    assert any("NotImplementedError: your code goes here" in p for p in g.problems)


def test_224_input_without_padding_and_batchnorm_in_training_mode(implementation_grades):
    g = implementation_grades["nopad_noeval"]
    assert lost(g) == {"keras_architecture", "keras_batchnorm", "eval_mode"}
    message = g.by_id("keras_architecture").message
    assert "conv1" in message and "gives 54×54×96 where the reference gives 55×55×96" in message
    assert "For a 224×224 input use padding=2" in message and "feed 227×227 images" in message
    assert "BatchNorm is in training mode at evaluation" in g.by_id("eval_mode").message
    assert "model.eval()" in g.by_id("eval_mode").message


def test_missing_relu_wrong_channels_and_a_raising_function(implementation_grades):
    g = implementation_grades["relu_channels_raises"]
    assert g.status == "completed"
    assert lost(g) == {"keras_architecture", "keras_batchnorm", "torch_architecture", "torch_batchnorm", "eval_mode"}
    assert "missing ReLU after conv1" in g.by_id("keras_architecture").message
    message = g.by_id("torch_architecture").message
    assert "conv2" in message and "has 128 filters (output channels) where the reference has 256" in message
    assert g.by_id("eval_mode").message.startswith("AttributeError:")
    assert "predict_logits" in g.by_id("eval_mode").message


def test_double_softmax(implementation_grades):
    g = implementation_grades["double_softmax"]
    assert lost(g) == {"torch_architecture", "torch_batchnorm", "loss_setup"}
    assert "double softmax" in g.by_id("loss_setup").message
    assert "at least 5.91 with 1000 classes" in g.by_id("loss_setup").message
    assert "applies a softmax after fc8" in g.by_id("torch_architecture").message


# ---------------------------------------------------------------------------------------------
# The course's training assignment (smoke profile: the threshold there is 0, the run proves the code works)
# ---------------------------------------------------------------------------------------------
TRAINING = SOURCES / "fashion_mnist_training.ipynb"
STANDARDIZE = "preprocess = preprocessing.Preprocess(mean=mean, std=std)"


@pytest.fixture(scope="module")
def training_grades(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    released = A.release(TRAINING, root / "release")[0]
    unscaled = edit(nbformat.read(TRAINING, as_version=4), STANDARDIZE, "preprocess = preprocessing.Preprocess()")
    results = G.grade([TRAINING, released, write(unscaled, root / "unscaled.ipynb")], source=SOURCES,
                      out=root / "grades", timeout=300, profile="smoke", verbose=False)
    return dict(zip(["solution", "released", "unscaled"], results))


def test_the_training_solution_scores_full_marks_in_the_smoke_profile(training_grades):
    g = training_grades["solution"]
    assert g.status == "completed", g.problems
    assert [c.grade_id for c in g.cells] == ["inputs_scaled", "accuracy", "analysis"]
    assert g.points == g.auto_max == 17, [(c.grade_id, c.message) for c in g.cells]
    assert g.manual_max == 8 and not g.problems


def test_the_released_training_notebook_scores_zero(training_grades):
    g = training_grades["released"]
    assert g.status == "completed"
    assert g.points == 0 and lost(g) == {"inputs_scaled", "accuracy"}
    assert g.by_id("analysis").message == "to grade by hand: not answered (still the placeholder)"


def test_inputs_that_are_not_standardized_lose_the_preprocessing_points(training_grades):
    g = training_grades["unscaled"]
    assert lost(g) == {"inputs_scaled"}
    assert g.by_id("inputs_scaled").message.startswith("AssertionError: Inputs: the inputs are not standardized")
