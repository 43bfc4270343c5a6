"""The BYOL-Explore / BYOL-Hindsight latent world model: networks, sequence losses and the min-max trainer.

BYOL-Explore (Guo et al., NeurIPS 2022, arXiv 2206.08332): an online encoder w_t = f_theta(o_t) and its EMA
target f_phi; a closed-loop GRU belief b_t = h_c(b_{t-1}, w_t, a_{t-1}); an open-loop GRU
b_{t,k} = h_o(b_{t,k-1}, a_{t+k-1}) (b_{t,0} = b_t) that sees only actions; a predictor g(b_{t,k}) of the
target embedding of o_{t+k}. The loss of one prediction is the normalised L2
l(t, k) = || g^(b_{t,k}) - sg(f^_phi(o_{t+k})) ||^2 = 2 - 2 cos, averaged over t and k = 1..K.

BYOL-Hindsight (Jarrett et al., ICML 2023, arXiv 2211.10515, Algorithm 2) replaces g by a reconstructor
f(b_{t,k}, a, Z) fed a hindsight code Z ~ p(Z | b_{t,k-1}, a_{t+k-1}, w_{t+k}, eps) drawn by a generator that sees
the *target* embedding of the realised future. A critic c(b, a, Z) scores the InfoNCE estimate
L_inv = mean_j [c(x_j, Z_j) - log mean_k exp c(x_j, Z_k)] of I(Z; (b, a)). The world model (encoder, GRUs,
generator, reconstructor) minimises L_rec + lambda * L_inv; the critic *maximises* L_inv. The game is played
with two optimisers and opposite signs (a single optimiser over all parameters lets the critic lower its own
estimate, so Z may copy the future and every prediction error vanishes: spec pitfall 1). The critic is the raw
bilinear score phi(b, a)^T psi(Z), with no sigmoid (pitfall 2). Negatives are drawn within random blocks of the
batch (``block`` tuples), which bounds the estimate by log(block).
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
    """Per-(start row, horizon) results of :meth:`WorldModel.rollout`: (E, T, K) tensors and, for Hindsight, the
    InfoNCE tuples of the scored predictions: the critic's context x = [b_{t,k-1}, a, b_{t,k}] (detached), the
    code Z and the target embedding (for the critic's auxiliary predictor)."""

    rec: torch.Tensor
    mask: torch.Tensor
    context: torch.Tensor | None = None
    z: torch.Tensor | None = None
    target: torch.Tensor | None = None


class WorldModel(nn.Module):
    init_log_std = -3.0
    """Encoders, closed- and open-loop GRUs and either BYOL-Explore's predictor or BYOL-Hindsight's heads.

    :param obs_dim: input width (after :class:`~robo_reward.methods.curiosity.ObsEncoder`).
    :param act_dim: action feature width. :param hindsight: build the generator/reconstructor/critic.
    :param horizon: K, the open-loop depth. Other sizes follow the spec's small CPU build.
    """

    def __init__(self, obs_dim: int, act_dim: int, *, hindsight: bool, horizon: int = 3, hidden: int = 256,
                 embed: int = 64, belief: int = 128, z_dim: int = 16, critic_dim: int = 64) -> None:
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
        if hindsight:
            self.generator = mlp([belief + act_dim + embed, hidden, hidden, 2 * z_dim])
            nn.init.zeros_(self.generator[-1].weight)
            nn.init.constant_(self.generator[-1].bias[z_dim:], self.init_log_std)
            nn.init.zeros_(self.generator[-1].bias[:z_dim])
            self.reconstructor = mlp([belief + act_dim + z_dim, hidden, hidden, embed])
            self.critic_context = mlp([belief + act_dim + embed, hidden, critic_dim])
            self.critic_code = mlp([z_dim, hidden, critic_dim])
        self.predictor = mlp([belief, hidden, hidden, embed])

    # -- parameter groups of the min-max game ---------------------------------------------------------------
    def critic_parameters(self) -> Iterator[nn.Parameter]:
        if self.hindsight:
            yield from self.critic_context.parameters()
            yield from self.critic_code.parameters()
            yield from self.predictor.parameters()

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

    def predict(self, b_prev: torch.Tensor, b_next: torch.Tensor, action: torch.Tensor, target: torch.Tensor,
                noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prediction of the target embedding at b_next = h_o(b_prev, a), and Hindsight's code Z."""
        if not self.hindsight:
            return self.predictor(b_next), None
        if noise is None:
            raise ValueError("BYOL-Hindsight's generator needs noise eps ~ N(0, I)")
        mean, log_std = self.generator(torch.cat([b_prev.detach(), action, target], -1)).chunk(2, -1)
        z = mean + log_std.clamp(-5.0, 0.0).exp() * noise
        return self.reconstructor(torch.cat([b_next, action, z], -1)), z

    def action_groups(self, context: torch.Tensor) -> torch.Tensor:
        """The discrete action of each critic context (its one-hot block), for action-conditional InfoNCE."""
        return context[:, self.belief_dim : self.belief_dim + self.act_dim].argmax(-1)

    def critic_features(self, context: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """phi(x) and psi(Z) for contexts x = [b_{t,k-1}, a, b_{t,k}]; a pair's score is their dot product.

        phi reads (b_{t,k-1}, a) and the critic's own prediction g^(b_{t,k}) of the target embedding, which is
        still a function of (b, a): a code that copies the predictable part of the future matches it."""
        b_prev_a, b_next = context[:, : -self.belief_dim], context[:, -self.belief_dim :]
        guess = unit(self.predictor(b_next))
        return self.critic_context(torch.cat([b_prev_a, guess], -1)), self.critic_code(z)

    # -- sequences ------------------------------------------------------------------------------------------
    def beliefs(self, seq: Sequences) -> torch.Tensor:
        """Closed-loop beliefs b_t for every row, (E, T, H); resets after ``done`` rows."""
        w = self.encoder(seq.obs)
        t = seq.valid.shape[1]
        out = []
        b = seq.start
        for i in range(t):
            if i == 0:
                fresh = self.observe(None, w[:, 0], None)
                b = torch.where(seq.has_start[:, None], seq.start, fresh)
            else:
                keep = (~seq.done[:, i - 1]).float()[:, None]
                b = self.observe(b * keep, w[:, i], seq.action[:, i - 1] * keep)
            out.append(b)
        return torch.stack(out, 1)

    def rollout(self, seq: Sequences, beliefs: torch.Tensor, generator: torch.Generator | None = None) -> Rollout:
        """Open-loop predictions from every row for k = 1..K: losses l(t, k), their mask and InfoNCE tuples."""
        e, t, h = beliefs.shape
        k_max = self.horizon
        target = self.target(seq.next_obs)

        def shift(x: torch.Tensor, k: int) -> torch.Tensor:
            return torch.cat([x[:, k:], x[:, :0].new_zeros(e, min(k, t), *x.shape[2:])], 1)[:, :t]

        b = beliefs.reshape(e * t, h)
        alive = seq.score & seq.valid
        recs, masks, contexts, zs, targets = [], [], [], [], []
        for k in range(1, k_max + 1):
            if k > 1:
                alive = alive & ~shift(seq.done, k - 2) & shift(seq.valid, k - 1)
            a = shift(seq.action, k - 1).reshape(e * t, -1)
            tgt = shift(target, k - 1).reshape(e * t, -1)
            b_next = self.open(a, b)
            noise = None
            if self.hindsight:
                noise = torch.randn(e * t, self.z_dim, generator=generator)
            pred, z = self.predict(b, b_next, a, tgt, noise)
            recs.append(normalized_l2(pred, tgt).reshape(e, t))
            masks.append(alive)
            if z is not None:
                flat = alive.reshape(-1)
                contexts.append(torch.cat([b[flat], a[flat], b_next[flat]], -1).detach())
                zs.append(z[flat])
                targets.append(tgt[flat])
            b = b_next
        out = Rollout(torch.stack(recs, -1), torch.stack(masks, -1))
        if contexts:
            out.context, out.z, out.target = torch.cat(contexts), torch.cat(zs), torch.cat(targets)
        return out


def infonce_terms(context: torch.Tensor, code: torch.Tensor, block: int, generator: torch.Generator | None = None,
                  groups: torch.Tensor | None = None) -> torch.Tensor:
    """Per-tuple InfoNCE terms c(x_j, Z_j) - log mean_k exp c(x_j, Z_k) with the other Z of a random block of
    ``block`` tuples as negatives (tuples beyond a whole number of blocks are dropped). With ``groups`` (e.g. the
    action of each tuple) blocks are drawn within a group, which estimates the conditional I(Z; x | group)."""
    if groups is None:
        groups = torch.zeros(len(context), dtype=torch.long)
    out = []
    for g in torch.unique(groups):
        members = torch.nonzero(groups == g).squeeze(1)
        n = len(members)
        if n < 2:
            continue
        size = min(block, n)
        pick = members[torch.randperm(n, generator=generator)[: (n // size) * size]]
        ctx = context[pick].reshape(-1, size, context.shape[-1])
        cod = code[pick].reshape(-1, size, code.shape[-1])
        scores = ctx @ cod.transpose(1, 2)
        out.append((scores.diagonal(dim1=1, dim2=2) - torch.logsumexp(scores, -1) + math.log(size)).reshape(-1))
    return torch.cat(out) if out else context.new_zeros(0)


def infonce_against_bank(context: torch.Tensor, code: torch.Tensor, bank_code: torch.Tensor,
                         groups: torch.Tensor | None = None, bank_groups: torch.Tensor | None = None) -> torch.Tensor:
    """Per-tuple InfoNCE terms at step time, with a bank of recent codes (of the same group) as the negatives."""
    pos = (context * code).sum(-1, keepdim=True)
    neg = context @ bank_code.T
    count = torch.full_like(pos, float(len(bank_code)))
    if groups is not None and bank_groups is not None:
        same = groups[:, None] == bank_groups[None, :]
        neg = neg.masked_fill(~same, float("-inf"))
        count = same.sum(-1, keepdim=True).float()
    scores = torch.cat([pos, neg], -1)
    return (pos - torch.logsumexp(scores, -1, keepdim=True) + torch.log1p(count)).squeeze(-1)


class WorldModelTrainer:
    """Gradient steps on a :class:`WorldModel`: BYOL's loss, and for Hindsight the two-player game.

    Each step first gives the critic ``critic_steps`` ascent steps on L_inv over the step's (detached) tuples, then
    gives the world model one descent step on L_rec + inv_weight * L_inv scored by the updated critic. The critic
    context's belief is detached, so the world model lowers L_inv only through the codes Z, not by scrambling the
    belief the critic reads. ``critic_ascent=False`` turns the critic into a minimiser, reproducing the
    single-optimiser bug (tests use it to show the sign matters). The target encoder follows by EMA every step.
    """

    critic_ascent: bool = True

    def __init__(self, model: WorldModel, *, lr: float = 3e-4, critic_lr: float | None = None, critic_steps: int = 1,
                 target_ema: float = 0.99, inv_weight: float = 1.0, block: int = 128, conditional: bool = False,
                 max_grad_norm: float = 10.0, generator: torch.Generator | None = None) -> None:
        if critic_steps < 1:
            raise ValueError(f"critic_steps must be >= 1, got {critic_steps}")
        self.model, self.target_ema, self.inv_weight, self.block = model, target_ema, inv_weight, block
        self.critic_steps, self.max_grad_norm, self.generator = critic_steps, max_grad_norm, generator
        self.conditional = conditional
        self.world_params = list(model.world_parameters())
        self.critic_params = list(model.critic_parameters())
        self.world_opt = torch.optim.Adam(self.world_params, lr=lr)
        self.critic_opt = torch.optim.Adam(self.critic_params, lr=critic_lr or lr) if self.critic_params else None

    def invariance(self, roll: Rollout, detach_codes: bool = False) -> torch.Tensor:
        """L_inv of a rollout's tuples under the current critic (0 without tuples)."""
        if roll.context is None or roll.z is None or len(roll.z) < 2:
            return roll.rec.new_zeros(())
        z = roll.z.detach() if detach_codes else roll.z
        context, code = self.model.critic_features(roll.context, z)
        groups = self.model.action_groups(roll.context) if self.conditional else None
        return infonce_terms(context, code, self.block, self.generator, groups).mean()

    def critic_prediction_loss(self, roll: Rollout) -> torch.Tensor:
        """The critic's auxiliary BYOL loss: its predictor g learns the target embedding from b_{t,k} alone."""
        if roll.context is None or roll.target is None or len(roll.target) == 0:
            return roll.rec.new_zeros(())
        b_next = roll.context[:, -self.model.belief_dim :]
        return normalized_l2(self.model.predictor(b_next), roll.target).mean()

    def losses(self, seq: Sequences) -> tuple[Rollout, torch.Tensor, torch.Tensor]:
        """The rollout, L_rec (mean over scored predictions) and L_inv (0 for BYOL-Explore)."""
        roll = self.model.rollout(seq, self.model.beliefs(seq), self.generator)
        mask = roll.mask.float()
        rec = (roll.rec * mask).sum() / mask.sum().clamp(min=1.0)
        return roll, rec, self.invariance(roll)

    def step(self, seq: Sequences) -> dict[str, float]:
        """Critic steps, then one world-model step; returns the losses."""
        roll = self.model.rollout(seq, self.model.beliefs(seq), self.generator)
        mask = roll.mask.float()
        rec = (roll.rec * mask).sum() / mask.sum().clamp(min=1.0)
        metrics: dict[str, float] = {}
        if self.critic_opt is not None:
            for _ in range(self.critic_steps):
                inv_c = self.invariance(roll, detach_codes=True)
                objective = (-inv_c if self.critic_ascent else inv_c) + self.critic_prediction_loss(roll)
                self._apply(self.critic_opt, self.critic_params,
                            torch.autograd.grad(objective, self.critic_params, allow_unused=True))
            metrics["critic_inv"] = inv_c.item()
        inv = self.invariance(roll)
        world_loss = rec + self.inv_weight * inv if self.model.hindsight else rec
        self._apply(self.world_opt, self.world_params,
                    torch.autograd.grad(world_loss, self.world_params, allow_unused=True))
        self.model.update_target(self.target_ema)
        return {"loss": world_loss.item(), "rec": rec.item(), "inv": inv.item(), **metrics}

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


__all__ = ["Rollout", "Sequences", "WorldModel", "WorldModelTrainer", "infonce_against_bank", "infonce_terms",
           "mlp", "normalized_l2"]
