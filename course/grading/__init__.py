"""Autograding real submissions safely: `make autograde LAB=... [WORKERS=N]` (see docs/GRADING.md).

* ``autograde``: the driver (per-submission scratch courses, parallel workers, merge, feedback, export).
* ``sandbox``: the kernel launcher (namespaces, hidden paths, no network, nobody, resource limits).
* ``integrity``: checks and repairs a submission copy against the gradebook (deleted/edited cells).
* ``preprocessors``: nbgrader steps (notebook time limit, zero for unfinished cells, output scrubbing).

Nothing in ``labkit`` imports this package.
"""
