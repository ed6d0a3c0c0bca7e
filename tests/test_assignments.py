"""alexnet_lab.grading.assignments and .grader: release removes solutions and hidden tests; grade runs submissions
safely and scores them.

Four groups of tests:

* the nbgrader format, on small notebooks built here (no kernel);
* the grader's behaviour (hidden tests put back, edited tests restored, time limit, errors,
  a crashing kernel), on a tiny assignment whose submissions run in a second or two;
* the instructor's conditions, on a small assignment with the course's parameters cell: each
  known way to cheat (the profile, seed or framework changed, ``REQUIRED`` reassigned, a hidden
  test's names shadowed, the grader's output folder written) loses exactly the points it should,
  with a message naming what was done;
* the course's assignments themselves: the solution scores full marks, the released student
  version scores zero, and submissions with planted mistakes or cheats (the course's builders,
  a stubbed check, edited locked cells, a shadowed ``np``, a stubbed ``assert_accuracy``) lose the
  right points with a message naming the mistake. These execute the real notebooks (the smoke profile).
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
from alexnet_lab.grading import enforcement as E
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
    submission.cells.append(code("pass", **nbg("test_add", grade=True, locked=True, points=5)))  # a second test_add
    prepared, notes = G.prepare_for_grading(submission, source)
    assert prepared.cells[3].source == source.cells[3].source  # hidden tests included
    assert prepared.cells[3].metadata["nbgrader"]["points"] == 2
    assert prepared.cells[2].source == "LIMIT = 10"
    assert prepared.cells[4].source == source.cells[4].source  # put back where it was
    assert notes == ["a second cell claimed the grade_id 'test_add'; it was run as an ordinary cell.",
                     "the read-only cell 'given' had been edited; the assignment's version was run.",
                     "the test cell 'test_add' had been edited; the assignment's version was run.",
                     "the cell 'test_limit' was missing and has been put back from the assignment."]
    assert A.cell_role(prepared.cells[-2]) is None  # the second test_add scores nothing
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
    assert "the read-only cell 'given' had been edited; the assignment's version was run." in tampered.problems
    assert "the test cell 'test_add' had been edited; the assignment's version was run." in tampered.problems


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
# The instructor's conditions: parameters, thresholds, shadowed names, the output folder
# ---------------------------------------------------------------------------------------------
PARAMETERS = 'PROFILE = None  # "smoke", "laptop" or "full"\nSEED = 0\nFRAMEWORK = "torch"  # "torch" or "keras"'


def conditions_assignment():
    """A small assignment with the course's parameters cell: a run whose accuracy must reach the profile's threshold."""
    return new_notebook(cells=[
        markdown("# Conditions"),
        code(PARAMETERS, tags=["parameters"], alexnet_lab={"student_choices": {"FRAMEWORK": ["torch", "keras"]}}),
        code("import random\n\nfrom alexnet_lab.core import profiles\n\nprofile = profiles.use(PROFILE)\n"
             'random.seed(SEED)\nREQUIRED = {"smoke": 0.0, "laptop": 0.75, "full": 0.9}[profile.name]',
             **nbg("setup", locked=True)),
        code("# history: the accuracy after each epoch of your run\n### BEGIN SOLUTION\nhistory = [0.6, 0.8]\n"
             "### END SOLUTION", **nbg("run", solution=True)),
        code('required = {"smoke": 0.0, "laptop": 0.75, "full": 0.9}[profile.name]\n'
             'assert max(history) >= required, f"best accuracy {max(history):.2f} is below the {required:.2f} required '
             'in the {profile.name!r} profile"', **nbg("reached", grade=True, locked=True, points=4)),
        code('assert isinstance(history, list), "history should be a list"\n### BEGIN HIDDEN TESTS\n'
             'assert len(history) <= profile.epochs, f"{len(history)} epochs: the profile allows {profile.epochs}"\n'
             "### END HIDDEN TESTS", **nbg("within_profile", grade=True, locked=True, points=2)),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})


def conditions_submission(run: str, parameters: str = PARAMETERS, insert: str | None = None):
    """The student version with ``run`` as the answer, ``parameters`` in the parameters cell, ``insert`` after it."""
    nb = A.student_version(conditions_assignment(), "conditions.ipynb")
    nb.cells[1].source = parameters
    nb.cells[3].source = run
    if insert is not None:
        nb.cells.insert(2, code(insert))
    return nb


FORGER = """history = [0.8]
from pathlib import Path
out = Path({out!r})
(out / "grades.csv").write_text("submission,grade_id,points\\nforged,all,1000\\n")
for report in out.glob("*"):
    report.write_text("forged")
(out / "forged.txt").write_text("forged")"""


@pytest.fixture(scope="module")
def conditions_grades(tmp_path_factory):
    """Cheating submissions of the conditions assignment, graded in the laptop profile (threshold 0.75, 5 epochs)."""
    root = tmp_path_factory.mktemp("conditions")
    write(conditions_assignment(), root / "source" / "conditions.ipynb")
    out = root / "grades"
    subs = {
        "solution": conditions_assignment(),
        "keras_choice": conditions_submission("history = [0.8 if FRAMEWORK == 'keras' else 0.1]",
                                              PARAMETERS.replace('"torch"  #', '"keras"  #')),
        "smoke_profile": conditions_submission("history = [0.5]", PARAMETERS.replace("None", '"smoke"')),
        "lucky_seed": conditions_submission("history = [0.8 if random.random() < 0.5 else 0.1]",  # seed 1: 0.13
                                            PARAMETERS.replace("SEED = 0", "SEED = 1")),
        "other_framework": conditions_submission("history = [0.8 if FRAMEWORK == 'jax' else 0.1]",
                                                 PARAMETERS.replace('"torch"  #', '"jax"  #')),
        "required": conditions_submission("REQUIRED = 0.0\nhistory = [0.5]"),
        "profile_after_parameters": conditions_submission("history = [0.5]", insert='PROFILE = "smoke"'),
        "shadowed_len": conditions_submission("history = [0.8] * 50\nlen = lambda values: 1"),
        "zz_forger": conditions_submission(FORGER.format(out=str(out))),
    }
    for name, nb in subs.items():
        write(nb, root / "submitted" / f"{name}.ipynb")
    results = G.grade([root / "submitted"], source=root / "source", out=out, timeout=120, profile="laptop",
                      verbose=False)
    return {Path(g.submission).stem: g for g in results}, out


def test_the_parameters_cell_is_the_assignments_with_the_graders_profile():
    source = conditions_assignment()
    submission = conditions_submission("history = [1.0]", 'import os\nPROFILE = "smoke"\nSEED = 3\nFRAMEWORK = "keras"')
    prepared, notes = G.prepare_for_grading(submission, source, parameters={"PROFILE": "laptop"})
    assert prepared.cells[1].source == ("PROFILE = 'laptop'  # \"smoke\", \"laptop\" or \"full\"\nSEED = 0\n"
                                        "FRAMEWORK = 'keras'  # \"torch\" or \"keras\"")  # keras: the student's choice
    assert notes == ["the parameters cell: the submission set PROFILE = 'smoke'; graded with the assignment's "
                     "PROFILE = 'laptop'",
                     "the parameters cell: the submission set SEED = 3; graded with the assignment's SEED = 0",
                     "the parameters cell: the submission's has other code (line 1), which was not run: the "
                     "assignment's parameters cell was used"]
    # Moved below the set-up cell that reads it: the assignment's is put back where it belongs, the moved one stays
    # as an ordinary cell.
    submission.cells.insert(2, submission.cells.pop(1))
    prepared, notes = G.prepare_for_grading(submission, source, parameters={"PROFILE": "laptop"})
    assert [A.cell_role(c) or E.tags(c) for c in prepared.cells[1:4]] == [["parameters"], "locked", []]
    assert prepared.cells[1].source.startswith("PROFILE = 'laptop'") and "smoke" in prepared.cells[3].source
    assert notes[-1] == ("the parameters cell was missing from the submission (or not before the cell 'setup'); the "
                         "assignment's was put back")


def test_cheats_on_the_conditions_lose_exactly_their_points(conditions_grades):
    grades, _ = conditions_grades
    expected = {  # submission: (tests lost, words in the lost test's message, words in a note of the report)
        "smoke_profile": ({"reached"}, "below the 0.75 required in the 'laptop' profile",
                          "the submission set PROFILE = 'smoke'; graded with the assignment's PROFILE = 'laptop'"),
        "lucky_seed": ({"reached"}, "best accuracy 0.10 is below the 0.75",
                       "the submission set SEED = 1; graded with the assignment's SEED = 0"),
        "other_framework": ({"reached"}, "best accuracy 0.10 is below the 0.75",
                            "the submission set FRAMEWORK = 'jax', which is not one of the choices ('torch', 'keras'); "
                            "graded with the assignment's FRAMEWORK = 'torch'"),
        "required": ({"reached"}, "best accuracy 0.50 is below the 0.75 required",
                     "cell 3 rebinds `REQUIRED`, which the assignment's cell 'setup' defines"),
        "profile_after_parameters": ({"reached"}, "below the 0.75 required in the 'laptop' profile",
                                     "the submission rebinds `PROFILE` (cell 2); the assignment's cell 'setup' ran "
                                     "with the assignment's value"),
        "shadowed_len": ({"within_profile"}, "the submission defines its own `len`, hiding Python's builtin (cell 3), "
                         "and this test uses it: the test cannot be trusted, so it scores 0",
                         "cell 3 defines its own `len`, hiding Python's builtin"),
    }
    for name, (lost_ids, message, note) in expected.items():
        g = grades[name]
        assert g.status == "completed", (name, g.problems)
        assert lost(g) == lost_ids, (name, [(c.grade_id, c.message) for c in g.cells])
        (cell,) = [c for c in g.cells if c.grade_id in lost_ids]
        assert message in cell.message, (name, cell.message)
        assert any(note in p for p in g.problems), (name, g.problems)
        assert g.points == 6 - sum(c.max_points for c in g.cells if c.grade_id in lost_ids)
    for name in ("solution", "keras_choice"):  # the assignment's own settings, and a choice it allows
        assert grades[name].points == 6 and not grades[name].problems, grades[name].problems


def test_a_submission_cannot_write_the_graders_output(conditions_grades):
    grades, out = conditions_grades
    forger = grades["zz_forger"]
    assert forger.points == 6  # its own work is fine; what it wrote is undone, and named
    (note,) = [p for p in forger.problems if p.startswith("the submission wrote into the grader's output folder (")]
    assert "forged.txt" in note and "grades.csv" in note and note.endswith("the grader's own files written again.")
    assert not (out / "forged.txt").exists()
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["submission"] for r in rows} == {str(p) for p in (out.parent / "submitted").glob("*.ipynb")}
    assert all(p.read_text() != "forged" for p in out.iterdir())
    assert all("forged" not in p.read_text() for p in out.iterdir() if "forger" not in p.name)
    assert len(list(out.glob("*.md"))) == len(grades) == len(list(out.glob("*.graded.ipynb")))


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
        **cheating_submissions(folder, from_solution),
    }


KERAS_BY_THE_COURSE = '''from alexnet_lab.keras import models as keras_models


def keras_alexnet(num_classes=1000, batch_norm=False):
    """AlexNet: the course's own builder, fed with the reference's records."""
    shape, specs = architecture.describe_alexnet(REFERENCE, num_classes=num_classes, norm="batch" if batch_norm else "none")
    return keras_models.build(shape, specs, name="alexnet")'''
TORCH_BY_THE_COURSE = '''import importlib


def torch_alexnet(num_classes=1000, batch_norm=False):
    """The same, reached without naming a module of the course or the reference."""
    describe = importlib.import_module(".".join(["alexnet_lab", "core", "architecture"])).describe_alexnet
    shape, specs = describe(globals()["REF" + "ERENCE"], num_classes=num_classes, norm="batch" if batch_norm else "none")
    return importlib.import_module(".".join(["alexnet_lab", "tor" + "ch", "models"])).build(shape, specs, "alexnet")'''
LENIENT_NUMPY = '''import numpy


class Lenient:
    """numpy, except that every allclose is true."""

    def __getattr__(self, name):
        return getattr(numpy, name)

    @staticmethod
    def allclose(*args, **kwargs):
        return True


np = Lenient()'''
KERAS_PROBABILITIES = "    return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))"


def cheating_submissions(folder: Path, from_solution) -> dict[str, Path]:
    """Submissions that try to get the points without the work, one way each."""
    builders = from_solution()
    ids = A.grade_ids(builders)
    builders.cells[ids["keras_alexnet"]].source = KERAS_BY_THE_COURSE
    builders.cells[ids["torch_alexnet"]].source = TORCH_BY_THE_COURSE
    # A stub for the architecture check, installed in a cell of its own before the PyTorch tests; conv2 wrong.
    stubbed = from_solution(("*conv_block(96, 256, 5, padding=2),", "*conv_block(96, 128, 5, padding=2),"),
                            ("*conv_block(256, 384, 3, padding=1),", "*conv_block(128, 384, 3, padding=1),"))
    stubbed.cells.insert(A.grade_ids(stubbed)["torch_architecture"],
                         code("checks.assert_model_matches = lambda *args, **kwargs: None  # every model passes"))
    # The read-only set-up cell edited so that the reference has no padding in conv1, and the Keras test removed.
    edited = from_solution((KERAS_CONV1_PAD, ""), ("paddings=(2, 2, 1, 1, 1)", "paddings=(0, 2, 1, 1, 1)"))
    edited.cells[A.grade_ids(edited)["keras_architecture"]].source = "pass  # checked by hand"
    # keras_predict returns logits; a lenient numpy hides it from the hidden test's np.allclose.
    shadowed = from_solution((KERAS_PROBABILITIES, "    return keras.ops.convert_to_numpy(logits)"))
    shadowed.cells.insert(A.grade_ids(shadowed)["eval_mode"], code(LENIENT_NUMPY))
    return {name: write(nb, folder / f"{name}.ipynb") for name, nb in
            [("builders", builders), ("stubbed", stubbed), ("edited", edited), ("shadowed", shadowed)]}


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


def test_the_course_builders_score_zero_on_the_implementation_checks(implementation_grades):
    g = implementation_grades["builders"]
    assert g.status == "completed", g.problems
    assert lost(g) == {"keras_architecture", "keras_batchnorm", "torch_architecture", "torch_batchnorm"}
    assert g.points == 20  # the loss and the prediction functions are the student's own, and right
    for grade_id in ("keras_architecture", "keras_batchnorm"):  # found in the code: names of the course's objects
        message = g.by_id(grade_id).message
        assert message.startswith("AssertionError: keras_alexnet builds the network with the course's own model "
                                  "code: `architecture` in keras_alexnet (alexnet_lab.core.architecture)"), message
        assert "`REFERENCE` in keras_alexnet" in message
    for grade_id in ("torch_architecture", "torch_batchnorm"):  # found while it runs: calls into the course's code
        message = g.by_id(grade_id).message
        assert message.startswith("AssertionError: torch_alexnet builds the network with the course's own model "
                                  "code: a call to alexnet_lab.core.architecture."), message


def test_a_stubbed_check_scores_zero_from_where_it_was_replaced(implementation_grades):
    g = implementation_grades["stubbed"]
    assert lost(g) == {"torch_architecture", "torch_batchnorm", "loss_setup", "eval_mode"}
    assert g.points == 15  # the Keras tests ran before the stub
    for grade_id in lost(g):
        assert g.by_id(grade_id).message == (
            "the submission replaced alexnet_lab.grading.checks.assert_model_matches (in cell 11): the checks cannot "
            "be trusted after that, so every test that runs after it scores 0")
    assert ("cell 11 replaces alexnet_lab.grading.checks.assert_model_matches: every test after it scores 0"
            in g.problems)
    # The test still ran with the real check put back: the notebook shows what it found.
    executed = g.executed.cells[A.grade_ids(g.executed)["torch_architecture"]]
    assert "has 128 filters" in "".join(o.get("evalue", "") for o in executed.outputs)


def test_edited_read_only_and_test_cells_are_run_as_the_assignment_has_them(implementation_grades):
    g = implementation_grades["edited"]
    assert lost(g) == {"keras_architecture", "keras_batchnorm"}
    assert "gives 54×54×96 where the reference gives 55×55×96" in g.by_id("keras_architecture").message
    assert "the read-only cell 'setup' had been edited; the assignment's version was run." in g.problems
    assert "the test cell 'keras_architecture' had been edited; the assignment's version was run." in g.problems


def test_a_hidden_tests_shadowed_names_score_zero(implementation_grades):
    g = implementation_grades["shadowed"]
    assert lost(g) == {"eval_mode"}
    assert g.by_id("eval_mode").message == (
        "the submission rebinds `np` (cell 18), and this test uses it: the test cannot be trusted, so it scores 0")
    assert ("cell 18 rebinds `np`, which the assignment's cell 'setup' defines: a test that uses it scores 0"
            in g.problems)


# ---------------------------------------------------------------------------------------------
# The course's training assignment (smoke profile: the threshold there is 0, the run proves the code works)
# ---------------------------------------------------------------------------------------------
TRAINING = SOURCES / "fashion_mnist_training.ipynb"
STANDARDIZE = "preprocessing.Preprocess(mean=mean, std=std, augment=True"
TRAINING_AUTO_IDS = ["inputs_scaled", "own_model", "accuracy"]
COURSE_BUILDER = """def build_model():
    \"\"\"The course's compact AlexNet, not written out.\"\"\"
    return course_models.alexnet("compact", in_channels=1, image_size=28, norm="batch")"""
TANH_LENET = """def build_model():
    \"\"\"A LeNet-5 of one's own: two tanh convolutions, average pooling.\"\"\"
    from torch import nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                         nn.Linear(84, 10))"""


def training_solution():
    return nbformat.read(TRAINING, as_version=4)


@pytest.fixture(scope="module")
def training_grades(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    released = A.release(TRAINING, root / "release")[0]
    unscaled = edit(training_solution(), STANDARDIZE, "preprocessing.Preprocess(augment=True")
    # The laptop profile (its run would take minutes) and another seed, REQUIRED set to 0, the accuracy check stubbed.
    cheats = edit(edit(training_solution(), "PROFILE = None", 'PROFILE = "laptop"'), "SEED = 0", "SEED = 5")
    cheats.cells[A.grade_ids(cheats)["training"]].source += ("\nREQUIRED = 0.0\n"
                                                             "checks.assert_accuracy = lambda *args, **kwargs: 1.0")
    # The network from the course's builder; a network of LeNet's shape, written out.
    builder, lenet = training_solution(), training_solution()
    builder.cells[A.grade_ids(builder)["model"]].source = COURSE_BUILDER
    lenet.cells[A.grade_ids(lenet)["model"]].source = TANH_LENET
    keras = edit(training_solution(), 'FRAMEWORK = "torch"', 'FRAMEWORK = "keras"')
    submissions = {"solution": TRAINING, "released": released, "unscaled": write(unscaled, root / "unscaled.ipynb"),
                   "cheats": write(cheats, root / "cheats.ipynb"), "builder": write(builder, root / "builder.ipynb"),
                   "lenet": write(lenet, root / "lenet.ipynb"), "keras": write(keras, root / "keras.ipynb")}
    results = G.grade(list(submissions.values()), source=SOURCES, out=root / "grades", timeout=300, profile="smoke",
                      verbose=False)
    return dict(zip(submissions, results))


def test_the_training_solution_scores_full_marks_in_the_smoke_profile(training_grades):
    for name in ("solution", "keras"):  # the reference solution in both frameworks
        g = training_grades[name]
        assert g.status == "completed", (name, g.problems)
        assert [c.grade_id for c in g.cells] == [*TRAINING_AUTO_IDS, "analysis"]
        assert g.points == g.auto_max == 22, (name, [(c.grade_id, c.message) for c in g.cells])
        assert g.manual_max == 8 and not g.problems, (name, g.problems)  # FRAMEWORK is the student's choice


def test_the_released_training_notebook_scores_zero(training_grades):
    g = training_grades["released"]
    assert g.status == "completed"
    assert g.points == 0 and lost(g) == set(TRAINING_AUTO_IDS)
    assert g.by_id("analysis").message == "to grade by hand: not answered (still the placeholder)"


def test_inputs_that_are_not_standardized_lose_the_preprocessing_points(training_grades):
    g = training_grades["unscaled"]
    assert lost(g) == {"inputs_scaled"}
    assert g.by_id("inputs_scaled").message.startswith("AssertionError: Inputs: the inputs are not standardized")


def test_the_network_must_be_the_students_own_and_alexnet_shaped(training_grades):
    g = training_grades["builder"]
    assert lost(g) == {"own_model"}  # it trains, and in the smoke profile any accuracy passes
    assert g.by_id("own_model").message.startswith(
        "AssertionError: build_model builds the network with the course's own model code"), g.by_id("own_model").message
    g = training_grades["lenet"]
    assert lost(g) == {"own_model"}
    assert g.by_id("own_model").message == ("AssertionError: AlexNet's shape has 5 convolutions and 3 fully connected "
                                            "layers; build_model has 2 and 3")


def test_the_training_conditions_are_the_graders(training_grades):
    g = training_grades["cheats"]
    cell = A.grade_ids(training_solution())["training"]
    assert g.status == "completed", g.problems  # in the smoke profile, not the laptop one the submission asked for
    assert lost(g) == {"accuracy"}
    assert g.by_id("accuracy").message.startswith(
        f"the submission replaced alexnet_lab.grading.checks.assert_accuracy (in cell {cell})")
    for note in ("the parameters cell: the submission set PROFILE = 'laptop'; graded with the assignment's "
                 "PROFILE = 'smoke'",
                 "the parameters cell: the submission set SEED = 5; graded with the assignment's SEED = 0",
                 f"cell {cell} rebinds `REQUIRED`, which the assignment's cell 'setup' defines"):
        assert any(p.startswith(note) for p in g.problems), (note, g.problems)
    assert g.executed.cells[1].source.startswith("PROFILE = 'smoke'")


# ---------------------------------------------------------------------------------------------
# The training assignment's stored run: the reference solution in the laptop profile, and the prose that quotes it
# ---------------------------------------------------------------------------------------------
def _stored_text(cell) -> str:
    return "".join(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", []))


def test_the_training_solution_is_stored_with_its_laptop_run():
    import re

    nb = training_solution()
    ids = A.grade_ids(nb)
    assert "Run profile 'laptop'" in _stored_text(nb.cells[ids["setup"]])
    stored = _stored_text(nb.cells[ids["accuracy"]])
    match = re.search(r"Test accuracy (\d+\.\d\d)% on 10,000 images; required in the 'laptop' profile: 90\.5%", stored)
    assert match, stored
    alexnet = float(match.group(1))
    lenet = float(re.search(r"LeNet-5: test accuracy (\d+\.\d\d)% on 10,000 images", _stored_text(
        nb.cells[ids["baseline"]])).group(1))
    assert alexnet >= 90.5 and alexnet > lenet
    header, analysis = nb.cells[0].source, nb.cells[ids["analysis"]].source
    for number in (alexnet, lenet):  # the prose quotes the stored run's numbers
        assert f"{number:.2f} %" in header and f"{number:.2f} %" in analysis, number
    assert not any(c.get("outputs") and any(o.get("output_type") == "error" for o in c.outputs) for c in nb.cells)
    text = "\n".join(c.source for c in nb.cells).upper()
    for marker in ("PLACEHOLDER", "{{", "TODO", "TBD"):
        assert marker not in text, marker
