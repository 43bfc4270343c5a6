"""KAGI (Lee et al., arXiv 2407.10341): keypoint/waypoint rewards from a pluggable vision-language keypoint proposer.

:mod:`.proposer` (interface, oracle stand-in, JSON cache), :mod:`.vlm` (OpenAI-compatible client, marked-image
prompt, strict parser), :mod:`.clip` (open_clip zero-shot proposer from a local checkpoint), :mod:`.reward`
(lifting, waypoint tracking, the sparse-else-dense reward). Configs: ``configs/kagi/``.
"""

from robo_reward.methods.kagi.proposer import (
    CachedProposer,
    KeypointProposer,
    OracleProposer,
    Proposal,
    ProposalError,
    Scene,
    View,
    Waypoint,
)
from robo_reward.methods.kagi.reward import KAGIReward, TaskScene, lift

__all__ = ["CachedProposer", "KAGIReward", "KeypointProposer", "OracleProposer", "Proposal", "ProposalError",
           "Scene", "TaskScene", "View", "Waypoint", "lift"]
