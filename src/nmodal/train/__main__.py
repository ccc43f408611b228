"""``torchrun --nproc-per-node N -m nmodal.train STORE --out DIR ...``: ``nmodal train`` on
several processes (DDP, negatives gathered across processes); see
:mod:`nmodal.train.distributed`. Outside torchrun it is plain ``nmodal train``."""

import sys

from nmodal.train.distributed import main

sys.exit(main())
