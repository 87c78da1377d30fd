"""Agents for the slate setting (``MusicRecSlate-v0``): K tracks shown, at most one played.

- ``slate_popularity``: the K most-played tracks not yet played this session (the
  non-personalised top-K baseline).
- ``slate_topk``: the K best tracks by the LinUCB score of :mod:`agents.linear` (the same
  hybrid ridge model of a track's expected reward when played), distinct and not yet
  played this session.
- ``slateq``: SlateQ's decomposition (Ie et al., "SlateQ: A tractable decomposition for
  reinforcement learning with recommendation sets", IJCAI 2019) with the item-wise
  values learned by the same ridge model: the value of a slate is ``sum_j P(j | s, S)
  Q(s, j)`` under the listener's choice model (the environment's, as SlateQ assumes a
  known choice model), and the slate is its exact maximiser, found by the same
  fractional optimisation the environment uses for its optimum
  (:func:`musicrec_gym.slate_choice.optimal_slates`; SlateQ solves it as a linear
  program). Its item values are myopic (SlateQ with discount 0): the immediate expected
  reward of playing ``j``, whose listen probability also gives ``j``'s choice utility.
  While exploring both learners score optimistically (LinUCB's upper bound).

The learners observe the outcome of the *picked* track only (``info["track"]``, -1 when
nothing was picked): a slate's unpicked tracks teach nothing about their listen
probability. Tracks played this session (warm-up included) are never shown again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, AgentContext, register_agent
from agents.baselines import popularity_score
from agents.history import AvoidsRepeats
from agents.linear import LinUCBAgent, single_threaded_blas
from agents.validation import check_float
from musicrec_gym.errors import ConfigError
from musicrec_gym.session_features import WARMUP_KEY, WARMUP_LISTENED_KEY
from musicrec_gym.slate_choice import SlateChoice, optimal_slates, top_k

SLATE = ("slate",)


def slate_size_of(name: str, context: AgentContext) -> int:
    """The context's slate size ``K``, checked.

    Raises:
        ConfigError: The context is not of a slate environment.
    """
    if context.slate_size < 1:
        raise ConfigError(
            f"{name} acts in the slate setting (MusicRecSlate-v0 or slate=K); the "
            f"environment's setting is {context.setting!r}"
        )
    return int(context.slate_size)


def masked_top_k(scores: np.ndarray, blocked: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` best unblocked columns (a blocked one only if fewer are left)."""
    return top_k(np.where(blocked, -np.inf, scores), k)


def picked_plays(info: dict[str, Any], batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(slots, tracks, listened)`` of the slots whose listener played a track last step."""
    track = np.asarray(info.get("track", np.full(batch, -1)))
    if track.shape != (batch,):
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, bool)
    slots = np.flatnonzero(track >= 0)
    listened = np.asarray(info.get("listened", np.zeros(batch, bool)), dtype=bool)
    return slots, track[slots].astype(np.int64), listened[slots]


@register_agent("slate_popularity")
@dataclass
class SlatePopularityAgent(AvoidsRepeats, Agent):
    """The K most-played tracks (ties by catalog order) not yet played this session."""

    name = "slate_popularity"
    settings = SLATE

    def bind(self, context: AgentContext) -> None:
        """Rank the catalog by play count."""
        super().bind(context)
        self.k = slate_size_of(self.name, context)
        self._score = popularity_score(context.track_plays)

    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """The K most-played tracks not yet played in each slot's session."""
        batch = len(obs)
        self.history.blocked(batch)
        slots, tracks, _ = picked_plays(info, batch)
        keep = ~self.history.fresh[slots]  # an ended session's last pick is not this one's
        self.history.mask[slots[keep], tracks[keep]] = True
        blocked = self.history.blocked(batch, info)
        return masked_top_k(np.broadcast_to(self._score, blocked.shape), blocked, self.k)


@dataclass
class SlateBanditAgent(LinUCBAgent):
    """LinUCB's model of a played track's reward, acting with slates (see the module).

    Subclasses choose the slate from the tracks' scores (:meth:`choose`). ``act`` reads
    the last step's pick from ``info`` (``track``, ``listened``) and ``update`` learns
    from it, so call them as the protocol in ``agents.base`` says.
    """

    settings = SLATE

    def bind(self, context: AgentContext) -> None:
        """Bind as LinUCB does; the slate size from the context."""
        super().bind(context)
        self.k = slate_size_of(self.name, context)

    def choose(self, scores: np.ndarray, means: np.ndarray, blocked: np.ndarray) -> np.ndarray:
        """The slates for these track scores: ``(B, n)`` -> ``(B, K)``.

        ``scores`` are the (optimistic, when exploring) scores, ``means`` the posterior
        means of the tracks' expected rewards.
        """
        return masked_top_k(scores, blocked, self.k)

    def _follow_picks(self, batch: int, info: dict[str, Any]) -> None:
        """Fold the last step's plays and new sessions' warm-ups into the session state."""
        history = self.history
        history.blocked(batch)  # sizes the history to the batch
        self._session_slots(batch)
        fresh = history.fresh.copy()
        slots, tracks, listened = picked_plays(info, batch)
        keep = ~fresh[slots]  # an ended session's last pick is not the new session's
        slots, tracks, listened = slots[keep], tracks[keep], listened[keep]
        history.mask[slots, tracks] = True
        if self.artist_window and len(slots):
            recent = history.recent[slots]
            history.recent[slots] = np.concatenate([recent[:, 1:], tracks[:, None]], axis=1)
        if not self.session_features:
            return
        rows = np.flatnonzero(fresh)
        if len(rows) and WARMUP_KEY in info and WARMUP_LISTENED_KEY in info:
            warm = np.asarray(info[WARMUP_KEY])[rows]
            heard = np.asarray(info[WARMUP_LISTENED_KEY], dtype=bool)[rows]
            self.session.reset(rows, warm, heard)
        self.session.add(slots, tracks, listened)

    @single_threaded_blas
    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """A slate per slot from the (optimistic, when exploring) scores of every track."""
        obs = np.asarray(obs)
        self._follow_picks(len(obs), info)
        blocked = self.history.blocked(len(obs), info)
        s = self.state_x(obs)
        means = self.mean_scores(s)
        scores = means + self.alpha * self.widths(s) if explore and self.alpha > 0 else means
        slates = self.choose(scores, means, blocked)
        self._slate_cache = (obs.copy(), slates.copy(), s)
        return slates

    def update(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        dones: np.ndarray,
        info: dict[str, Any],
    ) -> None:
        """Learn the reward of each picked track (slots with no pick teach nothing)."""
        cache = getattr(self, "_slate_cache", None)
        if (
            cache is None
            or cache[0].shape != np.shape(obs)
            or not np.array_equal(cache[0], obs)
            or not np.array_equal(cache[1], actions)
        ):
            raise ConfigError(
                f"{self.name}: update() must follow the act() that chose these slates on "
                "these observations"
            )
        self._slate_cache = None
        slots, tracks, _ = picked_plays(info, len(obs))
        if not len(slots):
            return
        obs = np.asarray(obs)
        self._cache = (obs[slots], tracks, cache[2][slots])  # what LinUCB's update reads
        super().update(
            obs[slots], tracks, np.asarray(rewards)[slots], np.asarray(next_obs)[slots],
            np.asarray(dones)[slots], info,
        )  # fmt: skip


@register_agent("slate_topk")
@dataclass
class SlateTopKAgent(SlateBanditAgent):
    """The K tracks of best LinUCB score (posterior mean when not exploring)."""

    name = "slate_topk"


@register_agent("slateq")
@dataclass
class SlateQAgent(SlateBanditAgent):
    """SlateQ's decomposition with myopic item values: the best slate under the choice model.

    The item value ``Q(s, j)`` is the ridge estimate of ``j``'s expected reward (its
    LinUCB upper bound while exploring, clipped to the reward mode's range); ``j``'s
    choice utility follows from the listen probability its posterior mean implies (the
    environment's ``SlateChoice``, read by ``attach``). The slate maximises ``sum_j P(j
    | s, S) Q(s, j)`` exactly.

    Attributes:
        attraction_floor: The estimated listen probabilities behind the choice utilities
            are clipped to ``[attraction_floor, 1 - attraction_floor]``. The exact
            maximiser fills a slate with the tracks it believes least attractive (see
            ``musicrec_gym.slate_choice.optimal_slates_ordered``); a track whose appeal is
            underestimated then steals picks from the good ones, and one overestimated
            track swamps the slate. The floor bounds both.
    """

    # Tuned on the built-in world, 50k steps, 1 seed, 500 greedy episodes (eval return;
    # slate_topk 8.27 there): 0.1 -> 7.85 (0.01: 7.27, 0.05: 7.66, 0.2: 7.68).
    attraction_floor: float = 0.1

    name = "slateq"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("attraction_floor", self.attraction_floor, low=0, high=0.5)

    def bind(self, context: AgentContext) -> None:
        """Bind as LinUCB does; the choice model comes with ``attach``."""
        super().bind(context)
        self._choice: SlateChoice | None = None

    def attach(self, env: Any) -> None:
        """Keep the environment's choice model (``env.choice``)."""
        inner = getattr(env, "unwrapped", env)
        choice = getattr(env, "choice", None) or getattr(inner, "choice", None)
        if not isinstance(choice, SlateChoice):
            raise ConfigError(
                f"{self.name} needs a slate environment's choice model (env.choice); got {env!r}"
            )
        self._choice = choice

    def choose(self, scores: np.ndarray, means: np.ndarray, blocked: np.ndarray) -> np.ndarray:
        """The slates of highest decomposed value for the item values ``scores``.

        The item values are the (optimistic) scores clipped to the reward range; the
        choice utilities come from the posterior means, their listen probabilities
        clipped to ``[attraction_floor, 1 - attraction_floor]``.
        """
        choice = getattr(self, "_choice", None)
        if choice is None:
            raise ConfigError(f"{self.name}: call attach(env) with the slate environment first")
        a, b, floor = choice.reward_a, choice.reward_b, self.attraction_floor
        values = np.clip(scores, a, a + b)
        utilities = choice.utilities(np.clip(means, a + floor * b, a + (1 - floor) * b))
        slates, _ = optimal_slates(utilities, values, self.k, choice.no_pick, blocked=blocked)
        return slates
