"""Constants shared by the simulator's modules, defined once.

The session window, the random draws each step or reset consumes (a slot's stream
advances by exactly these counts, on the NumPy and the compiled path alike), the
SplitMix64 constants of the counter-based streams, the reward modes, and the numba
options of every compiled function.
"""

from __future__ import annotations

import numpy as np

WINDOW = 5
"""Plays the session window holds: the encoder's input, the fatigue's artist window; the
warm-up and the leave model's ``skip_window`` fit in it."""

RESET_DRAWS = 1 + 3 * WINDOW
"""Uniforms a synthetic world's reset draws: the listener, then (mix, index, listen) per
warm-up play."""
STEP_DRAWS = 4
"""Uniforms every step draws: listen, leave, and two for the reward."""
FITTED_RESET_DRAWS = 1
"""Uniforms a fitted world's reset draws: the starting session."""

REWARD_MODES = ("listen", "time", "event")
"""Reward modes; a mode's index is its code in the compiled kernels."""
MAX_STEPS_LIMIT = 10_000
"""The largest ``max_steps`` (recommendations per session) a simulator accepts."""

# SplitMix64 (Steele, Lea and Flood 2014): the stream increment, the finaliser's
# multipliers and shifts, and the scale of a 53-bit integer to [0, 1).
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
SHIFT30, SHIFT27, SHIFT31, SHIFT11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
TO_UNIT = 2.0**-53
SEED_SALT = np.uint64(0x5EED5EED5EED5EED)

JIT_OPTIONS = {"cache": True, "error_model": "numpy"}
"""numba options of every compiled simulator function (cached next to the sources)."""
