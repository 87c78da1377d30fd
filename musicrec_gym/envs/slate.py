"""``MusicRecSlate-v0``: show the listener a slate of K tracks; they pick at most one.

## Description
``MusicRec-v0``'s listener and session (five warm-up plays by the logging policy, then
a recommendation per step, listens and skips, a leave hazard that grows with skips),
but at each step the agent shows a *slate* of K distinct tracks (K = 5 by default;
``gym.make("MusicRecSlate-v0")`` is ``gym.make("MusicRec-v0", slate=5)``). The listener
picks at most one of them by a conditional logit, as RecSim's
``MultinomialLogitChoiceModel`` with a no-pick option:

- a track's *utility* is ``choice_scale`` (1) times its listen logit now: the response
  model's ``logit(p_listen)``, fatigue for repeats and recent artists included;
- the *no-pick* utility is ``no_pick_utility`` (0: a track listened to with
  probability 1/2 is as attractive as nothing);
- ``P(pick j) = exp(u_j) / (exp(u_0) + sum_{i in slate} exp(u_i))``.

The picked track is then played exactly as ``MusicRec-v0`` plays an action: the
listener listens or skips, the window and fatigue move on, and they may leave. If the
listener picks *nothing*, they leave: the session ends (``terminated``), reward 0,
nothing played. (A listener who finds nothing they want in what the service shows
closes it. It also keeps ``MusicRec-v0``'s simulator, and hence its sessions, exactly
as they are.) In the built-in world a random slate is passed over at 31% of the steps,
the optimal slate at 1.2%.

Every step reports the exact optimum: the slate of highest expected reward
``sum_j P(pick j) r_j`` (``r_j`` the expected reward of playing ``j``), found without
enumerating slates: it is the ``K - m`` tracks of highest utility plus the ``m`` of
lowest for some ``m`` (:func:`musicrec_gym.slate_choice.optimal_slates_ordered`, proved
there from Dinkelbach's method, :func:`~musicrec_gym.slate_choice.optimal_slates`; both
checked against brute force).

## Action Space
``MultiDiscrete([n_tracks] * K)`` (a :class:`~musicrec_gym.envs.slate_core.SlateSpace`,
whose ``sample()`` draws K distinct tracks): the catalog rows of the K tracks shown, in
slate order. A slate with a repeated track, of the wrong length, or with a track
outside the catalog raises ``InvalidActionError``.

## Observation Space
``MusicRec-v0``'s: ``Box(-1, 1, (9,), float32)`` in the built-in world, the session
encoder's code of the last five plays (``profile_features=True`` appends 4 profile
features); see ``musicrec_gym.envs.music_rec`` for the table.

## Rewards
The reward of the played track, as in ``MusicRec-v0`` (``reward="listen"``: 1 listened,
0 skipped; ``"time"``, ``"event"``); 0 when the listener picks nothing.

## Starting State
As ``MusicRec-v0``: a listener drawn uniformly (or ``options={"user": ...}``), after
five warm-up plays.

## Episode End
- Termination: the listener picks nothing, or (after a play) leaves with
  ``MusicRec-v0``'s hazard.
- Truncation: after ``max_steps`` slates (20 in the built-in world).
Calling ``step`` after the end without ``reset`` raises ``EpisodeEndedError``.

## Info
``MusicRec-v0``'s keys (the same at reset and every step), with these meanings, then
``picked``:

| Key                 | Type          | After a step                                   | At reset |
|---------------------|---------------|------------------------------------------------|----------|
| ``optimal_reward``  | float         | the optimal slate's expected reward            | 0.0      |
| ``expected_reward`` | float         | the shown slate's expected reward              | 0.0      |
| ``regret``          | float         | ``optimal_reward - expected_reward`` >= 0      | 0.0      |
| ``listened``        | bool          | the listener listened to the picked track      | False    |
| ``track``           | int           | the picked track's catalog row, -1 if none     | -1       |
| ``track_id``        | str           | its id, ``""`` if none (``string_ids=True``)   | ``""``   |
| ``user``, ``user_id`` | int, str    | the listener                                   | the same |
| ``optimal_action``  | int64 (K,)    | the optimal next slate (-1s: session ended)    | the first |
| ``step``            | int           | slates shown so far, this one included         | 0        |
| ``warmup_tracks``, ``warmup_listened`` | (5,) | the warm-up plays, as ``MusicRec-v0`` | the same |
| ``picked``          | int           | the slate position picked, -1 for no pick      | -1       |

The vector environment gives them as arrays over the slots (``optimal_action``
``(num_envs, K)``).

## Arguments
```python
gym.make("MusicRecSlate-v0", slate=5, choice_scale=1.0, no_pick_utility=0.0,
         world=None, reward="listen", profile_features=False, max_steps=None,
         string_ids=False, long_term=False, render_mode=None)
```
- ``slate``: K, an int in ``[1, n_tracks]``.
- ``choice_scale``: utility per unit of listen logit, a number > 0.
- ``no_pick_utility``: the no-pick option's utility, a number.
- The others as ``MusicRec-v0``'s (``render_mode``: ``"ansi"`` or ``"rgb_array"``).

``gym.make_vec("MusicRecSlate-v0", num_envs=N)`` gives :class:`SlateVectorEnv`
(``autoreset_mode`` same-step, the default, or disabled); its slot ``i`` gives, draw for
draw, the trajectory of a single env reset with seed ``seed + i`` (picks, plays, rewards and
ends identical; expected rewards to the last bits of a matrix product): the pick is
drawn from the slot's own stream (one uniform before the play's draws).

## Version History
- v0: first release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from musicrec_gym.envs.core import check_seed, first_slot, seed_first_slot
from musicrec_gym.envs.music_rec import resolve_user
from musicrec_gym.envs.slate_core import (
    CHOICE_SCALE,
    DEFAULT_SLATE,
    NO_PICK_UTILITY,
    SlateCore,
)
from musicrec_gym.envs.vector import MusicRecVectorEnv, autoreset_mode_of, vector_kwargs
from musicrec_gym.errors import ArgumentError, ConfigError, EpisodeEndedError, did_you_mean
from musicrec_gym.world import World

SETTING = "slate"
"""The environments' ``setting`` attribute (see ``musicrec_gym.envs.factory``)."""


class SlateEnv(gym.Env):
    """One listener shown slates; see the module docstring for the tables.

    Attributes:
        setting: ``"slate"``.
        slate_size: K.
        choice: The listener's choice model (a ``SlateChoice``: what SlateQ-style agents
            combine their item values with).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    setting = SETTING

    def __init__(
        self,
        slate: int = DEFAULT_SLATE,
        render_mode: str | None = None,
        world: str | Path | World | None = None,
        choice_scale: float = CHOICE_SCALE,
        no_pick_utility: float = NO_PICK_UTILITY,
        **kwargs: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            modes = self.metadata["render_modes"]
            hint = did_you_mean(render_mode, modes) if isinstance(render_mode, str) else ""
            raise ArgumentError(
                f"`render_mode` must be None, 'ansi' or 'rgb_array', got {render_mode!r}.{hint}"
            )
        self.render_mode = render_mode
        self.core = SlateCore(
            1, slate=slate, choice_scale=choice_scale, no_pick_utility=no_pick_utility,
            world=world, **kwargs,
        )  # fmt: skip
        self.world = self.core.world
        self.slate_size = self.core.k
        self.choice = self.core.choice
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self._seeded = False
        self._done = True
        self._last_obs = np.zeros((1, self.core.obs_dim), np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a session; the same seed gives the same session (as ``MusicRec-v0``).

        Raises:
            ConfigError: A seed that is negative or not an int, or bad ``options``.
        """
        seed = check_seed(seed)
        user = resolve_user(self.core, options)
        super().reset(seed=seed)
        seed_first_slot(self.core.sim, seed, self._seeded)
        self._seeded = True
        obs, info = self.core.reset_one(user)
        self._last_obs = obs[None].copy()
        self._done = False
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Show the slate ``action`` (K distinct track indices)."""
        if self._done:
            raise EpisodeEndedError(
                "step() called after the episode ended (or before the first reset): "
                "call reset() to start a new session"
            )
        slates = self.core.check_slates(action, single=True)
        obs, reward, terminated, truncated, info, _ = self.core.step_slates(
            slates, self._last_obs, autoreset=False
        )
        self._last_obs = obs
        term, trunc = bool(terminated[0]), bool(truncated[0])
        self._done = term or trunc
        return obs[0].copy(), float(reward[0]), term, trunc, first_slot(info)

    def render(self) -> str | np.ndarray | None:
        """The session so far: text (``"ansi"``) or an RGB image (``"rgb_array"``)."""
        if self.render_mode == "ansi":
            return self.core.render_session(0)
        if self.render_mode == "rgb_array":
            return self.core.render_image(0)
        return None


class SlateVectorEnv(MusicRecVectorEnv):
    """``num_envs`` listeners shown slates at once (``gym.make_vec("MusicRecSlate-v0")``).

    ``MusicRecVectorEnv``'s seeding, reset masks and info layout (its ``reset`` is
    inherited); ``autoreset_mode`` same-step (default) or disabled.

    Args:
        num_envs: Number of concurrent listeners, an int >= 1.
        slate, choice_scale, no_pick_utility: As for :class:`SlateEnv`.
        world, max_episode_steps, render_mode: As for ``MusicRecVectorEnv``.
        autoreset_mode: ``SAME_STEP`` (or ``"same_step"``) or ``DISABLED``
            (``"disabled"``); ``NEXT_STEP`` is not supported (``ConfigError``).
        **kwargs: ``MusicRec-v0``'s other arguments.
    """

    setting = SETTING

    def __init__(
        self,
        num_envs: int = 1,
        slate: int = DEFAULT_SLATE,
        world: str | Path | World | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        choice_scale: float = CHOICE_SCALE,
        no_pick_utility: float = NO_PICK_UTILITY,
        **kwargs: Any,
    ) -> None:
        self.autoreset_mode = autoreset_mode_of(autoreset_mode)
        if self.autoreset_mode is AutoresetMode.NEXT_STEP:
            raise ConfigError(
                "MusicRecSlate-v0's vector env supports autoreset_mode SAME_STEP ('same_step', "
                "the default) and DISABLED ('disabled'), not NEXT_STEP"
            )
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        kwargs = vector_kwargs(num_envs, render_mode, max_episode_steps, world, kwargs)
        self.core = SlateCore(
            int(num_envs), slate=slate, choice_scale=choice_scale,
            no_pick_utility=no_pick_utility, world=world, **kwargs,
        )  # fmt: skip
        self.world = self.core.world
        self.num_envs = int(num_envs)
        self.slate_size = self.core.k
        self.choice = self.core.choice
        self.render_mode = None
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = spaces.Box(
            -1.0, 1.0, shape=(self.num_envs, self.core.obs_dim), dtype=np.float32
        )
        self.action_space = spaces.MultiDiscrete(
            np.full((self.num_envs, self.core.k), self.world.n_tracks)
        )
        # the state MusicRecVectorEnv.reset reads and writes
        self._all = np.arange(self.num_envs)
        self._mask = np.ones(self.num_envs, dtype=bool)
        self._seeded = False
        self._started = False
        self._pending = np.zeros(self.num_envs, dtype=bool)  # (next-step only: unused)
        self._counters = np.zeros(0, dtype=np.uint64)
        self._ended = np.zeros(self.num_envs, dtype=bool)
        self._last_obs: np.ndarray | None = None

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Show slate ``actions[i]`` (K distinct tracks) in slot ``i``; ended sessions restart."""
        if not self._started:
            raise ConfigError("step() called before reset(): call reset() first")
        core = self.core
        slates = core.check_slates(actions)
        disabled = self.autoreset_mode is AutoresetMode.DISABLED
        if disabled and self._ended.any():
            raise EpisodeEndedError(
                f"step() with the sessions of slots {np.flatnonzero(self._ended).tolist()} "
                "ended (autoreset_mode=DISABLED): reset them first with "
                "reset(options={'reset_mask': mask})"
            )
        obs, reward, terminated, truncated, info, final = core.step_slates(
            slates, self._last_obs, autoreset=not disabled
        )
        self._last_obs = obs
        info = self._with_masks(info)
        done = terminated | truncated
        if disabled:
            self._ended = done
            return obs, reward, terminated, truncated, info
        if not done.any():
            return obs, reward, terminated, truncated, info
        final_info = dict(info)
        final_info["_final_obs"] = done
        info["final_obs"] = final  # zeros where no session ended
        info["_final_obs"] = done
        info["final_info"] = final_info
        info["_final_info"] = done
        info.update(core.state_info())  # the sessions now in the slots: new where one ended
        return obs, reward, terminated, truncated, info
