"""RGB → hyperspectral reconstruction (MST++ / NTIRE 2022 recipe) on the hsikit engine.

Batches are ``(rgb (B, 3, H, W), cube (B, C, H, W))`` float32 pairs, as served by
:class:`~hsikit.data.reconstruction_datamodule.ReconstructionDataModule`.

Training (``specs/mstpp_protocol.md`` §4): the loss is the MRAE ``mean(|ŷ − y| / y)`` over all
elements (:class:`~hsikit.losses.reconstruction.MRAELoss`), optionally plus ``sam_weight`` ×
spectral angle (radians) and ``ssim_weight`` × (1 − SSIM); Adam with β = (0.9, 0.999), lr 4e-4,
no weight decay, and a cosine schedule stepped every iteration from the peak rate down to
``min_lr_ratio × lr`` at the last step (the recipe's ``eta_min = 1e-6`` is ``min_lr_ratio =
0.0025`` of 4e-4). The cosine ends exactly at the trainer's last step (``max_steps``), so it never
rises again as the reference loop's overshoot did. fp32, no gradient clipping and no EMA in the
recipe (both available through the trainer and ``run.ema_decay``).

Validation and test (§5): full frames, one image at a time; the metrics of
:class:`~hsikit.metrics.reconstruction.ReconstructionMetrics` — MRAE, RMSE, PSNR, SAM — per image
after removing ``eval_crop`` pixels from every border (128 for the 482 × 512 ARAD-1K images),
averaged over images without weights; MRAE and RMSE on the raw prediction, PSNR after clamping to
[0, 1]. When the run keeps a weight EMA (``run.ema_decay``) the engine swaps the averaged weights
in for validation and test, so these metrics, the best checkpoint and the export all use them.
``test_ensemble`` applies the 8-way flip/transpose self-ensemble (mean or median) to the test
stage only (the protocol's validation is a single forward pass). ``val/mrae`` selects the best
checkpoint.

Transformer recipes (HSIFusionNet, SHARP; ``specs/001_hsifusion_sharp.md`` §2.4, §3.4-3.5) use
the same task with more options: ``model: hsifusion`` + ``model_size: tiny`` names the preset
``hsifusion_tiny``; AdamW with parameter groups (no weight decay on biases and normalisation
weights, :class:`~hsikit.tasks.base.BaseTask`); ``warmup_epochs`` of linear warm-up (converted
to optimizer steps from the real loader length and the gradient accumulation) before the
cosine; ``compile_model`` (``torch.compile`` of the network in place, so checkpoint and export
keys do not change) and ``channels_last``; and auxiliary losses, each logged on its own under
``<stage>/aux/...``:

* the network's own auxiliary loss (``model.auxiliary_loss()`` after the forward pass:
  HSIFusionNet's differentiable mixture-of-experts balance loss, already multiplied by its
  ``auxiliary_loss_weight``), times ``auxiliary_loss_scale``; logged as ``aux/network`` and,
  for mixtures of experts, the unweighted ``aux/moe_balance`` and ``aux/moe_overflow``;
* the corrected spectral regulariser of SHARP (``spectral_reg_weight`` ×
  :func:`~hsikit.models.reconstruction.sharp.spectral_regularizer` of prediction and target:
  curvature of the spectra, or the residual outside a low-frequency basis; 0 for a perfect
  prediction), logged as ``aux/spectral_<kind>``; it works with any model.

Gradient accumulation, the weight EMA and its update interval, bf16 autocast
(``trainer.precision: bf16-mixed``) and DDP come from the engine (``run.accumulate_steps``,
``run.ema_decay``, ``run.ema_update_every``, ``trainer.*``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.inference.reconstruction import EnsembleMode, check_ensemble_mode, self_ensemble_x8
from hsikit.losses.reconstruction import MRAELoss, SAMLoss
from hsikit.metrics.reconstruction import (
    ALL_METRICS,
    DEFAULT_CROP,
    PROTOCOL_METRICS,
    MraeVariant,
    ReconstructionMetrics,
    ssim,
)
from hsikit.models.registry import get_model_entry, list_models
from hsikit.tasks.base import BaseTask, OptimizerName, SchedulerName, Stage, stage_key
from hsikit.tasks.registry import register_task

MSTPP_LR = 4e-4
MSTPP_ETA_MIN = 1e-6
MSTPP_MIN_LR_RATIO = MSTPP_ETA_MIN / MSTPP_LR
"""The recipe's final learning rate as a fraction of the peak (``eta_min = 1e-6`` of 4e-4)."""
EVAL_STAGES: tuple[str, ...] = ("val", "test")
SSIM_LOSS_MIN_SIZE = 11


@register_task("reconstruction")
class ReconstructionTask(BaseTask):
    """Train and evaluate an RGB → hyperspectral model with the MST++ recipe (module docstring).

    Args:
        model: registry name of a reconstruction model (``"mst_plus_plus"``, ``"hscnn_r"``...).
        model_args: its arguments; ``in_channels`` and ``out_channels`` (and MST++'s ``n_feat``)
            come from the datamodule when left out.
        mrae_weight: weight of the MRAE loss term (1).
        sam_weight: weight of the spectral-angle term, radians (0: off).
        ssim_weight: weight of the ``1 − SSIM`` term (0: off; needs patches of at least 11 px).
        mrae_variant: ``"mstpp"`` (targets must be strictly positive, as ARAD-1K's are) or
            ``"custom"`` (zeros of the target replaced by 1e-8), for the loss and the MRAE metric.
        eval_crop: border removed on every side before scoring (128: the protocol on 482 × 512
            images; smaller images need a smaller crop, e.g. 25 for the 100-px proxy scenes).
        metrics: evaluation metrics among ``mrae, rmse, psnr, sam, ssim`` (default: the protocol's four).
        test_ensemble: ``"none"``, ``"mean"`` or ``"median"`` 8-way self-ensemble at test time.
        optimizer, lr, weight_decay, momentum, scheduler, warmup_steps, min_lr_ratio: see
            :class:`~hsikit.tasks.base.BaseTask`; the defaults are the MST++ recipe.
        model_size: preset size appended to ``model`` (``model: hsifusion`` + ``model_size: tiny``
            → ``hsifusion_tiny``); None: ``model`` is the full registry name.
        warmup_epochs: epochs of linear warm-up, converted to optimizer steps
            (``ceil(batches per epoch / accumulation)`` each) when training starts; replaces
            ``warmup_steps`` when > 0 (fractions allowed).
        compile_model: ``torch.compile`` the network (in place: parameter names unchanged).
        channels_last: keep weights and inputs in the channels-last memory format (faster
            convolutions on GPUs with tensor cores; no effect on the results).
        auxiliary_loss_scale: factor on the network's own auxiliary loss (HSIFusionNet's
            mixture-of-experts balance loss; 0: not trained, still logged).
        spectral_reg_weight: weight of the spectral regulariser between prediction and target
            (SHARP's α; 0: off).
        spectral_reg_kind: ``"curvature"`` (second differences along the bands) or ``"basis"``
            (residual outside a low-frequency cosine basis).
    """

    monitor = "val/mrae"
    monitor_mode = "min"

    def __init__(
        self,
        model: str = "mst_plus_plus",
        model_args: dict[str, Any] | None = None,
        mrae_weight: float = 1.0,
        sam_weight: float = 0.0,
        ssim_weight: float = 0.0,
        mrae_variant: MraeVariant = "mstpp",
        eval_crop: int = DEFAULT_CROP,
        metrics: Sequence[str] = PROTOCOL_METRICS,
        test_ensemble: EnsembleMode = "none",
        optimizer: OptimizerName = "adam",
        lr: float = MSTPP_LR,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        scheduler: SchedulerName = "warmup_cosine",
        warmup_steps: int = 0,
        min_lr_ratio: float = MSTPP_MIN_LR_RATIO,
        model_size: str | None = None,
        warmup_epochs: float = 0.0,
        compile_model: bool = False,
        channels_last: bool = False,
        auxiliary_loss_scale: float = 1.0,
        spectral_reg_weight: float = 0.0,
        spectral_reg_kind: Literal["curvature", "basis"] = "curvature",
    ) -> None:
        model = resolve_model_name(model, model_size)
        if not warmup_epochs >= 0 or not auxiliary_loss_scale >= 0 or not spectral_reg_weight >= 0:
            raise ConfigError(
                "warmup_epochs, auxiliary_loss_scale and spectral_reg_weight must be >= 0, got "
                f"{warmup_epochs}, {auxiliary_loss_scale}, {spectral_reg_weight}"
            )
        if spectral_reg_kind not in ("curvature", "basis"):
            raise ConfigError(f"spectral_reg_kind must be 'curvature' or 'basis', got {spectral_reg_kind!r}")
        self.warmup_epochs = float(warmup_epochs)
        self.compile_model = bool(compile_model)
        self.channels_last = bool(channels_last)
        self.auxiliary_loss_scale = float(auxiliary_loss_scale)
        self.spectral_reg_weight = float(spectral_reg_weight)
        self.spectral_reg_kind = spectral_reg_kind
        weights = {"mrae_weight": mrae_weight, "sam_weight": sam_weight, "ssim_weight": ssim_weight}
        if min(weights.values()) < 0 or sum(weights.values()) == 0:
            raise ConfigError(f"loss weights must be >= 0 and not all 0, got {weights}")
        if mrae_variant not in ("mstpp", "custom"):
            raise ConfigError(f"mrae_variant must be 'mstpp' or 'custom', got {mrae_variant!r}")
        if isinstance(eval_crop, bool) or not isinstance(eval_crop, int) or eval_crop < 0:
            raise ConfigError(f"eval_crop must be a whole number of pixels >= 0, got {eval_crop!r}")
        unknown = [name for name in metrics if name not in ALL_METRICS or name == "back_projection_mrae"]
        if unknown or not metrics:
            raise ConfigError(
                f"metrics {unknown or list(metrics)} are not available here; choose among mrae, rmse, psnr, sam, ssim"
            )
        entry = get_model_entry(model)
        if entry.task != "reconstruction":
            raise ConfigError(
                f"model {model!r} is a {entry.task!r} model; the reconstruction task needs one of the reconstruction "
                "models (hsikit.models.list_models(task='reconstruction'))"
            )
        self.mrae_weight = float(mrae_weight)
        self.sam_weight = float(sam_weight)
        self.ssim_weight = float(ssim_weight)
        self.mrae_variant: MraeVariant = mrae_variant
        self.eval_crop = int(eval_crop)
        self.metric_names = tuple(metrics)
        self.test_ensemble = check_ensemble_mode(test_ensemble)
        self.examples: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        super().__init__(
            model=model,
            model_args=model_args,
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            scheduler=scheduler,
            warmup_steps=warmup_steps,
            min_lr_ratio=min_lr_ratio,
        )

    # ------------------------------------------------------------------ configuration
    def resolve_model_arguments(self, arguments: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        accepted = set(get_model_entry(self.model_name).parameter_names())
        if data.get("bands") is not None and "in_channels" in accepted:
            arguments.setdefault("in_channels", int(data["bands"]))
        if data.get("output_bands") is not None:
            if "out_channels" in accepted:
                arguments.setdefault("out_channels", int(data["output_bands"]))
            if "n_feat" in accepted:  # MST++ adds its embedded input to the output: n_feat = output bands
                arguments.setdefault("n_feat", int(data["output_bands"]))
        return arguments

    def _resolved_model_arguments(self, required: bool) -> dict[str, Any] | None:
        # Every reconstruction model has defaults for its band counts (3 -> 31), so the base class
        # would build it before the data is known. Wait for the data (or a checkpoint's record) unless
        # the band counts are given; a Trainer without a describing datamodule builds with the defaults.
        given = {"in_channels", "out_channels"} & set(self.model_args)
        if not required and not self.data_description and not given:
            return None
        return super()._resolved_model_arguments(required)

    def configure_models(self, arguments: dict[str, Any]) -> None:
        super().configure_models(arguments)
        model = self._require_model()
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.compile_model:
            # In place: state_dict keys, EMA and export are unchanged. Static shapes: one graph per
            # input size (training patches, full validation frames); the symbolic-shape path of
            # inductor fails on the padded window arithmetic of the transformers.
            model.compile(dynamic=False)

    def configure_optimizers(self) -> Any:
        """BaseTask's optimizer and schedule, with ``warmup_epochs`` converted to optimizer steps."""
        configuration = super().configure_optimizers()
        if self.warmup_epochs <= 0 or not isinstance(configuration, dict):
            if self.warmup_epochs > 0:
                raise ConfigError("warmup_epochs needs a schedule: use scheduler 'warmup_cosine' or 'constant'")
            return configuration
        schedule = configuration["lr_scheduler"]["scheduler"]
        warmup = self.warmup_steps_from_epochs()
        configuration["lr_scheduler"]["scheduler"] = type(schedule)(
            configuration["optimizer"], warmup, schedule.total_steps, schedule.min_lr_ratio
        )
        return configuration

    def warmup_steps_from_epochs(self) -> int:
        """``round(warmup_epochs × ceil(training batches per epoch / accumulate_grad_batches))``.

        The reference (``hsifusion_training.py``) counted warm-up in epochs of optimizer steps
        the same way; the count here comes from the real loader length of this process.
        """
        trainer = self.trainer
        if not math.isfinite(float(trainer.num_training_batches)):
            trainer.fit_loop.setup_data()  # a max_steps-only run has not loaded the training data yet
        batches = trainer.num_training_batches
        if not math.isfinite(float(batches)) or batches < 1:
            raise ConfigError(
                "warmup_epochs needs a training loader of known length; use warmup_steps for iterable datasets"
            )
        per_epoch = math.ceil(int(batches) / max(1, int(trainer.accumulate_grad_batches)))
        return max(1, round(self.warmup_epochs * per_epoch))

    def configure_losses(self) -> None:
        self.mrae_loss = MRAELoss(self.mrae_variant)
        self.sam_loss = SAMLoss()

    def configure_metrics(self) -> None:
        super().configure_metrics()
        self.metrics = nn.ModuleDict(
            {
                stage_key(stage): ReconstructionMetrics(
                    self.metric_names, crop=self.eval_crop, mrae_variant=self.mrae_variant, prefix=f"{stage}/"
                )
                for stage in EVAL_STAGES
            }
        )

    # ------------------------------------------------------------------ loss
    def loss_terms(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"mrae", ["sam"], ["ssim"], "loss"}``: the unweighted terms in use and the weighted total."""
        terms: dict[str, torch.Tensor] = {}
        total = prediction.new_zeros(())
        if self.mrae_weight > 0:
            terms["mrae"] = self.mrae_loss(prediction, target)
            total = total + self.mrae_weight * terms["mrae"]
        if self.sam_weight > 0:
            terms["sam"] = self.sam_loss(prediction, target)
            total = total + self.sam_weight * terms["sam"]
        if self.ssim_weight > 0:
            if min(prediction.shape[-2:]) < SSIM_LOSS_MIN_SIZE:
                raise ConfigError(
                    f"the SSIM loss needs images of at least {SSIM_LOSS_MIN_SIZE} px, got {tuple(prediction.shape)}; "
                    "use larger patches or ssim_weight 0"
                )
            terms["ssim"] = ssim(prediction, target, crop=0).mean().to(prediction.dtype)
            total = total + self.ssim_weight * (1.0 - terms["ssim"])
        terms["loss"] = total
        return terms

    def auxiliary_terms(self, prediction: torch.Tensor, target: torch.Tensor, stage: str) -> dict[str, torch.Tensor]:
        """``{"aux/<name>": value, ..., "aux_total": weighted sum}`` of the last forward pass.

        Training only adds the network's auxiliary loss (× ``auxiliary_loss_scale``) and the
        spectral regulariser (× ``spectral_reg_weight``); the logged ``aux/*`` values are
        unweighted (``aux/network`` already carries the network's own weight).
        """
        model = self._require_model()
        terms: dict[str, torch.Tensor] = {}
        total = prediction.new_zeros((), dtype=torch.float32)
        network_loss = getattr(model, "auxiliary_loss", None)
        if stage == "train" and callable(network_loss):
            value = network_loss()
            if isinstance(value, torch.Tensor) and value.requires_grad:  # a zero constant means: none
                terms["aux/network"] = value.float()
                total = total + self.auxiliary_loss_scale * value.float()
            layers = model.mixture_layers() if callable(getattr(model, "mixture_layers", None)) else []
            balances = [layer.balance_loss.detach().float() for layer in layers if layer.balance_loss is not None]
            overflows = [
                layer.overflow_fraction.detach().float()
                for layer in layers
                if isinstance(getattr(layer, "overflow_fraction", None), torch.Tensor)
            ]
            if balances:
                terms["aux/moe_balance"] = torch.stack(balances).mean()
            if overflows:
                terms["aux/moe_overflow"] = torch.stack(overflows).mean()
        if self.spectral_reg_weight > 0:
            from hsikit.models.reconstruction.sharp import spectral_regularizer

            value = spectral_regularizer(prediction.float(), target.float(), self.spectral_reg_kind)
            terms[f"aux/spectral_{self.spectral_reg_kind}"] = value
            if stage == "train":
                total = total + self.spectral_reg_weight * value
        terms["aux_total"] = total
        return terms

    # ------------------------------------------------------------------ steps
    def predict_cube(self, rgb: torch.Tensor, ensemble: EnsembleMode = "none") -> torch.Tensor:
        """``(B, 3, H, W)`` → ``(B, C, H, W)``, optionally with the 8-way self-ensemble."""
        if self.channels_last:
            rgb = rgb.contiguous(memory_format=torch.channels_last)
        return self_ensemble_x8(self._require_model(), rgb, ensemble)

    def shared_step(self, batch: Any, stage: Stage) -> torch.Tensor:
        rgb, target = unpack_reconstruction_batch(batch)
        ensemble = self.test_ensemble if stage == "test" else "none"
        prediction = self.predict_cube(rgb, ensemble)
        if prediction.shape != target.shape:
            raise ShapeMismatchError(
                f"the model returned {tuple(prediction.shape)} for targets {tuple(target.shape)}; check that the "
                "model's out_channels equals the cube's band count"
            )
        terms = self.loss_terms(prediction.float(), target.float())
        auxiliary = self.auxiliary_terms(prediction, target, stage)
        terms["loss"] = terms["loss"] + auxiliary.pop("aux_total")
        batch_size = int(target.shape[0])
        self.log_loss(stage, terms["loss"], batch_size)
        for name, value in terms.items():
            if name != "loss":
                self.log(f"{stage}/loss_{name}", value.detach(), on_step=stage == "train", on_epoch=True,
                         batch_size=batch_size)
        for name, value in auxiliary.items():
            self.log(f"{stage}/{name}", value.detach(), on_step=stage == "train", on_epoch=True,
                     batch_size=batch_size)
        if stage in EVAL_STAGES:
            self.metrics[stage_key(stage)].update(prediction.detach(), target)
            if stage not in self.examples:
                self.examples[stage] = (rgb[0].detach().cpu(), prediction[0].detach().float().cpu(), target[0].cpu())
        return terms["loss"]

    def _log_metrics(self, stage: str) -> None:
        metric = self.metrics[stage_key(stage)]
        with warnings.catch_warnings():
            # a DDP rank that scored no image still takes part in the reduction
            warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
            values = metric.compute()  # reduced over DDP ranks: the same on every rank
        metric.reset()
        if all(bool(torch.isnan(value)) for value in values.values()):
            return  # no image was scored anywhere
        self.log_dict({key: value.float() for key, value in values.items()}, sync_dist=False)

    def on_validation_epoch_start(self) -> None:
        self.examples.pop("val", None)

    def on_test_epoch_start(self) -> None:
        self.examples.pop("test", None)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """The reconstructed cubes ``(B, C, H, W)`` of a batch of RGB images (or of ``(rgb, cube)`` pairs)."""
        rgb = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.predict_cube(rgb, self.test_ensemble)

    # ------------------------------------------------------------------ report
    def figures(self, stage: str) -> dict[str, Any]:
        example = self.examples.get(stage)
        if example is None:
            return {}
        from hsikit.viz.reconstruction import plot_reconstruction

        rgb, prediction, target = (tensor.numpy() for tensor in example)
        wavelengths = self.data_description.get("output_wavelengths")
        if wavelengths is not None and len(wavelengths) != target.shape[0]:
            wavelengths = None
        span = float(rgb.max() - rgb.min()) or 1.0
        figure = plot_reconstruction(
            prediction,
            target,
            rgb=(rgb - rgb.min()) / span,
            wavelengths=wavelengths,
            title=f"{stage} set, first image: reconstructed vs true spectra",
        )
        return {f"reconstruction_{stage}": figure}


def resolve_model_name(model: str, model_size: str | None) -> str:
    """The registry name of ``model`` at ``model_size``: ``("hsifusion", "tiny")`` → ``"hsifusion_tiny"``.

    ``model_size=None`` returns ``model`` unchanged; a full preset name with the same size
    (``("sharp_tiny", "tiny")``) is accepted.

    Raises:
        ConfigError: no such preset, or a full name of another size.
    """
    if model_size is None:
        return model
    size = str(model_size)
    if model.endswith(f"_{size}") and model in list_models():
        return model
    candidate = f"{model}_{size}"
    if candidate in list_models():
        return candidate
    sizes = sorted(name[len(model) + 1 :] for name in list_models() if name.startswith(f"{model}_"))
    if sizes:
        raise ConfigError(f"model {model!r} has no size {size!r}; choose model_size among {', '.join(sizes)}")
    raise ConfigError(
        f"model_size {size!r} needs a model family such as 'hsifusion' or 'sharp' in 'model' (got {model!r}; "
        "a full registry name such as 'hsifusion_tiny' takes no model_size)"
    )


def unpack_reconstruction_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rgb (B, 3, H, W), cube (B, C, H, W))`` from a pair or a dict with ``rgb`` and ``cube``."""
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    if isinstance(batch, Mapping) and "rgb" in batch and "cube" in batch:
        return batch["rgb"], batch["cube"]
    raise ShapeMismatchError(
        f"a reconstruction batch is (rgb (B, 3, H, W), cube (B, C, H, W)) or a dict with 'rgb' and 'cube', "
        f"got {type(batch).__name__}"
    )


__all__ = ["MSTPP_LR", "MSTPP_MIN_LR_RATIO", "ReconstructionTask", "resolve_model_name", "unpack_reconstruction_batch"]
