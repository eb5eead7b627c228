"""``python -m course ...``: the assignment pipeline (see ``course.assignments``)."""
import sys

from course.assignments import main

sys.exit(main())
