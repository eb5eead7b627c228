"""The labkit course: what is specific to this course, built on the ``labkit`` library.

* ``course.labs``: the lab sources (jupytext percent scripts) and ``course.nbbuild``, which turns
  them into the nbgrader source notebooks in ``notebooks/``;
* ``course.assignments``: the nbgrader pipeline (``python -m course ...``, ``make assignments``);
  ``course.solution_run`` records in each executed solution how it ran (model, fast, seconds,
  labkit version, device);
* ``course.grading``: safe autograding (``make autograde``).

Imports run one way: ``course`` imports ``labkit``; nothing in ``labkit`` imports ``course``.
"""
