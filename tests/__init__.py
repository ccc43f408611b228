"""nmodal's test suite: one folder per package of src/nmodal (tests/<package>/), shared
helpers in tests.helpers, imported by their qualified names."""
