"""Curiosity rewards: the shared base (encoders, EMA normaliser), BYOL-Explore / BYOL-Hindsight and RND."""
