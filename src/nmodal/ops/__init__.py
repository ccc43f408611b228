"""Numerical kernels shared by the model and the losses (the bottom layer: imports nothing
else of nmodal but :mod:`nmodal.errors`): float32 CPU products through oneDNN and cheap
dropout masks."""
