"""musicrec-gym: Gymnasium environments for sequential music recommendation.

Importing the package registers ``MusicRec-v0`` (see ``musicrec_gym.envs.music_rec``
for its tables); ``gym.make_vec("MusicRec-v0", num_envs=N)`` gives the native batched
environment.
"""

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

ENV_ID = "MusicRec-v0"
MAX_EPISODE_STEPS = 20

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="musicrec_gym.envs.music_rec:MusicRecEnv",
        vector_entry_point="musicrec_gym.envs.vector:MusicRecVectorEnv",
        max_episode_steps=MAX_EPISODE_STEPS,
    )
