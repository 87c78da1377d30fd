"""musicrec-gym: Gymnasium environments for sequential music recommendation.

Importing the package registers ``MusicRec-v0`` (see ``musicrec_gym.envs.music_rec``
for its tables); ``gym.make_vec("MusicRec-v0", num_envs=N)`` gives the native batched
environment.

The environment truncates a session itself, after ``max_steps`` recommendations (its
keyword argument; by default the world's, 20 in the built-in world). The registered
``max_episode_steps`` is one more than the largest ``max_steps`` accepted
(``MAX_EPISODE_STEPS``), so the ``TimeLimit`` that ``gym.make`` adds never ends a session,
and never marks as truncated a session the listener ended:
``gym.make("MusicRec-v0", max_steps=30)`` gives 30-step sessions. Gymnasium's own
``gym.make(..., max_episode_steps=N)`` (and ``gym.make_vec(..., max_episode_steps=N)``)
still work as documented: sessions then end after at most ``N`` steps.
"""

from gymnasium.envs.registration import register, registry

from musicrec_gym.sim.constants import MAX_STEPS_LIMIT

__version__ = "0.1.0"

ENV_ID = "MusicRec-v0"
LONG_TERM_ENV_ID = "MusicRecLongTerm-v0"
"""``MusicRec-v0`` with delayed effects: satisfaction drives the leave hazard
(``long_term=True``; see ``musicrec_gym.sim.params.SatisfactionParams``)."""
SLATE_ENV_ID = "MusicRecSlate-v0"
"""Slates: the agent shows 5 tracks, the listener picks at most one (``slate=5``; see
``musicrec_gym.envs.slate``)."""
ENV_ID_KWARGS: dict[str, dict] = {
    ENV_ID: {},
    LONG_TERM_ENV_ID: {"long_term": True},
    SLATE_ENV_ID: {"slate": 5},
}
"""Each registered id and the keyword arguments it stands for."""
MAX_EPISODE_STEPS = MAX_STEPS_LIMIT + 1
"""The registered ``max_episode_steps`` (10,001): past the longest session any
``max_steps`` allows, so the registration's ``TimeLimit`` never fires (not even together
with a listener who leaves at step 10,000: ``terminated`` and ``truncated`` never both)."""

for _id, _kwargs in ENV_ID_KWARGS.items():
    if _id not in registry:
        register(
            id=_id,
            entry_point="musicrec_gym.envs.factory:make_env",
            vector_entry_point="musicrec_gym.envs.factory:make_vector_env",
            max_episode_steps=MAX_EPISODE_STEPS,
            kwargs=dict(_kwargs),
        )
