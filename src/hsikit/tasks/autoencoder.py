"""Spectral autoencoders (deephyp, Windrim et al. 2019): learn to compress and reconstruct pixel spectra.

Batches are ``(spectra, targets)`` (targets, class indices or ``ignore_index``, only
colour the latent-space figure) or bare spectra ``(B, C)``. The model is a registered
autoencoder (``deephyp_mlp_ae``, ``deephyp_conv_ae``) with ``encode`` and ``decode``.

Loss: deephyp's ``SSE``, ``CSA``, ``SA`` or ``SID``
(:mod:`hsikit.losses.spectral`), **averaged** over the spectra of a batch by default
(``loss_reduction="mean"``: deephyp summed them, so its effective learning rate grew with
the batch size; ``"sum"`` reproduces that). The training objective adds
``l2_penalty · Σ_p ||p||² / 2`` over all weights and biases (deephyp's ``wd_lambda``,
which in the original never reached the gradients); ``train/loss`` logs the objective,
``val/loss`` and ``test/loss`` the reconstruction loss alone.

Metrics, per stage and epoch (torchmetrics means over spectra, synchronised under DDP):
``sam_deg`` (spectral angle, degrees), ``sid`` (spectral information divergence) and
``rmse`` (per-spectrum root mean squared error), all between the preprocessed input and
its reconstruction. Figures of the last validation/test epoch: example reconstructions
and the latent space (coloured by class when the data has labels).

Learning rate: BaseTask's ``warmup_cosine`` / ``constant``, or deephyp's ``exponential``
and ``piecewise`` schedules in optimizer steps (:mod:`hsikit.tasks.optim`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
from torchmetrics import MeanMetric

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.losses.spectral import RECONSTRUCTION_LOSSES, SID_FLOOR, create_reconstruction_loss
from hsikit.spectral.metrics import spectral_angle, spectral_information_divergence
from hsikit.tasks.base import STAGES, BaseTask, OptimizerName, Stage, stage_key
from hsikit.tasks.optim import ScheduleName, l2_penalty, optimizer_with_step_schedule, step_schedule_from_options
from hsikit.tasks.registry import register_task

DEFAULT_IGNORE_INDEX = -100
RECONSTRUCTION_METRICS: tuple[str, ...] = ("sam_deg", "sid", "rmse")


@register_task("autoencoder")
class AutoencoderTask(BaseTask):
    """Train a registered spectral autoencoder to reconstruct its input spectra.

    Args:
        model, model_args: the registered autoencoder and its arguments; ``in_bands`` is
            taken from the datamodule when left out.
        loss: ``"SSE"``, ``"CSA"``, ``"SA"`` or ``"SID"`` (deephyp ``lossFunc``; any case).
        loss_reduction: ``"mean"`` (default) or ``"sum"`` (deephyp) over the spectra of a batch.
        sa_method: ``"atan2"`` (exact, finite gradient everywhere) or ``"arccos"`` (deephyp's
            form with the clamped cosine), for ``loss="SA"``.
        sid_floor: positivity floor of the SID loss.
        l2_penalty: λ of ``λ Σ_p ||p||² / 2`` added to the training loss (deephyp ``wd_lambda``).
        optimizer, lr, weight_decay, momentum, warmup_steps, min_lr_ratio: see
            :class:`~hsikit.tasks.base.BaseTask`; the defaults are deephyp's (Adam, 1e-3, no
            decay, constant rate).
        scheduler, lr_decay_steps, lr_decay_rate, lr_piecewise_bounds, lr_piecewise_values:
            as :class:`~hsikit.tasks.classification.ClassificationTask`.
        figure_pixels: validation pixels kept for the latent-space figure.
        ignore_index: target value of unlabelled pixels.
    """

    monitor = "val/loss"
    monitor_mode = "min"

    def __init__(
        self,
        model: str = "deephyp_mlp_ae",
        model_args: dict[str, Any] | None = None,
        loss: str = "CSA",
        loss_reduction: Literal["mean", "sum"] = "mean",
        sa_method: Literal["atan2", "arccos"] = "atan2",
        sid_floor: float = SID_FLOOR,
        l2_penalty: float = 0.0,
        optimizer: OptimizerName = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        scheduler: ScheduleName = "constant",
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
        lr_decay_steps: int | None = None,
        lr_decay_rate: float | None = None,
        lr_piecewise_bounds: list[int] | None = None,
        lr_piecewise_values: list[float] | None = None,
        figure_pixels: int = 4000,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
    ) -> None:
        if str(loss).upper() not in RECONSTRUCTION_LOSSES:
            raise ConfigError(
                f"loss must be one of {', '.join(RECONSTRUCTION_LOSSES)} (deephyp lossFunc), got {loss!r}"
            )
        if loss_reduction not in ("mean", "sum"):
            raise ConfigError(f"loss_reduction must be 'mean' or 'sum', got {loss_reduction!r}")
        if not (math.isfinite(l2_penalty) and l2_penalty >= 0):
            raise ConfigError(f"l2_penalty must be a finite number >= 0, got {l2_penalty}")
        if figure_pixels < 0:
            raise ConfigError(f"figure_pixels must be >= 0, got {figure_pixels}")
        self.loss_name = str(loss).upper()
        self.loss_reduction = loss_reduction
        self.sa_method = sa_method
        self.sid_floor = float(sid_floor)
        self.l2_penalty = float(l2_penalty)
        self.figure_pixels = int(figure_pixels)
        self.ignore_index = int(ignore_index)
        self.step_schedule = step_schedule_from_options(
            scheduler, lr, lr_decay_steps, lr_decay_rate, lr_piecewise_bounds, lr_piecewise_values
        )
        self._figure_samples: dict[str, dict[str, list[torch.Tensor]]] = {}
        self.figure_data: dict[str, dict[str, np.ndarray]] = {}
        super().__init__(
            model=model,
            model_args=model_args,
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            scheduler="constant" if self.step_schedule is not None else scheduler,
            warmup_steps=warmup_steps,
            min_lr_ratio=min_lr_ratio,
        )

    # ------------------------------------------------------------------ configuration
    def resolve_model_arguments(self, arguments: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        if data.get("bands") is not None:
            arguments.setdefault("in_bands", int(data["bands"]))
        return arguments

    def configure_losses(self) -> None:
        options: dict[str, Any] = {"reduction": self.loss_reduction}
        if self.loss_name == "SA":
            options["method"] = self.sa_method
        elif self.loss_name == "SID":
            options["eps"] = self.sid_floor
        self.reconstruction_loss = create_reconstruction_loss(self.loss_name, **options)

    def configure_metrics(self) -> None:
        super().configure_metrics()
        self.metrics = nn.ModuleDict(
            {
                stage_key(stage): nn.ModuleDict(
                    {name: MeanMetric(nan_strategy="ignore") for name in RECONSTRUCTION_METRICS}
                )
                for stage in STAGES
            }
        )
        for metric in self.metrics[stage_key("train")].values():
            metric.persistent(True)

    def configure_optimizers(self) -> Any:
        if self.step_schedule is not None:
            return optimizer_with_step_schedule(self, self.step_schedule)
        return super().configure_optimizers()

    # ------------------------------------------------------------------ the model's passes
    def encode(self, spectra: torch.Tensor) -> torch.Tensor:
        """Latent vectors ``(N, latent)`` of preprocessed spectra ``(N, C)``."""
        return self._require_model().encode(spectra)  # type: ignore[operator]

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Reconstructions ``(N, C)`` of latent vectors ``(N, latent)``."""
        return self._require_model().decode(latent)  # type: ignore[operator]

    # ------------------------------------------------------------------ steps
    def objective(self, spectra: torch.Tensor, reconstruction: torch.Tensor, training: bool) -> torch.Tensor:
        """Reconstruction loss of ``(N, C)`` spectra, plus the L2 penalty when ``training``."""
        loss = self.reconstruction_loss(reconstruction.float(), spectra.float())
        if training and self.l2_penalty:
            loss = loss + self.l2_penalty * l2_penalty(self._require_model())
        return loss

    def shared_step(self, batch: Any, stage: Stage) -> torch.Tensor:
        spectra, targets = _unpack(batch)
        if spectra.ndim != 2:
            raise ShapeMismatchError(
                f"an autoencoder batch holds spectra (N, bands), got shape {tuple(spectra.shape)}; serve pixels with "
                "hsikit.data.spectral_datamodules.SpectraDataModule"
            )
        reconstruction = self(spectra)
        loss = self.objective(spectra, reconstruction, training=stage == "train")
        batch_size = int(spectra.shape[0])
        self.log_loss(stage, loss, batch_size)
        with torch.no_grad():
            target, output = spectra.detach().float(), reconstruction.detach().float()
            values = {
                "sam_deg": spectral_angle(output, target, axis=1, degrees=True),
                "sid": spectral_information_divergence(target.clamp_min(self.sid_floor),
                                                       output.clamp_min(self.sid_floor), axis=1),
                "rmse": (target - output).pow(2).mean(dim=1).sqrt(),
            }
        metrics = self.metrics[stage_key(stage)]
        for name, value in values.items():
            metrics[name].update(value)
            self.log(f"{stage}/{name}", metrics[name], on_step=False, on_epoch=True, batch_size=batch_size)
        if stage in ("val", "test") and self.figure_pixels:
            self._keep_figure_sample(stage, spectra, reconstruction, targets)
        return loss

    def _keep_figure_sample(
        self, stage: str, spectra: torch.Tensor, reconstruction: torch.Tensor, targets: torch.Tensor | None
    ) -> None:
        store = self._figure_samples.setdefault(stage, {"spectra": [], "reconstruction": [], "targets": []})
        kept = sum(int(t.shape[0]) for t in store["spectra"])
        room = self.figure_pixels - kept
        if room <= 0:
            return
        take = slice(0, room)
        store["spectra"].append(spectra[take].detach().float().cpu())
        store["reconstruction"].append(reconstruction[take].detach().float().cpu())
        if targets is not None:
            store["targets"].append(targets[take].detach().cpu())

    def _collect_figure_sample(self, stage: str) -> None:
        store = self._figure_samples.pop(stage, None)
        if not store or not store["spectra"]:
            return
        spectra = torch.cat(store["spectra"])
        with torch.no_grad():
            latent = self.encode(spectra.to(self.device)).float().cpu()
        data = {
            "spectra": spectra.numpy(),
            "reconstruction": torch.cat(store["reconstruction"]).numpy(),
            "latent": latent.numpy(),
        }
        if store["targets"]:
            data["targets"] = torch.cat(store["targets"]).numpy()
        self.figure_data[stage] = data

    def on_validation_epoch_start(self) -> None:
        self._figure_samples.pop("val", None)

    def on_test_epoch_start(self) -> None:
        self._figure_samples.pop("test", None)

    def on_validation_epoch_end(self) -> None:
        self._collect_figure_sample("val")

    def on_test_epoch_end(self) -> None:
        self._collect_figure_sample("test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """``{"index": flat pixel index (B,), "latent": (B, latent), "reconstruction": (B, C)}``."""
        spectra, index = _unpack(batch)
        latent = self.encode(spectra)
        return {"index": index, "latent": latent, "reconstruction": self.decode(latent)}

    # ------------------------------------------------------------------ report
    def figures(self, stage: str) -> dict[str, Any]:
        data = self.figure_data.get(stage)
        if data is None:
            return {}
        from hsikit.viz.latent import plot_latent_scatter, plot_reconstructions

        class_names = self.data_description.get("class_names") or None
        labels = None
        if "targets" in data and np.any(data["targets"] != self.ignore_index):
            offset = int(self.data_description.get("label_offset", 1))
            labels = np.where(data["targets"] == self.ignore_index, 0, data["targets"] + offset)
        return {
            f"latent_space_{stage}": plot_latent_scatter(
                data["latent"], labels, class_names, title=f"Latent space ({stage} pixels, {self.loss_name} loss)"
            ),
            f"reconstructions_{stage}": plot_reconstructions(
                data["spectra"],
                data["reconstruction"],
                self.data_description.get("wavelengths"),
                title=f"Reconstructions ({stage} pixels)",
            ),
        }

    def export_data(self) -> dict[str, Any]:
        data = dict(self.data_description)
        data.setdefault("loss", self.loss_name)
        return data


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    if isinstance(batch, (list, tuple)) and len(batch) == 1:
        return batch[0], None
    if isinstance(batch, Mapping) and "spectra" in batch:
        return batch["spectra"], batch.get("targets")
    raise ShapeMismatchError(
        "an autoencoder batch is spectra (B, C), (spectra, targets) or a dict with 'spectra', got "
        f"{type(batch).__name__}"
    )


__all__ = ["AutoencoderTask"]
