"""Session-length prediction from listening histories (docs/design.md §4).

``summary`` turns plays into per-user session rows and a time split, ``models`` holds the
PyTorch sequence regressors, ``clusters`` the user clustering and its diagnostics,
``grid`` the YAML grid behind ``musicrec session-length``, ``synthetic`` the histories of
the synthetic world, and ``leave`` the bridge from a fitted model to the simulator's
leave model.
"""
