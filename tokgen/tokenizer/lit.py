"""`TokenizerLit`: trains a `VideoTokenizer` (losses, optional GAN and perceptual terms, metrics, previews).

The LightningModule receives plain configs (dicts or dataclasses), never modules, so its checkpoint
holds only tensors and primitive hyperparameters and loads with ``weights_only=True``.
Optimization is manual because the adversarial loss needs two optimizers stepped in turn; with
the GAN off the same code runs with one optimizer.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn

from tokgen.io.contact_sheet import contact_sheet, save_png
from tokgen.io.convert import tensor_to_frames
from tokgen.io.video_write import write_video
from tokgen.lr_schedule import lr_factor, run_progress
from tokgen.metrics.codebook import code_histogram, codebook_perplexity, codebook_usage
from tokgen.metrics.image import psnr, ssim
from tokgen.tokenizer.config import TokenizerConfig, TokenizerTrainConfig
from tokgen.tokenizer.discriminator import (
    Discriminator,
    generator_adversarial_loss,
    hinge_discriminator_loss,
)
from tokgen.tokenizer.model import VideoTokenizer
from tokgen.tokenizer.perceptual import PerceptualLoss


def _as(cls: type, value: object) -> object:
    return value if isinstance(value, cls) else cls.from_dict(dict(value or {}))


class TokenizerLit(L.LightningModule):
    """Lightning wrapper: ``fit`` / ``validate`` / ``test`` / ``predict`` of a C-ViViT tokenizer.

    Args:
        tokenizer: architecture (``TokenizerConfig`` or its dict).
        train: optimisation and losses (``TokenizerTrainConfig`` or its dict).
    """

    def __init__(self, tokenizer: TokenizerConfig | dict, train: TokenizerTrainConfig | dict | None = None) -> None:
        super().__init__()
        self.tokenizer_config: TokenizerConfig = _as(TokenizerConfig, tokenizer)
        self.train_config: TokenizerTrainConfig = _as(TokenizerTrainConfig, train)
        # Fraction of the run done, for the rate's cooldown (on_train_batch_start); None until the first
        # batch of this process, so a resumed DDP run takes rank 0's time at once.
        self._progress: float | None = None
        # Plain dicts only: the checkpoint must load with weights_only=True.
        self.save_hyperparameters({"tokenizer": self.tokenizer_config.to_dict(), "train": asdict(self.train_config)})
        self.model = VideoTokenizer(self.tokenizer_config)
        tc = self.train_config
        self.discriminator = (
            Discriminator(kind=tc.disc_kind, channels=self.tokenizer_config.channels, dim=tc.disc_dim)
            if tc.gan_weight > 0
            else None
        )
        self.perceptual = PerceptualLoss(tc.perceptual_weights) if tc.perceptual_weight > 0 else None
        self.automatic_optimization = False
        self._val_counts: torch.Tensor | None = None

    def configure_model(self) -> None:
        # Execution switches, applied in place so parameter names (and checkpoints) stay as they are.
        from tokgen.tokenizer.blocks import Transformer

        for module in self.model.modules():
            if isinstance(module, Transformer):
                module.checkpointing = self.train_config.checkpointing
        if self.train_config.compile:
            self.model.compile_blocks()

    # ----------------------------------------------------------------------------------- training
    def _recon_loss(self, recon: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(recon, video) if self.train_config.recon_loss == "l1" else F.mse_loss(recon, video)

    def _gan_active(self) -> bool:
        return self.discriminator is not None and self.global_step >= self.train_config.gan_start_step

    def _adaptive_weight(self, nll: torch.Tensor, g_loss: torch.Tensor) -> torch.Tensor:
        """Scale the GAN term so its gradient at the last decoder layer matches the reconstruction's."""
        if not self.train_config.adaptive_gan_weight:
            return torch.tensor(self.train_config.gan_weight, device=nll.device)
        last = self.model.to_rest.weight  # the output layer that draws all frames after the first
        nll_grad = torch.autograd.grad(nll, last, retain_graph=True)[0]
        g_grad = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
        weight = nll_grad.norm() / (g_grad.norm() + 1e-4)
        return weight.clamp(0, 1e4).detach() * self.train_config.gan_weight

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        self._progress = run_progress(self.trainer, self._progress)
        if batch_idx == 0:
            self._check_window(batch["video"].shape[2])

    def _check_window(self, num_frames: int) -> None:
        """Warn when training clips are too short to train every distance the temporal attention spans."""
        config = self.tokenizer_config
        latent, window = config.latent_frames(num_frames), config.temporal_window
        if latent > 1 and (window is None or latent < window):
            spans = "every earlier latent frame" if window is None else f"{window} latent frames"
            longer = "" if window is None else f" or train on clips of >= {config.num_frames(window)} frames"
            rank_zero_warn(
                f"training clips of {num_frames} frames hold {latent} latent frames, but temporal attention spans "
                f"{spans}: distances beyond {latent - 1} are never trained, so longer videos degrade after latent "
                f"frame {latent - 1} (Shapes, small: 3-4 dB). Set tokenizer.temporal_window <= {latent}{longer}."
            )

    def training_step(self, batch: dict, batch_idx: int) -> None:
        video = batch["video"]
        optimizers = self.optimizers()
        opt_g, opt_d = optimizers if isinstance(optimizers, list) else (optimizers, None)
        schedulers = self.lr_schedulers()
        tc = self.train_config

        mix = tc.quantizer_mix(self.global_step)
        out = self.model(video, quantizer_mix=mix)
        recon_loss = self._recon_loss(out.recon, video)
        nll = recon_loss
        if self.perceptual is not None:
            perceptual = self.perceptual(out.recon, video)
            nll = nll + tc.perceptual_weight * perceptual
            self.log("train/perceptual", perceptual)
        # No commitment pull while the decoder does not see the codes: it would only shrink the latents.
        loss = nll if mix == 0.0 else nll + tc.quantizer_weight * out.quantizer_loss
        gan_on = self._gan_active()
        if gan_on:
            g_loss = generator_adversarial_loss(self.discriminator(out.recon))
            gan_weight = self._adaptive_weight(nll, g_loss)
            loss = loss + gan_weight * g_loss
            self.log_dict({"train/gan_g": g_loss, "train/gan_weight": gan_weight})

        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite tokenizer loss at step {self.global_step} (recon {recon_loss.item():.4g}, "
                f"quantizer {out.quantizer_loss.item():.4g}); the last good checkpoint is kept"
            )
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if tc.grad_clip:
            self.clip_gradients(opt_g, gradient_clip_val=tc.grad_clip, gradient_clip_algorithm="norm")
        opt_g.step()

        if gan_on:
            real = self.discriminator(video.detach())
            fake = self.discriminator(out.recon.detach())
            d_loss = hinge_discriminator_loss(real, fake)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
            self.log("train/gan_d", d_loss)
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
        schedulers[0].step()
        if gan_on and len(schedulers) > 1:  # the discriminator's warm-up counts its own steps
            schedulers[1].step()

        counts = code_histogram(out.codes, self.tokenizer_config.codebook_size)
        self.log_dict(
            {
                "train/loss": loss,
                "train/recon": recon_loss,
                "train/quantizer": out.quantizer_loss,
                "train/psnr": psnr(out.recon.detach(), video).mean(),
                "train/batch_usage": codebook_usage(counts),
                "train/quantizer_mix": mix,
            },
            prog_bar=False,
        )
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        if "skipped" in batch:
            self.log("data/skipped", batch["skipped"].sum().float(), on_step=False, on_epoch=True, reduce_fx="sum")

    def configure_optimizers(self):
        tc = self.train_config

        def schedule(step: int) -> float:
            return lr_factor(step, self._progress or 0.0, tc.warmup_steps, tc.cooldown)

        opt_g = torch.optim.AdamW(self.model.parameters(), lr=tc.lr, betas=tc.betas, weight_decay=tc.weight_decay)
        sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, schedule)
        if self.discriminator is None:
            return [opt_g], [sched_g]
        opt_d = torch.optim.AdamW(self.discriminator.parameters(), lr=tc.disc_lr or tc.lr, betas=tc.betas)
        return [opt_g, opt_d], [sched_g, torch.optim.lr_scheduler.LambdaLR(opt_d, schedule)]  # both cool down

    # ------------------------------------------------------------------------- evaluation
    def on_validation_epoch_start(self) -> None:
        self._val_counts = torch.zeros(self.tokenizer_config.codebook_size, dtype=torch.long, device=self.device)

    on_test_epoch_start = on_validation_epoch_start

    def _evaluate(self, batch: dict, batch_idx: int, stage: str) -> None:
        video = batch["video"]
        out = self.model(video)
        self._val_counts += code_histogram(out.codes, self.tokenizer_config.codebook_size)
        self.log_dict(
            {
                f"{stage}/psnr": psnr(out.recon, video).mean(),
                f"{stage}/ssim": ssim(out.recon, video).mean(),
                f"{stage}/recon": self._recon_loss(out.recon, video),
            },
            prog_bar=stage == "val",
            batch_size=video.shape[0],
        )
        if batch_idx == 0 and stage == "val":
            self._save_preview(video, out.recon)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def _end_epoch(self, stage: str) -> None:
        counts = self._val_counts
        usage, perplexity = codebook_usage(counts), codebook_perplexity(counts)
        self.log_dict({f"{stage}/codebook_usage": usage, f"{stage}/codebook_perplexity": perplexity})
        message = self.collapse_message(counts, perplexity, self.global_step, self.trainer.sanity_checking)
        if message:
            rank_zero_warn(f"codebook collapse: {stage} {message}")

    def collapse_message(self, counts: torch.Tensor, perplexity: float, step: int, sanity: bool) -> str | None:
        """What to warn about when validation used too few codes; None when usage is fine or not yet telling.

        Usage is measured over a small validation set, so it is judged against how many codes that set
        had. Not before the decoder sees only codes: the sanity check's untrained encoder, or one still
        in the quantizer warm-up (FSQ small, 15-minute run: 47 of 1024 codes at step 199, 261 at 399).
        """
        possible = min(counts.numel(), int(counts.sum()))
        used = int((counts > 0).sum())
        settled = not sanity and self.train_config.quantizer_mix(step) >= 1
        if not (settled and possible and used / possible < self.train_config.usage_warn_below):
            return None
        advice = (
            "consider a higher dead_code_ratio, lower codebook_dim, or fsq/lfq quantizers"
            if self.tokenizer_config.quantizer == "vq"
            else "the encoder's latents fill few of the quantizer's cells"
        )
        return f"used {used} of {counts.numel()} codes (perplexity {perplexity:.1f}); {advice}"

    def on_validation_epoch_end(self) -> None:
        self._end_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._end_epoch("test")

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """Reconstruct a batch: returns uint8 input and reconstruction frames ``(b, t, h, w, 3)`` and captions."""
        video = batch["video"]
        recon = self.model.decode(self.model.encode(video))
        return {
            "input": tensor_to_frames(video),
            "recon": tensor_to_frames(recon),
            "psnr": psnr(recon, video).cpu().numpy(),
            "caption": list(batch.get("caption", [""] * video.shape[0])),
        }

    def _save_preview(self, video: torch.Tensor, recon: torch.Tensor) -> None:
        """Input and reconstruction rows, as a PNG in the run folder and an image in loggers that take them."""
        n = min(self.train_config.num_previews, video.shape[0])
        if n == 0 or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        rows, labels = [], []
        for i in range(n):
            rows += [tensor_to_frames(video[i]), tensor_to_frames(recon[i])]
            labels += [f"input {i}", f"reconstruction {i}"]
        sheet = contact_sheet(rows, labels=labels, scale=2)
        folder = Path(self.trainer.default_root_dir) / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        save_png(folder / f"step_{self.global_step:07d}.png", sheet, overwrite=True)
        for logger in self.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):  # TensorBoard
                experiment.add_image(
                    "val/reconstruction", np.ascontiguousarray(sheet), self.global_step, dataformats="HWC"
                )

    @staticmethod
    def write_predictions(outputs: list[dict], folder: Path, fps: float = 8.0) -> Path:
        """Write predict outputs: one mp4 per clip (input | reconstruction), a contact sheet, ``predictions.json``."""
        folder.mkdir(parents=True, exist_ok=False)
        rows, labels, records = [], [], []
        for batch in outputs:
            for inp, rec, score, text in zip(
                batch["input"], batch["recon"], batch["psnr"], batch["caption"], strict=True
            ):
                name = f"clip_{len(records):05d}.mp4"
                write_video(folder / name, np.concatenate([inp, rec], axis=2), fps)
                records.append({"file": name, "caption": text, "psnr": round(float(score), 3)})
                if len(rows) < 16:  # the sheet stays readable
                    rows += [inp, rec]
                    labels += [text or name, f"reconstruction: {score:.1f} dB"]
        if rows:
            save_png(folder / "reconstructions.png", contact_sheet(rows, labels=labels, scale=2))
        mean = float(np.mean([r["psnr"] for r in records])) if records else float("nan")
        (folder / "predictions.json").write_text(json.dumps({"mean_psnr": mean, "clips": records}, indent=1))
        return folder
