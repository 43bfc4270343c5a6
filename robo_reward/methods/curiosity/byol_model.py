"""The BYOL-Explore / BYOL-Hindsight latent world model: networks, sequence losses and the min-max trainer.

BYOL-Explore (Guo et al., NeurIPS 2022, arXiv 2206.08332): an online encoder w_t = f_theta(o_t) and its EMA
target f_phi; a closed-loop GRU belief b_t = h_c(b_{t-1}, w_t, a_{t-1}); an open-loop GRU
b_{t,k} = h_o(b_{t,k-1}, a_{t+k-1}) (b_{t,0} = b_t) that sees only actions; a predictor g(b_{t,k}) of the
target embedding of o_{t+k}. The loss of one prediction is the normalised L2
l(t, k) = || g^(b_{t,k}) - sg(f^_phi(o_{t+k})) ||^2 = 2 - 2 cos, averaged over t and k = 1..K.

BYOL-Hindsight (Jarrett et al., ICML 2023, arXiv 2211.10515, Algorithm 2) adds a reconstructor f(b_{t,k}, a, Z)
fed a hindsight code Z ~ p(Z | b_{t,k-1}, a_{t+k-1}, w_{t+k}, eps) from a generator that sees the *target*
embedding of the realised future, and a critic c(b, a, Z) scoring the InfoNCE estimate
L_inv = mean_j [c(x_j, Z_j) - log mean_k exp c(x_j, Z_k)] of I(Z; (b, a)), the negatives Z_k being other tuples'
codes paired with the fixed x_j = (b_j, a_j). The world model minimises L_rec + lambda * L_inv; the critic
*maximises* L_inv, with its own optimiser (a single optimiser over all parameters lets the critic lower its own
estimate, so Z copies the future and every prediction error vanishes: spec pitfall 1). Scores are raw: no
sigmoid (pitfall 2).

Reconstructions where the papers are silent, each chosen after the simpler form failed in our trials:

* The critic reads a code through the reconstructor: c(x_j, Z) = -s * || f^(b_j, a_j, Z) - g_c^(b_j) ||^2, with
  g_c the critic's own Z-free predictor of the target embedding and s > 0 a learned scale. A code that lets the
  reconstructor rebuild the *predictable* part of the future matches g_c and is exposed; noise is not
  predictable by g_c and passes. A separate phi(b, a)^T psi(Z) critic was fooled: the generator hid what the
  reconstructor used in directions the critic network had not yet learned to read.
* The representation (encoder, GRUs) learns from BYOL-Explore's Z-free loss through g, and the hindsight heads sit
  on it with the belief detached. Trained through a reconstruction that Z can shortcut, the BYOL representation
  collapsed (all embeddings parallel, every error ~0).
* The world model pays lambda * max(L_inv, 0): the InfoNCE bound is unbounded below, and a world model allowed to
  drive it negative did so by spoiling its own reconstructions.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1, eps=1e-6)


def normalized_l2(pred: torch.Tensor, target_unit: torch.Tensor) -> torch.Tensor:
    """|| pred / |pred| - target ||^2 over the last axis (``target_unit`` already has unit norm)."""
    return (unit(pred) - target_unit).pow(2).sum(-1)


@dataclass(frozen=True)
class Sequences:
    """Padded per-env sequences of transitions (o_t, a_t, o_{t+1}) for training, all (E, T, ...) tensors.

    ``done[e, t]``: the episode ended after row t (terminated or truncated), so row t+1 starts a new one.
    ``score[e, t]``: predictions starting at row t count in the loss (chunks overlap by K-1 rows of lookahead).
    ``start[e]``: the belief b at row 0 where ``has_start[e]``; elsewhere row 0 starts an episode.
    """

    obs: torch.Tensor
    next_obs: torch.Tensor
    action: torch.Tensor
    done: torch.Tensor
    valid: torch.Tensor
    score: torch.Tensor
    start: torch.Tensor
    has_start: torch.Tensor

    def rows(self, idx: torch.Tensor) -> Sequences:
        """The sequences of envs ``idx``."""
        return Sequences(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def chunks(self, length: int, lookahead: int, beliefs: torch.Tensor) -> Sequences:
        """Cut into windows of ``length`` scored rows plus ``lookahead`` rows of targets, started from ``beliefs``
        (E, T, H) computed over the whole sequence; windows whose first row is padding are dropped."""
        e, t = self.valid.shape
        starts = torch.arange(0, t, length)
        idx = starts[:, None] + torch.arange(length + lookahead)[None, :]
        inside = idx < t
        idx = idx.clamp(max=t - 1)

        def cut(x: torch.Tensor) -> torch.Tensor:
            return x[:, idx].reshape(e * len(starts), length + lookahead, *x.shape[2:])

        valid = cut(self.valid) & inside.repeat(e, 1)
        score = cut(self.score) & valid & (torch.arange(length + lookahead) < length)
        out = Sequences(obs=cut(self.obs), next_obs=cut(self.next_obs), action=cut(self.action),
                        done=cut(self.done), valid=valid, score=score,
                        start=beliefs[:, starts].reshape(e * len(starts), -1),
                        has_start=torch.ones(e * len(starts), dtype=torch.bool))
        return out.rows(torch.nonzero(valid[:, 0]).squeeze(1))


@dataclass
class Rollout:
    """Per-(start row, horizon) results of :meth:`WorldModel.rollout`, (E, T, K) tensors: the prediction losses
    that are paid as reward (``rec``: g's for Explore, the reconstructor's for Hindsight), the Z-free losses of g
    that train the representation (``byol``) and their mask; for Hindsight also the scored tuples: the critic's
    context x = [b_{t,k}, a] (detached), the code Z and the target embedding."""

    rec: torch.Tensor
    byol: torch.Tensor
    mask: torch.Tensor
    context: torch.Tensor | None = None
    z: torch.Tensor | None = None
    target: torch.Tensor | None = None


class WorldModel(nn.Module):
    """Encoders, closed- and open-loop GRUs, BYOL-Explore's predictor and (``hindsight``) BYOL-Hindsight's heads.

    The generator outputs a Gaussian N(mu, sigma^2) (sigma <= 1) sampled as Z = mu + sigma * eps; it starts at
    mu = 0 and a small sigma, so Z carries nothing until reconstruction pays for it.

    :param obs_dim: input width (after :class:`~robo_reward.methods.curiosity.base.ObsEncoder`).
    :param act_dim: action feature width. :param hindsight: build the generator, reconstructor and critic.
    :param horizon: K, the open-loop depth. Sizes default to the spec's small CPU build.
    """

    init_log_std = -3.0

    def __init__(self, obs_dim: int, act_dim: int, *, hindsight: bool, horizon: int = 3, hidden: int = 128,
                 embed: int = 32, belief: int = 64, z_dim: int = 16) -> None:
        super().__init__()
        if horizon < 1:
            raise ValueError(f"open-loop horizon K must be >= 1, got {horizon}")
        self.hindsight, self.horizon, self.act_dim, self.z_dim = hindsight, horizon, act_dim, z_dim
        self.belief_dim = belief
        self.encoder = mlp([obs_dim, hidden, hidden, embed])
        for layer in self.encoder:
            if isinstance(layer, nn.Linear):
                nn.init.zeros_(layer.bias)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.closed = nn.GRUCell(embed + act_dim, belief)
        self.open = nn.GRUCell(act_dim, belief)
        self.predictor = mlp([belief, hidden, hidden, embed])
        if hindsight:
            self.generator = mlp([belief + act_dim + embed, hidden, hidden, 2 * z_dim])
            head = self.generator[-1]
            assert isinstance(head, nn.Linear)
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias[:z_dim])
            nn.init.constant_(head.bias[z_dim:], self.init_log_std)
            self.reconstructor = mlp([belief + act_dim + z_dim, hidden, hidden, embed])
            self.critic_predictor = mlp([belief, hidden, hidden, embed])
            self.critic_log_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    # -- parameter groups of the min-max game ---------------------------------------------------------------
    def critic_parameters(self) -> Iterator[nn.Parameter]:
        if self.hindsight:
            yield self.critic_log_scale
            yield from self.critic_predictor.parameters()

    def world_parameters(self) -> Iterator[nn.Parameter]:
        skip = {id(p) for p in self.critic_parameters()} | {id(p) for p in self.target_encoder.parameters()}
        yield from (p for p in self.parameters() if id(p) not in skip)

    @torch.no_grad()
    def update_target(self, ema: float) -> None:
        """phi <- ema * phi + (1 - ema) * theta."""
        for tp, p in zip(self.target_encoder.parameters(), self.encoder.parameters(), strict=True):
            tp.lerp_(p, 1.0 - ema)

    # -- building blocks ------------------------------------------------------------------------------------
    def target(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm target embedding f^_phi(o), never differentiated."""
        with torch.no_grad():
            return unit(self.target_encoder(x))

    def observe(self, belief: torch.Tensor | None, w: torch.Tensor, prev_action: torch.Tensor | None) -> torch.Tensor:
        """b_t = h_c(b_{t-1}, w_t, a_{t-1}); ``None`` belief and action start an episode."""
        if prev_action is None:
            prev_action = w.new_zeros(*w.shape[:-1], self.act_dim)
        return self.closed(torch.cat([w, prev_action], -1), belief)

    def hindsight_code(self, b_prev: torch.Tensor, action: torch.Tensor, target: torch.Tensor,
                       noise: torch.Tensor) -> torch.Tensor:
        """Z = mu + sigma * eps from the generator p(Z | b_{t,k-1}, a, w_{t+k}) (belief detached)."""
        mean, log_std = self.generator(torch.cat([b_prev.detach(), action, target], -1)).chunk(2, -1)
        return mean + log_std.clamp(-5.0, 0.0).exp() * noise

    def reconstruct(self, b_next: torch.Tensor, action: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """f(b_{t,k}, a, Z), the hindsight prediction of the target embedding (belief detached)."""
        return self.reconstructor(torch.cat([b_next.detach(), action, z], -1))

    def critic_scores(self, context: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """c(x_j, Z_jm) for contexts x_j = [b_j, a_j] (n, H + A) and candidate codes (n, m, Z): (n, m) scores."""
        n, m, _ = codes.shape
        recon = self.reconstructor(torch.cat([context[:, None].expand(n, m, -1), codes], -1))
        guess = unit(self.critic_predictor(context[:, : self.belief_dim]))
        return -self.critic_log_scale.exp() * normalized_l2(recon, guess[:, None])

    # -- sequences ------------------------------------------------------------------------------------------
    def beliefs(self, seq: Sequences) -> torch.Tensor:
        """Closed-loop beliefs b_t for every row, (E, T, H); resets after ``done`` rows."""
        w = self.encoder(seq.obs)
        out = []
        b = seq.start
        for i in range(seq.valid.shape[1]):
            if i == 0:
                fresh = self.observe(None, w[:, 0], None)
                b = torch.where(seq.has_start[:, None], seq.start, fresh)
            else:
                keep = (~seq.done[:, i - 1]).float()[:, None]
                b = self.observe(b * keep, w[:, i], seq.action[:, i - 1] * keep)
            out.append(b)
        return torch.stack(out, 1)

    def rollout(self, seq: Sequences, beliefs: torch.Tensor, generator: torch.Generator | None = None) -> Rollout:
        """Open-loop predictions from every row for k = 1..K: losses l(t, k), their mask and the scored tuples."""
        e, t, h = beliefs.shape
        target = self.target(seq.next_obs)

        def shift(x: torch.Tensor, k: int) -> torch.Tensor:
            return torch.cat([x[:, k:], x[:, :0].new_zeros(e, min(k, t), *x.shape[2:])], 1)[:, :t]

        b = beliefs.reshape(e * t, h)
        alive = seq.score & seq.valid
        byols, recs, masks, contexts, zs, targets = [], [], [], [], [], []
        for k in range(1, self.horizon + 1):
            if k > 1:
                alive = alive & ~shift(seq.done, k - 2) & shift(seq.valid, k - 1)
            a = shift(seq.action, k - 1).reshape(e * t, -1)
            tgt = shift(target, k - 1).reshape(e * t, -1)
            b_next = self.open(a, b)
            byols.append(normalized_l2(self.predictor(b_next), tgt).reshape(e, t))
            masks.append(alive)
            if self.hindsight:
                z = self.hindsight_code(b, a, tgt, torch.randn(e * t, self.z_dim, generator=generator))
                recs.append(normalized_l2(self.reconstruct(b_next, a, z), tgt).reshape(e, t))
                flat = alive.reshape(-1)
                contexts.append(torch.cat([b_next[flat], a[flat]], -1).detach())
                zs.append(z[flat])
                targets.append(tgt[flat])
            b = b_next
        byol = torch.stack(byols, -1)
        out = Rollout(torch.stack(recs, -1) if recs else byol, byol, torch.stack(masks, -1))
        if contexts:
            out.context, out.z, out.target = torch.cat(contexts), torch.cat(zs), torch.cat(targets)
        return out


def infonce(scores: torch.Tensor) -> torch.Tensor:
    """Per-tuple InfoNCE terms from (n, 1 + m) scores whose first column is the tuple's own code."""
    return scores[:, 0] - torch.logsumexp(scores, -1) + math.log(scores.shape[1])


def negative_codes(z: torch.Tensor, negatives: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 1 + m) candidate codes per tuple: its own, then m codes of other tuples (distinct, drawn at random)."""
    n = len(z)
    m = min(negatives, n - 1)
    order = torch.randperm(n, generator=generator)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n)
    others = order[(rank[:, None] + torch.arange(1, m + 1)[None, :]) % n]
    return torch.cat([z[:, None], z[others]], 1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.float()
    return (x * m).sum() / m.sum().clamp(min=1.0)


class WorldModelTrainer:
    """Gradient steps on a :class:`WorldModel`: BYOL's loss, and for Hindsight the two-player game.

    Hindsight steps first give the critic ``critic_steps`` ascent steps on L_inv (plus its predictor's BYOL loss,
    belief fixed) with the codes held fixed, then give the world model one descent step on
    L_byol + L_rec + inv_weight * max(L_inv, 0) scored by the updated critic, each tuple against ``negatives``
    other tuples' codes. ``critic_ascent=False`` turns the critic into a minimiser, reproducing the
    single-optimiser bug (tests use it to show the sign matters). The target encoder follows by EMA every step.
    """

    critic_ascent: bool = True

    def __init__(self, model: WorldModel, *, lr: float = 3e-4, critic_lr: float | None = None, critic_steps: int = 1,
                 target_ema: float = 0.99, inv_weight: float = 1.0, negatives: int = 15, max_grad_norm: float = 10.0,
                 generator: torch.Generator | None = None) -> None:
        if critic_steps < 1 or negatives < 1:
            raise ValueError(f"critic_steps and negatives must be >= 1, got {critic_steps} and {negatives}")
        self.model, self.target_ema, self.inv_weight, self.negatives = model, target_ema, inv_weight, negatives
        self.critic_steps, self.max_grad_norm, self.generator = critic_steps, max_grad_norm, generator
        self.world_params = list(model.world_parameters())
        self.critic_params = list(model.critic_parameters())
        self.world_opt = torch.optim.Adam(self.world_params, lr=lr)
        self.critic_opt = torch.optim.Adam(self.critic_params, lr=critic_lr or lr) if self.critic_params else None

    def invariance(self, roll: Rollout, detach_codes: bool = False) -> torch.Tensor:
        """L_inv of a rollout's tuples under the current critic (0 without tuples)."""
        if roll.context is None or roll.z is None or len(roll.z) < 2:
            return roll.rec.new_zeros(())
        z = roll.z.detach() if detach_codes else roll.z
        codes = negative_codes(z, self.negatives, self.generator)
        return infonce(self.model.critic_scores(roll.context, codes)).mean()

    def critic_prediction_loss(self, roll: Rollout) -> torch.Tensor:
        """BYOL loss of the critic's Z-free predictor g_c on the tuples' targets (belief fixed)."""
        if roll.context is None or roll.target is None or len(roll.target) == 0:
            return roll.rec.new_zeros(())
        return normalized_l2(self.model.critic_predictor(roll.context[:, : self.model.belief_dim]),
                             roll.target).mean()

    def losses(self, seq: Sequences) -> tuple[Rollout, torch.Tensor, torch.Tensor]:
        """The rollout, L_rec (mean over scored predictions) and L_inv (0 for BYOL-Explore)."""
        roll = self.model.rollout(seq, self.model.beliefs(seq), self.generator)
        return roll, masked_mean(roll.rec, roll.mask), self.invariance(roll)

    def step(self, seq: Sequences) -> dict[str, float]:
        """For Hindsight, critic steps then one world-model step; returns the losses."""
        roll = self.model.rollout(seq, self.model.beliefs(seq), self.generator)
        byol = masked_mean(roll.byol, roll.mask)
        if not self.model.hindsight:
            self._apply(self.world_opt, self.world_params, torch.autograd.grad(byol, self.world_params))
            self.model.update_target(self.target_ema)
            return {"loss": byol.item(), "rec": byol.item()}
        assert self.critic_opt is not None
        for _ in range(self.critic_steps):
            critic_inv = self.invariance(roll, detach_codes=True)
            objective = (-critic_inv if self.critic_ascent else critic_inv) + self.critic_prediction_loss(roll)
            self._apply(self.critic_opt, self.critic_params, torch.autograd.grad(objective, self.critic_params))
        rec, inv = masked_mean(roll.rec, roll.mask), self.invariance(roll)
        world_loss = byol + rec + self.inv_weight * inv.clamp(min=0.0)
        self._apply(self.world_opt, self.world_params,
                    torch.autograd.grad(world_loss, self.world_params, allow_unused=True))
        self.model.update_target(self.target_ema)
        return {"loss": world_loss.item(), "byol": byol.item(), "rec": rec.item(), "inv": inv.item(),
                "critic_inv": critic_inv.item()}

    def _apply(self, opt: torch.optim.Optimizer, params: list[nn.Parameter],
               grads: tuple[torch.Tensor | None, ...]) -> None:
        for p, g in zip(params, grads, strict=True):
            p.grad = None if g is None else g.detach()
        nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        opt.step()

    def state_dict(self) -> dict[str, object]:
        state: dict[str, object] = {"world_opt": self.world_opt.state_dict()}
        if self.critic_opt is not None:
            state["critic_opt"] = self.critic_opt.state_dict()
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.world_opt.load_state_dict(state["world_opt"])  # type: ignore[arg-type]
        if self.critic_opt is not None:
            self.critic_opt.load_state_dict(state["critic_opt"])  # type: ignore[arg-type]
