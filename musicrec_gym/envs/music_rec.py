"""``MusicRec-v0``: recommend the next track to a simulated listener (and ``MusicRecLongTerm-v0``).

## Description
A simulated listener plays a session. Five warm-up tracks chosen by a radio-like
logging policy open it; then at each step the agent recommends the next track, and
the listener listens or skips. Skips make the listener more likely to leave. The
simulator knows the listener's hidden taste, so every step reports the best expected
reward available (``info["optimal_reward"]``) beside the expected reward of the
agent's choice.

``MusicRecLongTerm-v0`` (``gym.make("MusicRecLongTerm-v0")``, the same as
``gym.make("MusicRec-v0", long_term=True)``) adds delayed effects: the listener's
hidden *satisfaction*, raised by listened discoveries (the less played half of the
catalog), lowered by listened over-familiar picks (the most played fifth, or a repeat),
lowers the leave hazard (see Episode End). The track of best immediate listen
probability is then not the best for the session: the greedy oracle earns far less
than a planner (``musicrec optimum --long-term``), so ``info["optimal_reward"]`` (the
best *immediate* expected reward) is the greedy oracle's reference, not the optimum.
Everything else (spaces, rewards, info, arguments) is ``MusicRec-v0``'s.

## Action Space
``Discrete(n_tracks)`` (1,000 in the built-in world): the catalog row of the next
track (``env.unwrapped.world.catalog``).

## Observation Space
``Box(-1, 1, (9,), float32)`` in the built-in world: the session encoder's code of
the last five plays, each play being its 8-dim track embedding and the listened flag.
The encoder is an LSTM autoencoder trained on logged sessions, so a feature has no
fixed meaning:

| Index | Observation                            | Min | Max |
|-------|----------------------------------------|-----|-----|
| 0–8   | encoded session state (LSTM code)      | -1  | 1   |
| 9     | age / 100 (``profile_features=True``)  | 0   | 1   |
| 10    | gender is m (``profile_features=True``) | 0   | 1   |
| 11    | gender is f (``profile_features=True``) | 0   | 1   |
| 12    | registered, 2000 → 0, 2020 → 1 (``profile_features=True``) | 0 | 1 |

## Rewards
``reward="listen"`` (default): 1 if the listener listens, 0 if they skip.
``reward="time"``: listening time on a 0–5 scale (4–5 listened, 0–1.5 skipped).
``reward="event"``: event strength (complete listen 1, plus like 1 with probability
0.3, plus add-to-library 2 with probability 0.1; a skip -1).
The expected reward of every mode is affine in the listen probability, so the same
track is optimal in all three.

## Starting State
A listener drawn uniformly from the world's listeners (or ``options={"user": i}``
with an index or a user id), after five warm-up plays by the logging policy.

## Episode End
- Termination: the listener leaves. After each recommendation they leave with
  probability ``1 - exp(-(1/patience + 0.12 * skips among the last 3 plays))``.
  In ``MusicRecLongTerm-v0``: ``1 - exp(-max(0, 1/patience + 0.12 * skips - 0.03 *
  satisfaction))``, satisfaction an integer in [-3, 3], 0 when the recommendations
  start (``SatisfactionParams`` in ``musicrec_gym.sim.params``; the built-in world's
  ``simulator.json`` holds the values).
- Truncation: after ``max_steps`` recommendations (the world's by default: 20 in the
  built-in world), unless the listener leaves at that step: ``terminated`` and
  ``truncated`` are never both True. The environment truncates itself; the registered
  ``max_episode_steps`` (10,000, the largest ``max_steps``) never cuts a session
  earlier. ``gym.make(..., max_episode_steps=N)`` ends sessions after at most ``N``
  steps, as Gymnasium documents, with Gymnasium's ``TimeLimit``, which sets
  ``truncated`` whatever ``terminated`` is: a listener who leaves at step ``N`` gives
  both. ``max_steps=N`` is the same limit without that (and ``gym.make_vec``'s
  ``max_episode_steps`` is turned into it).
Calling ``step`` after the end without ``reset`` raises ``EpisodeEndedError``.

## Info
The same keys at ``reset`` and at every step, numbers only (the string ids with
``string_ids=True``). The step-outcome keys describe the step just taken; ``reset``
gives them placeholders (0 for the reward-like keys, as the reward of Gymnasium's
next-step autoreset, so that sums over an episode's infos, reset included, are the
episode's sums):

| Key                 | Type          | After a step                               | At reset |
|---------------------|---------------|--------------------------------------------|----------|
| ``optimal_reward``  | float         | best expected reward available this step   | 0.0      |
| ``expected_reward`` | float         | expected reward of the chosen track        | 0.0      |
| ``regret``          | float         | ``optimal_reward - expected_reward`` >= 0  | 0.0      |
| ``listened``        | bool          | the listener listened to the chosen track  | False    |
| ``track``           | int           | the chosen track's catalog row (action)    | -1       |
| ``track_id``        | str           | its id (``string_ids=True`` only)          | ``""``   |
| ``user``            | int           | the listener's row of ``world.listeners``  | the same |
| ``user_id``         | str           | their id (``string_ids=True`` only)        | the same |
| ``optimal_action``  | int           | the best track for the *next* step         | the same |
| ``step``            | int           | recommendations so far, this one included  | 0        |
| ``warmup_tracks``   | int64 (5,)    | the 5 plays that opened the session [1]    | the same |
| ``warmup_listened`` | bool (5,)     | their listen flags                         | the same |

[1] Catalog rows; -1 for a fitted world's track outside the catalog. The warm-up keys
are what a real service would know when it takes over. The native
vector environment (``musicrec_gym.envs.vector``) gives the same keys as arrays.

## Arguments
```python
gym.make("MusicRec-v0", world=None, reward="listen", profile_features=False,
         max_steps=None, string_ids=False, long_term=False, render_mode=None)
```
- ``world``: a world directory, a non-empty ``str`` or path (``musicrec build`` /
  ``musicrec fit`` make one); ``None`` is the built-in synthetic world shipped in the
  package.
- ``reward``: ``"listen"``, ``"time"`` or ``"event"``.
- ``profile_features``: a bool; append the listener's 4 profile features to the
  observation.
- ``max_steps``: recommendations per session before truncation, an int in
  ``[1, 10000]`` (``MAX_STEPS_LIMIT``); ``None`` is the world's (20 in the built-in
  world). A fitted world's sessions last at most its logs' longest session.
- ``string_ids``: a bool; add the string ids ``track_id`` and ``user_id`` to ``info``
  (off by default: libraries that store or batch infos, such as Minari and TorchRL,
  want numbers).
- ``long_term``: a bool; the delayed effects of ``MusicRecLongTerm-v0`` (which sets
  it). Synthetic worlds only: a world fitted to logs has no hidden satisfaction.
- ``render_mode``: what ``render()`` returns, the session so far:

| ``render_mode`` | ``render()`` returns                                          |
|-----------------|---------------------------------------------------------------|
| ``None``        | ``None``                                                      |
| ``"ansi"``      | text, a line per play: track, title, artist, genre, listened  |
| ``"rgb_array"`` | an ``(H, W, 3)`` uint8 image: a 16-pixel cell per play        |

  In the image, 25 plays to a row: green for a listen, red for a skip, dimmer for the
  warm-up's plays, grey for the plays still to come; ``(16, 400, 3)`` in the built-in
  world, the last 100 plays (4 rows) of a longer session. Its shape is fixed for an
  environment, as video recorders need.
  ``"rgb_array"`` is what Stable-Baselines3 asks for and ``RecordVideo`` records.

``reset(seed=..., options=...)`` takes any int seed >= 0, as Gymnasium does, and
``options=None`` or ``{"user": user id or index}``. Actions are integer track indices
(a Python or NumPy int, or a one-element array). Unknown keyword arguments and an
unsupported ``render_mode`` raise ``ArgumentError`` with a did-you-mean hint, a
``ConfigError`` that is also a ``TypeError`` (what libraries that try an argument,
such as Stable-Baselines3 and TorchRL, catch); every other bad argument, seed or option a
``ConfigError``, and a bad action an ``InvalidActionError``, each naming what is wrong
(booleans are never numbers).

## Version History
- v0: first release. (Registered with ``max_episode_steps=10000`` rather than 20 since
  ``max_steps`` longer than 20 was cut at 20 by the registration's ``TimeLimit``; the
  default sessions are unchanged.) Added since, the sessions unchanged: the
  ``"rgb_array"`` render mode; ``ArgumentError`` (a ``TypeError``) for unknown
  arguments; pickling (``cloudpickle``) at any point, the loaded environment continuing
  the same trajectory, as subprocess runners need. ``info`` with the same keys at reset
  and at every step, numbers only by default (``track_id`` and ``user_id`` with
  ``string_ids=True``; the reset's ``optimal_reward`` is now a placeholder 0, the best
  first recommendation being ``optimal_action``); the vector environment's
  ``autoreset_mode`` (``"next_step"``, ``"disabled"``) and ``reset_mask``. The
  ``long_term`` argument and the ``MusicRecLongTerm-v0`` id (``MusicRec-v0``'s
  sessions unchanged, bit for bit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from musicrec_gym.checks import is_int
from musicrec_gym.envs.core import (
    SessionCore,
    check_kwargs,
    check_seed,
    first_slot,
    seed_first_slot,
)
from musicrec_gym.errors import ArgumentError, ConfigError, EpisodeEndedError, did_you_mean
from musicrec_gym.world import World

_INDEX_TYPES = frozenset({int, *(np.dtype(c).type for c in np.typecodes["AllInteger"])})
"""Action types the single env's fast path takes (``bool`` is not one)."""


def resolve_user(core: SessionCore, options: dict[str, Any] | None) -> np.ndarray | None:
    """The listener asked for in ``reset(options={"user": ...})``, as an index array, or None.

    Raises:
        ConfigError: ``options`` is not a dict, has a key other than ``"user"``, or names
            no listener (an unknown id, an index out of range, a bool, a float ...).
    """
    if options is None:
        return None
    if not isinstance(options, dict):
        raise ConfigError(
            f"reset `options` must be None or a dict such as {{'user': 'u00042'}}, got {options!r}"
        )
    if not options:
        return None
    unknown = [key for key in options if key != "user"]
    if unknown:
        raise ConfigError(f"reset options: unknown key(s) {unknown!r}; allowed: 'user'")
    user = options["user"]
    if isinstance(user, str):
        matches = np.flatnonzero(core.user_ids == user)
        if not len(matches):
            raise ConfigError(f"reset options: unknown user id {user!r}")
        return matches[:1]
    if not is_int(user) or not 0 <= user < core.world.n_listeners:
        raise ConfigError(
            f"reset options: `user` must be a user id or an index in [0, "
            f"{core.world.n_listeners}), got {user!r}"
        )
    return np.array([user], dtype=np.int64)


class MusicRecEnv(gym.Env):
    """One simulated listener's session; see the module docstring for the tables."""

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        render_mode: str | None = None,
        world: str | Path | World | None = None,
        **kwargs: Any,
    ) -> None:
        check_kwargs(kwargs)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            modes = self.metadata["render_modes"]
            hint = did_you_mean(render_mode, modes) if isinstance(render_mode, str) else ""
            raise ArgumentError(
                f"`render_mode` must be None, 'ansi' or 'rgb_array', got {render_mode!r}.{hint}"
            )
        self.render_mode = render_mode
        self.core = SessionCore(1, world=world, **kwargs)
        self.world = self.core.world
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self._seeded = False
        self._done = True
        self._n_tracks = self.world.n_tracks

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a session; the same seed gives the same session.

        Args:
            seed: ``None`` (continue the random stream) or any int >= 0, as Gymnasium
                takes (a NumPy integer too).
            options: ``None`` or ``{"user": listener}`` with a user id or an index.

        Raises:
            ConfigError: A seed that is negative or not an int, or bad ``options``.
        """
        seed = check_seed(seed)
        user = resolve_user(self.core, options)
        super().reset(seed=seed)
        seed_first_slot(self.core.sim, seed, self._seeded)
        self._seeded = True
        obs, info = self.core.reset_one(user)
        self._done = False
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Recommend track ``action``."""
        if self._done:
            raise EpisodeEndedError(
                "step() called after the episode ended (or before the first reset): "
                "call reset() to start a new session"
            )
        if type(action) in _INDEX_TYPES and 0 <= (track := int(action)) < self._n_tracks:
            # the common case, without batch arrays (a fifth of the generic path's cost)
            out = self.core.step_one(track)
            self._done = out[2] or out[3]
            return out
        actions = self.core.check_actions(action, single=True)
        result, enc = self.core.step(actions)
        terminated, truncated = bool(result.terminated[0]), bool(result.truncated[0])
        self._done = terminated or truncated
        info = first_slot(self.core.step_info(actions, result, enc))
        return enc.obs[0], float(result.reward[0]), terminated, truncated, info

    def render(self) -> str | np.ndarray | None:
        """The session so far: text (``"ansi"``) or an RGB image (``"rgb_array"``)."""
        if self.render_mode == "ansi":
            return self.core.render_session(0)
        if self.render_mode == "rgb_array":
            return self.core.render_image(0)
        return None
