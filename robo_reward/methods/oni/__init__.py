"""ONI: online intrinsic rewards from asynchronous LLM feedback on NetHack messages (arXiv 2410.23022).

* :mod:`~robo_reward.methods.oni.reward`: the three reward models (retrieval, classification, ranking).
* :mod:`~robo_reward.methods.oni.worker`: the background annotation worker (newest-first queue, backlog cap).
* :mod:`~robo_reward.methods.oni.annotator`: the keyword stand-in and the OpenAI-compatible LLM client.
* :mod:`~robo_reward.methods.oni.models`: the char-level CNN and its classification / Bradley-Terry training.

The tasks are ``robo_reward/NetHack*-v0`` (:mod:`robo_reward.envs.nethack`) and the spec's small-scale grid world,
MiniGrid DoorKey printing messages (``robo_reward/TextDoorKey*-v0``, :mod:`robo_reward.envs.textgrid`); configs are
in ``configs/oni/`` (``doorkey_*``: the grid-world benchmark's arms, ``offline`` its pre-labelled reference).
The reference code (facebookresearch/oni) is CC BY-NC 4.0; this package reimplements ONI from the paper.
"""

from robo_reward.methods.oni.annotator import Annotator, KeywordAnnotator, LLMAnnotator, build_annotator
from robo_reward.methods.oni.reward import ONIClassification, ONIRanking, ONIRetrieval, ONIReward
from robo_reward.methods.oni.worker import AnnotationWorker

__all__ = ["AnnotationWorker", "Annotator", "KeywordAnnotator", "LLMAnnotator", "ONIClassification", "ONIRanking",
           "ONIRetrieval", "ONIReward", "build_annotator"]
