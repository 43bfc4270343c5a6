"""RAPL: preference-aligned visual representations and an optimal-transport reward (Tian et al., ICLR 2024).

* :mod:`.sinkhorn`: log-domain differentiable Sinkhorn, the OT video distance and per-frame rewards;
* :mod:`.encoder`: the frame encoders (small CNN; frozen open_clip backbone with a trained projector);
* :mod:`.pretrain`: the encoder's self-supervised (autoencoder) pretraining on unlabelled rollout frames;
* :mod:`.align`: the Bradley-Terry triplet loss (NLL, or the reference script's ||1 - P||) and training;
* :mod:`.rlhf`: the RLHF baseline (an MLP per-frame reward on the same encoder);
* :mod:`.reward`: the episode-end rewards ``rapl_ot`` and ``rapl_rlhf`` for RL;
* :mod:`.data`, :mod:`.pipeline`: Push2D rollouts and ``robo-reward rapl`` (alignment and Spearman tables).

The oracle and the triplet store are in :mod:`robo_reward.preferences`, the labelling page in
:mod:`robo_reward.labelling`, the episode-end buffers in :mod:`robo_reward.episodic`.
"""
