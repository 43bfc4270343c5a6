"""Diagnostic (not a published number): in-situ CPU split of one vector step of `robo-reward perf --pixels` (Reach,
4 envs, front + wrist 48x48): env, encoder (embed_states), head (hop or progress). Usage: python step_split.py [N]."""
import sys, time, numpy as np, torch
torch.set_num_threads(1)
import robo_reward
from robo_reward.perf import _pixel_venv
print("code:", robo_reward.__file__)
for mode in ("grm_hop", "grm_phi"):
    v = _pixel_venv(mode, "robo_reward/Reach-v0", 4, ("front", "wrist"), 48)
    model = v.evaluator.reward.model
    T = {}
    def wrap(obj, name, key):
        f = getattr(obj, name)
        def g(*a, **k):
            t = time.process_time(); out = f(*a, **k); T[key] = T.get(key, 0) + time.process_time() - t; return out
        setattr(obj, name, g)
    wrap(v.venv, "step_wait", "env (physics+render)")
    wrap(model, "embed_states", "model.embed_states")
    wrap(model, "hop" if mode == "grm_hop" else "progress", "model.hop/progress")
    wrap(model, "embed_anchors", "model.embed_anchors")
    acts = np.random.default_rng(0).uniform(-1, 1, (64, 4, 4)).astype(np.float32)
    v.reset()
    for i in range(100): v.step(acts[i % 64])
    T.clear(); N = int(sys.argv[1]) if len(sys.argv) > 1 else 1500; t0 = time.process_time()
    for i in range(N): v.step(acts[i % 64])
    tot = time.process_time() - t0
    print(f"{mode}: total {tot/N*1e3:.3f} ms/vector step; " + "; ".join(f"{k} {x/N*1e3:.3f}" for k, x in T.items()))
