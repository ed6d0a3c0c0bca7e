"""Checks that explain a student's mistakes, and the assignment grader.

* :mod:`alexnet_lab.grading.checks` -- a student's model against the reference, the set-up mistakes
  that train badly without an error, what a training history points at, and whether a model function
  is the student's own code;
* :mod:`alexnet_lab.grading.assignments` -- the nbgrader notebook format and the student versions (release);
* :mod:`alexnet_lab.grading.grader` -- running submissions with a time limit under the instructor's
  conditions, and scoring them;
* :mod:`alexnet_lab.grading.enforcement` -- the instructor's parameters cell, and the guard's calls
  between the cells of a submission;
* :mod:`alexnet_lab.grading.integrity` -- the guard itself, inside the submission's kernel: replaced
  check functions, changed names;
* :mod:`alexnet_lab.grading.reports` -- ``grades.csv``, the reports, the grader's output folder.
"""
