"""Autograding untrusted submissions: `make autograde LAB=... [WORKERS=N]` (docs/GRADING.md).

One job per module: ``settings``, ``sandbox`` (bubblewrap launcher) + ``isolation`` (its configuration and
probe), ``integrity``, ``submission`` + ``execution`` (one hand-in, nbgrader made safe), ``verdicts`` +
``wire`` + ``forbid`` (test cells evaluated in the trusted grader, not in the student's kernel), ``scrub``,
``gradebook`` (template, merge, scores), ``report``, and ``autograde`` (the command line).

Nothing in ``labkit`` imports this package.
"""
