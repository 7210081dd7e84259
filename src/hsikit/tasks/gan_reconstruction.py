"""RGB → hyperspectral reconstruction trained as a GAN: CSWIN v2's Sinkhorn-GAN on the hsikit engine.

:class:`GANReconstructionTask` trains a reconstruction generator (``self.model``, by default the
noise-robust CSWin generator) against a conditional discriminator (``self.discriminator``, by
default the spectral-normalised transformer critic) with Lightning's *manual optimisation*.
It is a :class:`~hsikit.tasks.reconstruction.ReconstructionTask`, so validation, test,
prediction, the figures and the export are the reconstruction task's, unchanged: the MST++
centre-crop protocol (``val/mrae``, ``val/rmse``, ``val/psnr``, ``val/sam`` over *all*
validation images, full frames, fp32 — autocast is switched off for evaluation), the best
checkpoint by ``val/mrae``, and ``model/`` holding the generator alone (the discriminator is
a training tool and is not exported). ``hsikit reconstruct`` uses it like any other model.

Training step (fixes of ``specs/003_cswin_gan.md`` §7, bugs 3-5, 7, 9, 11)
    Micro-batches form *accumulation groups* of ``accumulate_grad_batches`` batches (a group
    also ends at the end of an epoch). In every group the discriminator accumulates its
    gradient over all micro-batches (the reference used only the last one) and takes one
    optimizer step at the end of the group. Every ``n_critic``-th group also trains the
    generator, so each generator step follows ``n_critic`` discriminator steps (the usual
    WGAN meaning; the reference had it inverted). Per micro-batch, with ``k = 1/accum``:

    1. ``fake = G(rgb)`` (with a graph only in generator groups);
    2. critic: ``L_D = adv.discriminator_loss(D(rgb, hsi), D(rgb, stopgrad fake))``; on the
       discriminator steps where R1 applies (``step % r1_every == 0``) ``+ R1`` computed in
       fp32 outside autocast (:class:`~hsikit.losses.gan.R1Regularizer`, lazy-scaled);
       backward ``k · L_D``;
    3. generator groups only: the discriminator's parameters are frozen and
       ``L_G = SinkhornGANGeneratorLoss(fake, hsi, D(rgb, fake), stopgrad D(rgb, hsi), step)``;
       backward ``k · L_G``;
    4. end of group: clip ``‖∇D‖`` (and ``‖∇G‖``) to ``gradient_clip_norm``, step the
       optimizer(s) and their schedules.

    With ``lambda_adversarial = 0`` the discriminator is neither built nor trained and the task
    is a plain reconstruction trainer with the same loss terms (the benchmark's ablation).

Steps and schedules
    ``trainer.global_step`` counts **generator** optimizer steps (the discriminator's steps are
    not counted), so ``max_steps``, ``checkpoint_every_n_steps`` and the weight EMA
    (``run.ema_decay``: :class:`~hsikit.engine.callbacks.WeightEMA` averages ``self.model``,
    the generator, after each generator step) are all in generator steps. Both learning rates
    follow :class:`~hsikit.engine.schedulers.WarmupCosineSchedule` over the **whole** run:
    ``warmup_steps`` generator steps of linear warm-up, then a cosine that reaches
    ``min_lr_ratio × lr`` exactly at the last generator step (the discriminator's schedule runs
    over ``n_critic ×`` as many of its own steps). The reference defined the length in
    micro-iterations but stepped per optimizer step, so it ended halfway down the cosine.

Mixed precision, DDP, resume
    The trainer's ``precision`` applies (``bf16-mixed`` on CPU, ``16-mixed`` on GPU with the
    engine's gradient scaler, which Lightning updates on every step, skipped or not); all
    losses are computed in fp32. Under DDP the gradients of each optimizer are averaged over
    the ranks explicitly, right before its step (all-reduce), rather than by DDP's reducer,
    which cannot follow two backward passes per step with a frozen critic. A checkpoint holds
    both networks, both optimizers and schedules, the EMA and the task's counters
    (``checkpoint["hsikit_gan"]``), so a resumed run continues exactly. Errors are not
    swallowed; the engine's non-finite guard handles NaN/Inf steps.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
from lightning.pytorch.core.optimizer import LightningOptimizer

from hsikit.engine.schedulers import WarmupCosineSchedule
from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.inference.reconstruction import EnsembleMode
from hsikit.losses.gan import (
    ADVERSARIAL_KINDS,
    R1Regularizer,
    SinkhornGANGeneratorLoss,
    make_adversarial_loss,
)
from hsikit.metrics.reconstruction import PROTOCOL_METRICS, MraeVariant
from hsikit.models.registry import create_model, get_model_entry
from hsikit.tasks.base import weight_decay_groups
from hsikit.tasks.reconstruction import ReconstructionTask, unpack_reconstruction_batch
from hsikit.tasks.registry import register_task

GAN_STATE_KEY = "hsikit_gan"
CSWIN_GENERATOR_LR = 2e-4
CSWIN_DISCRIMINATOR_LR = 5e-5
CSWIN_ETA_MIN = 1e-6
D_LOSS_EMA_BETA = 0.9


def _no_step_count() -> None:
    """Replaces the discriminator optimizer's step-counting hooks: global_step counts generator steps."""


@register_task("gan_reconstruction")
class GANReconstructionTask(ReconstructionTask):
    """CSWIN v2 Sinkhorn-GAN reconstruction (module docstring).

    Args:
        model, model_args: the generator (registry name and arguments; band counts from the data).
        discriminator, discriminator_args: the critic (``rgb_channels`` / ``hsi_channels`` from the generator).
        generator_lr, discriminator_lr: peak learning rates (2e-4, 5e-5).
        generator_betas, discriminator_betas: Adam betas ((0.5, 0.999) both).
        generator_weight_decay, discriminator_weight_decay: weight decay (0).
        optimizer: ``"adam"`` (L2 decay, the reference) or ``"adamw"`` (decoupled decay).
        warmup_steps: generator steps of linear warm-up (the reference: 2000).
        min_lr_ratio: final learning rate / peak (1e-6 / 2e-4 = 0.005).
        n_critic: discriminator steps per generator step (1).
        accumulate_grad_batches: micro-batches per optimizer step (the reference: 2). The
            trainer's own ``accumulate_grad_batches`` must stay 1 (manual optimisation).
        gradient_clip_norm: clip each network's gradient norm to this (1.0; None: off).
        lambda_rec, lambda_perceptual, lambda_adversarial, lambda_sam: loss weights (1, 0, 0.1, 0.05).
        reconstruction_loss: ``"charbonnier"`` (reference), ``"l1"`` or ``"mrae"``.
        adversarial_loss: ``"sinkhorn"`` (reference), ``"nonsaturating"`` or ``"hinge"``.
        sinkhorn_epsilon, sinkhorn_iters, sinkhorn_flatten_spatial, sinkhorn_max_points,
            sinkhorn_loss_clip, sinkhorn_joint_rescale: Sinkhorn settings (0.1, 50, True, 1024, 5.0, True).
        use_r1, r1_gamma, r1_every, r1_lazy_scale: R1 penalty (True, 10, 16, True).
        use_adaptive_weights, loss_warmup_iterations, loss_ramp_iterations, rec_decay: the
            reference's adaptive loss-weight schedule (True, 5000, 50000, 0.3), in generator steps.
        max_loss_value: soft cap of the generator loss (100).
        mrae_variant, eval_crop, metrics, test_ensemble: evaluation, as in ``ReconstructionTask``.
    """

    def __init__(
        self,
        model: str = "cswin_generator",
        model_args: dict[str, Any] | None = None,
        discriminator: str = "cswin_discriminator",
        discriminator_args: dict[str, Any] | None = None,
        generator_lr: float = CSWIN_GENERATOR_LR,
        discriminator_lr: float = CSWIN_DISCRIMINATOR_LR,
        generator_betas: Sequence[float] = (0.5, 0.999),
        discriminator_betas: Sequence[float] = (0.5, 0.999),
        generator_weight_decay: float = 0.0,
        discriminator_weight_decay: float = 0.0,
        optimizer: Literal["adam", "adamw"] = "adam",
        warmup_steps: int = 0,
        min_lr_ratio: float = CSWIN_ETA_MIN / CSWIN_GENERATOR_LR,
        n_critic: int = 1,
        accumulate_grad_batches: int = 1,
        gradient_clip_norm: float | None = 1.0,
        lambda_rec: float = 1.0,
        lambda_perceptual: float = 0.0,
        lambda_adversarial: float = 0.1,
        lambda_sam: float = 0.05,
        reconstruction_loss: Literal["charbonnier", "l1", "mrae"] = "charbonnier",
        adversarial_loss: Literal["sinkhorn", "nonsaturating", "hinge"] = "sinkhorn",
        sinkhorn_epsilon: float = 0.1,
        sinkhorn_iters: int = 50,
        sinkhorn_flatten_spatial: bool = True,
        sinkhorn_max_points: int | None = 1024,
        sinkhorn_loss_clip: float | None = 5.0,
        sinkhorn_joint_rescale: bool = True,
        use_r1: bool = True,
        r1_gamma: float = 10.0,
        r1_every: int = 16,
        r1_lazy_scale: bool = True,
        use_adaptive_weights: bool = True,
        loss_warmup_iterations: int = 5000,
        loss_ramp_iterations: int = 50000,
        rec_decay: float = 0.3,
        max_loss_value: float | None = 100.0,
        mrae_variant: MraeVariant = "mstpp",
        eval_crop: int = 128,
        metrics: Sequence[str] = PROTOCOL_METRICS,
        test_ensemble: EnsembleMode = "none",
    ) -> None:
        if optimizer not in ("adam", "adamw"):
            raise ConfigError(f"optimizer must be 'adam' or 'adamw', got {optimizer!r}")
        for name, value in (("generator_lr", generator_lr), ("discriminator_lr", discriminator_lr)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
        for name, betas in (("generator_betas", generator_betas), ("discriminator_betas", discriminator_betas)):
            if len(betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in betas):
                raise ConfigError(f"{name} must be two numbers in [0, 1), got {list(betas)!r}")
        if generator_weight_decay < 0 or discriminator_weight_decay < 0:
            raise ConfigError("weight decays must be >= 0")
        if n_critic < 1 or accumulate_grad_batches < 1:
            raise ConfigError(
                f"need n_critic >= 1 and accumulate_grad_batches >= 1, got {n_critic}, {accumulate_grad_batches}"
            )
        if gradient_clip_norm is not None and not gradient_clip_norm > 0:
            raise ConfigError(f"gradient_clip_norm must be > 0 or None, got {gradient_clip_norm!r}")
        if adversarial_loss not in ADVERSARIAL_KINDS:
            raise ConfigError(
                f"unknown adversarial_loss {adversarial_loss!r}; choose one of {', '.join(ADVERSARIAL_KINDS)}"
            )
        if get_model_entry(discriminator).task != "gan_discriminator":
            raise ConfigError(
                f"{discriminator!r} is not a GAN discriminator; use 'cswin_discriminator' "
                "(hsikit.models.list_models(task='gan_discriminator'))"
            )
        self.discriminator_name = discriminator
        self.discriminator_args: dict[str, Any] = dict(discriminator_args or {})
        self.generator_lr = float(generator_lr)
        self.discriminator_lr = float(discriminator_lr)
        self.generator_betas = (float(generator_betas[0]), float(generator_betas[1]))
        self.discriminator_betas = (float(discriminator_betas[0]), float(discriminator_betas[1]))
        self.generator_weight_decay = float(generator_weight_decay)
        self.discriminator_weight_decay = float(discriminator_weight_decay)
        self.n_critic = int(n_critic)
        self.accumulate = int(accumulate_grad_batches)
        self.gradient_clip_norm = gradient_clip_norm
        self.adversarial_on = lambda_adversarial > 0
        self.gan_loss_settings = {
            "lambda_rec": lambda_rec, "lambda_perceptual": lambda_perceptual,
            "lambda_adversarial": lambda_adversarial, "lambda_sam": lambda_sam,
            "reconstruction": reconstruction_loss, "mrae_variant": mrae_variant,
            "use_adaptive_weights": use_adaptive_weights, "warmup_iterations": loss_warmup_iterations,
            "ramp_iterations": loss_ramp_iterations, "rec_decay": rec_decay, "max_loss_value": max_loss_value,
        }  # fmt: skip
        sinkhorn = {
            "epsilon": sinkhorn_epsilon, "iterations": sinkhorn_iters, "flatten_spatial": sinkhorn_flatten_spatial,
            "max_points": sinkhorn_max_points, "generator_clip": sinkhorn_loss_clip,
            "joint_rescale": sinkhorn_joint_rescale,
        }  # fmt: skip
        self.adversarial_settings = (adversarial_loss, sinkhorn if adversarial_loss == "sinkhorn" else {})
        self.use_r1 = bool(use_r1) and self.adversarial_on
        self.r1_settings = (float(r1_gamma), int(r1_every), bool(r1_lazy_scale))
        # counters of the training loop (saved in checkpoints)
        self.micro_in_group = 0
        self.d_steps_done = 0
        self.d_loss_ema = 0.0
        self.d_loss_updates = 0
        super().__init__(
            model=model,
            model_args=model_args,
            mrae_weight=1.0,
            mrae_variant=mrae_variant,
            eval_crop=eval_crop,
            metrics=metrics,
            test_ensemble=test_ensemble,
            optimizer=optimizer,
            lr=generator_lr,
            weight_decay=generator_weight_decay,
            warmup_steps=warmup_steps,
            min_lr_ratio=min_lr_ratio,
        )
        self.automatic_optimization = False

    # ------------------------------------------------------------------ construction
    def configure_losses(self) -> None:
        super().configure_losses()
        kind, sinkhorn = self.adversarial_settings
        self.adversarial = make_adversarial_loss(kind, **sinkhorn)  # type: ignore[arg-type]
        gamma, every, lazy = self.r1_settings
        self.r1 = R1Regularizer(gamma, every, lazy) if self.use_r1 else None
        self.generator_loss: SinkhornGANGeneratorLoss | None = None  # built with the band count

    def configure_models(self, arguments: dict[str, Any]) -> None:
        super().configure_models(arguments)
        generator = self._require_model()
        bands = int(getattr(generator, "out_channels", arguments.get("out_channels", 31)))
        settings = dict(self.gan_loss_settings)
        self.generator_loss = SinkhornGANGeneratorLoss(adversarial=self.adversarial, num_bands=bands, **settings)
        self.discriminator: nn.Module | None = None
        if self.adversarial_on:
            d_arguments = dict(self.discriminator_args)
            d_arguments.setdefault("hsi_channels", bands)
            d_arguments.setdefault("rgb_channels", int(getattr(generator, "in_channels", 3)))
            self.discriminator = create_model(self.discriminator_name, **d_arguments)
            self.discriminator_args = d_arguments

    # ------------------------------------------------------------------ optimisation
    def _adam(self, parameters: Iterator[nn.Parameter], lr: float, betas: tuple[float, float], decay: float) -> Any:
        kind = torch.optim.AdamW if self.hparams.optimizer == "adamw" else torch.optim.Adam
        return kind(weight_decay_groups(parameters, decay), lr=lr, betas=betas)

    def total_generator_steps(self) -> int:
        """Generator optimizer steps of the whole run (the schedule's length), from the trainer's limits."""
        trainer = self.trainer
        limits: list[int] = []
        if trainer.max_steps is not None and trainer.max_steps > 0:
            limits.append(int(trainer.max_steps))
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            batches = trainer.num_training_batches
            if batches == float("inf") or batches is None:
                trainer.fit_loop.setup_data()
                batches = trainer.num_training_batches
            if batches != float("inf"):
                groups_per_epoch = math.ceil(int(batches) / self.accumulate)
                limits.append(int(trainer.max_epochs) * groups_per_epoch // self.n_critic)
        if not limits:
            raise ConfigError(
                "the GAN schedule needs a finite training length; set trainer max_steps (generator steps) or max_epochs"
            )
        return max(1, min(limits))

    def configure_optimizers(self) -> Any:
        generator = self._require_model()
        hparams = self.hparams
        optimizers = [self._adam(generator.parameters(), self.generator_lr, self.generator_betas,
                                 self.generator_weight_decay)]  # fmt: skip
        total = self.total_generator_steps()
        schedules = [WarmupCosineSchedule(optimizers[0], hparams.warmup_steps, total, hparams.min_lr_ratio)]
        if self.discriminator is not None:
            optimizers.append(self._adam(self.discriminator.parameters(), self.discriminator_lr,
                                         self.discriminator_betas, self.discriminator_weight_decay))  # fmt: skip
            schedules.append(WarmupCosineSchedule(optimizers[1], hparams.warmup_steps * self.n_critic,
                                                  total * self.n_critic, hparams.min_lr_ratio))  # fmt: skip
        return optimizers, schedules

    def _optimizers(self) -> tuple[LightningOptimizer, LightningOptimizer | None]:
        optimizers = self.optimizers()
        if not isinstance(optimizers, list):
            optimizers = [optimizers]
        generator = optimizers[0]
        critic = optimizers[1] if len(optimizers) > 1 else None
        if critic is not None:
            critic._on_before_step = _no_step_count
            critic._on_after_step = _no_step_count
        return generator, critic  # type: ignore[return-value]

    def _schedules(self) -> list[Any]:
        schedules = self.lr_schedulers()
        if schedules is None:
            return []
        return list(schedules) if isinstance(schedules, list) else [schedules]

    # ------------------------------------------------------------------ distributed helpers
    def _distributed(self) -> bool:
        return (
            self._trainer is not None and self.trainer.world_size > 1
            and torch.distributed.is_available() and torch.distributed.is_initialized()
        )  # fmt: skip

    @contextlib.contextmanager
    def _no_reducer(self) -> Iterator[None]:
        """Backward passes without DDP's reducer (the gradients are averaged by :meth:`_average_gradients`)."""
        wrapper = self.trainer.strategy.model if self._trainer is not None else None
        if isinstance(wrapper, nn.parallel.DistributedDataParallel):
            with wrapper.no_sync():
                yield
        else:
            yield

    def _average_gradients(self, module: nn.Module) -> None:
        if not self._distributed():
            return
        parameters = [p for p in module.parameters() if p.requires_grad]
        for parameter in parameters:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        flat = torch.cat([p.grad.reshape(-1) for p in parameters])  # type: ignore[union-attr]
        torch.distributed.all_reduce(flat)
        flat /= self.trainer.world_size
        offset = 0
        for parameter in parameters:
            count = parameter.numel()
            parameter.grad.copy_(flat[offset : offset + count].view_as(parameter))  # type: ignore[union-attr]
            offset += count

    def _step(self, optimizer: LightningOptimizer, module: nn.Module) -> None:
        self._average_gradients(module)
        if self.gradient_clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_norm, gradient_clip_algorithm="norm")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ training
    def _critic_loss(self, rgb: torch.Tensor, target: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, Any]:
        assert self.discriminator is not None
        real_scores = self.discriminator(rgb, target)
        fake_scores = self.discriminator(rgb, fake.detach())
        loss = self.adversarial.discriminator_loss(real_scores.float(), fake_scores.float())
        parts = {"adversarial": loss.detach()}
        if self.r1 is not None and self.r1.applies(self.d_steps_done):
            with torch.autocast(device_type=rgb.device.type, enabled=False):
                real = target.detach().float().requires_grad_(True)
                penalty = self.r1(self.discriminator(rgb.float(), real), real)
            loss = loss + penalty
            parts["r1"] = penalty.detach()
        return loss, (real_scores, parts)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        rgb, target = unpack_reconstruction_batch(batch)
        generator = self._require_model()
        g_optimizer, d_optimizer = self._optimizers()
        schedules = self._schedules()
        trains_generator = d_optimizer is None or self.d_steps_done % self.n_critic == self.n_critic - 1
        group_ends = self.micro_in_group + 1 >= self.accumulate or bool(self.trainer.is_last_batch)
        scale = 1.0 / self.accumulate
        step = int(self.trainer.global_step)  # generator steps so far
        if hasattr(generator, "set_iteration"):
            generator.set_iteration(step)
        batch_size = int(target.shape[0])

        with contextlib.nullcontext() if trains_generator else torch.no_grad():
            fake = generator(rgb)
        if fake.shape != target.shape:
            raise ShapeMismatchError(
                f"the generator returned {tuple(fake.shape)} for targets {tuple(target.shape)}; check that its "
                "out_channels equals the cube's band count"
            )
        last_loss: torch.Tensor | None = None
        real_scores = None
        if d_optimizer is not None:
            assert self.discriminator is not None
            d_loss, (real_scores, d_parts) = self._critic_loss(rgb, target, fake)
            with self._no_reducer():
                self.manual_backward(d_loss * scale)
            self._update_d_loss_ema(float(d_loss.detach()))
            self.log("train/d_loss", d_loss.detach(), on_step=True, on_epoch=False, batch_size=batch_size)
            self.log("train/d_loss_ema", self.d_loss_ema_value(), on_step=True, on_epoch=False, batch_size=batch_size)
            if "r1" in d_parts:
                self.log("train/r1", d_parts["r1"], on_step=True, on_epoch=False, batch_size=batch_size)
            last_loss = d_loss.detach()
        if trains_generator:
            assert self.generator_loss is not None
            fake_scores = None
            if self.discriminator is not None:
                self.discriminator.requires_grad_(False)
                try:
                    fake_scores = self.discriminator(rgb, fake)
                finally:
                    self.discriminator.requires_grad_(True)
            parts = self.generator_loss(
                fake, target, fake_scores, None if real_scores is None else real_scores.detach(), iteration=step
            )
            with self._no_reducer():
                self.manual_backward(parts["loss"] * scale)
            last_loss = parts["loss"].detach()
            self.log_loss("train", parts["loss"], batch_size)
            for name in ("reconstruction", "perceptual", "adversarial", "sam"):
                self.log(f"train/g_{name}", parts[name].detach(), on_step=True, on_epoch=False, batch_size=batch_size)
        self.last_training_loss = last_loss

        if group_ends:
            if d_optimizer is not None:
                assert self.discriminator is not None
                self._step(d_optimizer, self.discriminator)
                schedules[1].step()
                self.d_steps_done += 1
            if trains_generator:
                self._step(g_optimizer, generator)
                schedules[0].step()
            self.micro_in_group = 0
        else:
            self.micro_in_group += 1
        assert last_loss is not None
        return last_loss

    def _update_d_loss_ema(self, value: float) -> None:
        if math.isfinite(value):
            self.d_loss_ema = D_LOSS_EMA_BETA * self.d_loss_ema + (1.0 - D_LOSS_EMA_BETA) * value
            self.d_loss_updates += 1

    def d_loss_ema_value(self) -> float:
        """Bias-corrected moving average of the critic loss (β = 0.9; for the logs only, as in the reference)."""
        if self.d_loss_updates == 0:
            return 0.0
        return self.d_loss_ema / (1.0 - D_LOSS_EMA_BETA**self.d_loss_updates)

    def on_train_epoch_end(self) -> None:
        self.micro_in_group = 0  # a group never spans two epochs (the last batch closes it)

    # ------------------------------------------------------------------ evaluation in fp32
    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        with torch.autocast(device_type=self.device.type, enabled=False):
            return super().validation_step(_float_batch(batch), batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        with torch.autocast(device_type=self.device.type, enabled=False):
            return super().test_step(_float_batch(batch), batch_idx)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[GAN_STATE_KEY] = {
            "micro_in_group": self.micro_in_group,
            "d_steps_done": self.d_steps_done,
            "d_loss_ema": self.d_loss_ema,
            "d_loss_updates": self.d_loss_updates,
            "discriminator": {"name": self.discriminator_name, "arguments": dict(self.discriminator_args)},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record = checkpoint.get(GAN_STATE_KEY)
        if isinstance(record, dict):
            self.micro_in_group = int(record.get("micro_in_group", 0))
            self.d_steps_done = int(record.get("d_steps_done", 0))
            self.d_loss_ema = float(record.get("d_loss_ema", 0.0))
            self.d_loss_updates = int(record.get("d_loss_updates", 0))
            if self.model is None:
                self.discriminator_args = dict(record["discriminator"]["arguments"])
        super().on_load_checkpoint(checkpoint)


def _float_batch(batch: Any) -> Any:
    if isinstance(batch, (list, tuple)):
        return type(batch)(t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in batch)
    return batch


__all__ = ["GAN_STATE_KEY", "GANReconstructionTask"]
