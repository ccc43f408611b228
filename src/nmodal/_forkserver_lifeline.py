"""Imported only by the multiprocessing forkserver (see :mod:`nmodal.lifeline`): from then
on the forkserver dies with the process that started it."""

from nmodal.lifeline import die_with_parent

die_with_parent()
