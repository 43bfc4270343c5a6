"""Robo-Dopamine (arXiv 2512.23703): a multi-view general progress reward model with policy-invariant shaping.

* ``labels``: step-aware hop labels, the balanced pair sampler and the anchor swap;
* ``progress``: the batched hop-query interface with an oracle and a small learned GRM (``http``: a real GRM);
* ``reward``: fusion of incremental, forward and backward progress and the reward r_gold + gamma Phi' - Phi;
* ``training``: pretraining, one-shot adaptation and VOC (the ``robo-reward dopamine-grm`` pipeline that
  collects demos and runs them is ``robo_reward.agents.dopamine_grm``).
"""

from robo_reward.methods.dopamine.reward import DopamineReward, ProgressPotential

__all__ = ["DopamineReward", "ProgressPotential"]
