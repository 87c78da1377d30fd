"""The environments: ``MusicRec-v0`` (single session) and its native vector form."""

from musicrec_gym.envs.music_rec import MusicRecEnv
from musicrec_gym.envs.vector import MusicRecVectorEnv

__all__ = ["MusicRecEnv", "MusicRecVectorEnv"]
