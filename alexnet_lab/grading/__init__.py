"""Checks that explain a student's mistakes, and the assignment grader.

* :mod:`alexnet_lab.grading.checks` -- a student's model against the reference, the set-up mistakes
  that train badly without an error, and what a training history points at;
* :mod:`alexnet_lab.grading.assignments` -- the nbgrader notebook format and the student versions (release);
* :mod:`alexnet_lab.grading.grader` -- running submissions with a time limit, scoring them, the reports.
"""
