"""Imported only by the multiprocessing forkserver (see :mod:`nmodal.lifeline`): from then
on the forkserver dies with the process that started it, and exits at once if that process
is already gone."""

import os

from nmodal.lifeline import PARENT_ENV, die_with_parent

_parent = os.environ.get(PARENT_ENV, "")
die_with_parent(int(_parent) if _parent.isdigit() else None)
