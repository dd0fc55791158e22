"""`TransformerLit`: trains the masked transformer on token shards (codes + text), MaskGIT style.

Each step masks a continuous, schedule-drawn fraction of every clip's codes and learns to predict
them (cross-entropy on masked positions only). Text is replaced by the null prompt with probability
``text_dropout`` so classifier-free guidance is really trained; with probability
``continuation_prob`` some latent frames stay visible, in the patterns sampling uses: a prefix (story
windows, continuation), the first frame alone (image-to-video), a prefix and a suffix (interpolation).

The checkpoint holds the transformer (and a learned text encoder's weights, if one is used), plain
config dicts, and the tokenizer's folder path; a frozen pretrained text encoder is rebuilt from its
config, never saved.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from tokgen.io.contact_sheet import contact_sheet, save_png
from tokgen.io.samples import write_samples
from tokgen.lr_schedule import lr_factor, run_progress
from tokgen.metrics.adherence import score_clips
from tokgen.text import TextEncoderConfig, build_text_encoder
from tokgen.text.embedding import TextEmbedding
from tokgen.tokenizer.config import TokenizerConfig
from tokgen.transformer.config import (
    DEFAULT_FIRST_FRAME,
    DEFAULT_TEMPERATURE,
    TransformerConfig,
    TransformerTrainConfig,
)
from tokgen.transformer.masking import random_mask, training_mask
from tokgen.transformer.model import MaskedTransformer, masked_token_loss


def _as(cls: type, value: object) -> object:
    return value if isinstance(value, cls) else cls.from_dict(dict(value or {}))


def _text_config(value: TextEncoderConfig | dict | None) -> TextEncoderConfig:
    return value if isinstance(value, TextEncoderConfig) else TextEncoderConfig(**dict(value or {}))


class TransformerLit(L.LightningModule):
    """Lightning wrapper: ``fit`` / ``validate`` / ``test`` / ``predict`` of the masked transformer.

    Args:
        transformer: architecture (``TransformerConfig`` or its dict).
        train: optimisation, masking and conditioning (``TransformerTrainConfig`` or its dict).
        text: the text encoder (``TextEncoderConfig`` or its dict).
        tokenizer: folder of the exported tokenizer whose codes the shards hold; used to decode
            validation samples and checked against the transformer's vocabulary. None: no samples.
    """

    def __init__(
        self,
        transformer: TransformerConfig | dict,
        train: TransformerTrainConfig | dict | None = None,
        text: TextEncoderConfig | dict | None = None,
        tokenizer: str | None = None,
        codes_shape: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.transformer_config: TransformerConfig = _as(TransformerConfig, transformer)
        self.train_config: TransformerTrainConfig = _as(TransformerTrainConfig, train)
        # Fraction of the run done, for the rate's cooldown (on_train_batch_start); None until the first
        # batch of this process, so a resumed DDP run takes rank 0's time at once.
        self._progress: float | None = None
        self.text_config = _text_config(text)
        self.tokenizer_path = str(Path(tokenizer).resolve()) if tokenizer else None
        self.save_hyperparameters(
            {
                "transformer": self.transformer_config.to_dict(),
                "train": asdict(self.train_config),
                "text": asdict(self.text_config),
                "tokenizer": self.tokenizer_path,
                "codes_shape": list(codes_shape) if codes_shape else None,
            }
        )
        self.model = MaskedTransformer(self.transformer_config)
        encoder = build_text_encoder(self.text_config)
        if encoder.dim != self.transformer_config.text_dim:
            raise ValueError(
                f"text encoder width {encoder.dim} ({self.text_config.kind}) does not match transformer "
                f"text_dim {self.transformer_config.text_dim}; set transformer.text_dim={encoder.dim}"
            )
        if self.text_config.kind == "learned":
            self.text_encoder = encoder  # trained with the transformer: a registered submodule
        else:
            # Frozen and rebuilt from its config: kept out of the module tree (and the checkpoint).
            object.__setattr__(self, "_frozen_text", encoder)
        self._tokenizer = None

    # ------------------------------------------------------------------------------ pieces
    @property
    def text(self):
        return self.text_encoder if self.text_config.kind == "learned" else self._frozen_text

    def tokenizer(self):
        """The exported tokenizer (loaded on first use), or None without a tokenizer path."""
        if self._tokenizer is None and self.tokenizer_path:
            from tokgen.tokenizer.model import VideoTokenizer

            tok = VideoTokenizer.from_pretrained(self.tokenizer_path).eval().to(self.device)
            object.__setattr__(self, "_tokenizer", tok)  # not a submodule: never trained or saved here
        return self._tokenizer

    def configure_model(self) -> None:
        # Execution switches, applied in place so parameter names (and checkpoints) stay as they are.
        if self.train_config.checkpointing:
            self.model.enable_checkpointing()
        if self.train_config.compile:
            self.model.compile()
            # The training loss compiled with the model into one graph: the mask weights the loss
            # instead of selecting rows, so no host sync and a fused log-softmax (H200, base, batch 32:
            # 67 -> 62 ms a step; see tools/results/README.md).
            object.__setattr__(self, "_compiled_loss", torch.compile(self._masked_loss))

    def _masked_loss(self, inputs: Tensor, text: Tensor, text_mask: Tensor, codes: Tensor, mask: Tensor):
        logits = self.model(inputs, text, text_mask)
        return masked_token_loss(logits, codes, mask, label_smoothing=self.train_config.label_smoothing)

    def on_fit_start(self) -> None:
        self.text.to(self.device)
        train = getattr(self.trainer.datamodule, "train", None)
        if self.hparams.codes_shape is None and hasattr(train, "codes_shape"):
            self.hparams.codes_shape = list(train.codes_shape)  # saved with every checkpoint from here on
        tokenizer = self.tokenizer()
        if tokenizer is not None and self.hparams.codes_shape:
            config = tokenizer.config
            self.model.check_tokenizer(config.codebook_size, tuple(self.hparams.codes_shape), config.code_levels)
        index = getattr(train, "index", None)  # token shards record what made them: check it with no tokenizer too
        if isinstance(index, dict) and "codebook_size" in index:
            where = getattr(train, "root", "the token shards")
            recorded = (index.get("sources") or {}).get("tokenizer_config")
            levels = None  # unknown unless the shards recorded a tokenizer config this version reads
            if isinstance(recorded, dict):
                with contextlib.suppress(TypeError, ValueError):
                    levels = TokenizerConfig.from_dict(recorded).code_levels
            try:
                self.model.check_tokenizer(int(index["codebook_size"]), tuple(index["codes_shape"]), levels)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
            width = index.get("text_dim")
            if self.text_config.kind != "learned" and width not in (None, self.transformer_config.text_dim):
                raise ValueError(
                    f"{where}: text embeddings are {width} wide, the transformer's text_dim is "
                    f"{self.transformer_config.text_dim}: the shards were made with another text encoder"
                )

    def on_validation_start(self) -> None:
        self.text.to(self.device)

    on_test_start = on_predict_start = on_validation_start

    def _generator(self, salt: int) -> torch.Generator:
        # Masks come from a generator keyed by (step, salt): a resumed run draws the same masks.
        g = torch.Generator(device=self.device)
        g.manual_seed(int(self.global_step) * 1_000_003 + salt)
        return g

    def _embed(self, batch: dict) -> TextEmbedding:
        if "text_emb" in batch and self.text_config.kind != "learned":
            return TextEmbedding(batch["text_emb"].float(), batch["text_mask"].bool())
        return self.text.encode(list(batch["caption"]))

    def _with_null(self, text: TextEmbedding, drop: Tensor) -> TextEmbedding:
        """Rows where ``drop`` is True get the null prompt (the text encoder's embedding of "")."""
        if not bool(drop.any()):
            return text
        null = self.text.encode([""])
        rows = text.rows()
        null_row = null.rows()[0]
        return TextEmbedding.from_rows([null_row if d else r for r, d in zip(rows, drop.tolist(), strict=True)])

    def masked_batch(self, codes: Tensor, generator: torch.Generator, context: Tensor | None = None) -> Tensor:
        """The training mask ``(b, t, h, w)`` bool (see ``masking.training_mask``; ``context``: given frames)."""
        tc = self.train_config
        shares = dict(first_frame_share=tc.first_frame_share, interpolation_share=tc.interpolation_share)
        return training_mask(codes, generator, tc.mask_schedule, tc.continuation_prob, context=context, **shares)

    # ----------------------------------------------------------------------------- training
    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        self._progress = run_progress(self.trainer, self._progress)

    def image_rows(self, batch: int, t: int) -> int:
        """How many of a training batch's clips (its last rows) train as images (``train.image_share``).

        Zero for image clips (``t == 1``) or a share of 0; at least one video is always left.
        """
        if t < 2 or self.train_config.image_share <= 0:
            return 0
        return min(round(batch * self.train_config.image_share), batch - 1)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        codes = batch["codes"]
        g = self._generator(salt=1)
        videos = codes.shape[0] - self.image_rows(*codes.shape[:2])
        context = batch.get("context_frames")
        parts = [(codes[:videos], self.masked_batch(codes[:videos], g, None if context is None else context[:videos]))]
        if videos < codes.shape[0]:  # image rows: the first latent frame alone, a one-frame grid
            frames = codes[videos:, :1]
            parts.append((frames, self.masked_batch(frames, g)))
        drop = (
            torch.rand(codes.shape[0], generator=g, device=g.device).to(codes.device) < self.train_config.text_dropout
        )
        loss, accuracy = self._parts_loss(parts, self._with_null(self._embed(batch), drop))
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite transformer loss at step {self.global_step}; the last good checkpoint is kept"
            )
        self.log_dict({"train/loss": loss, "train/masked_acc": accuracy, "train/text_dropped": drop.float().mean()})
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        return loss

    def _parts_loss(self, parts: list[tuple[Tensor, Tensor]], text: TextEmbedding) -> tuple[Tensor, Tensor]:
        """Cross-entropy and accuracy over every masked position of ``(codes, mask)`` parts whose rows
        follow each other in ``text`` (videos, then images): one forward per part, one mean overall."""
        compiled = self.__dict__.get("_compiled_loss")
        mask_id, row = self.transformer_config.mask_id, 0
        sums, selected, targets = [], [], []
        for codes, mask in parts:
            rows = slice(row, row + codes.shape[0])
            row = rows.stop
            inputs = codes.masked_fill(mask, mask_id)
            if compiled is not None:
                loss, accuracy = compiled(inputs, text.emb[rows], text.mask[rows], codes, mask)
                count = mask.sum()
                sums.append((loss * count, accuracy * count, count))
            else:  # eagerly, the output head scores the masked positions alone (half the weighted form's work)
                selected.append(self.model(inputs, text.emb[rows], text.mask[rows], select=mask))
                targets.append(codes[mask])
        if compiled is not None:
            loss_sum, accuracy_sum, count = (torch.stack(x).sum() for x in zip(*sums, strict=True))
            count = count.clamp_min(1)
            return loss_sum / count, accuracy_sum / count
        selected, targets = torch.cat(selected), torch.cat(targets)
        loss = F.cross_entropy(selected, targets, label_smoothing=self.train_config.label_smoothing)
        return loss, (selected.argmax(-1) == targets).float().mean()

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip = gradient_clip_val or self.train_config.grad_clip
        if clip:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")

    def configure_optimizers(self):
        tc = self.train_config
        # No weight decay on norms, biases, position tables and embeddings (standard for transformers).
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 and "emb" not in name and "pos_" not in name else no_decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=tc.lr,
            betas=tc.betas,
        )
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, self._progress or 0.0, tc.warmup_steps, tc.cooldown)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --------------------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict, batch_idx: int, stage: str) -> None:
        codes = batch["codes"]
        g = torch.Generator(device=self.device).manual_seed(batch_idx)
        ratio = torch.full((codes.shape[0],), self.train_config.val_mask_ratio, device=codes.device)
        mask = random_mask(codes.shape, ratio, g).to(codes.device)
        text = self._embed(batch)
        logits = self.model(codes.masked_fill(mask, self.transformer_config.mask_id), text.emb, text.mask, select=mask)
        targets = codes[mask]
        self.log_dict(
            {
                f"{stage}/loss": F.cross_entropy(logits, targets),
                f"{stage}/masked_acc": (logits.argmax(-1) == targets).float().mean(),
            },
            prog_bar=stage == "val",
            batch_size=codes.shape[0],
        )
        if batch_idx == 0 and not self.trainer.sanity_checking and self.trainer.is_global_zero:
            self._sample_preview(list(batch["caption"])[: self.train_config.num_samples], codes.shape[1:], stage)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def sample_codes(
        self,
        prompts: list[str],
        codes_shape,
        *,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        known: Tensor | None = None,
        known_mask: Tensor | None = None,
    ) -> Tensor:
        """MaskGIT-sample codes ``(b, t, h, w)`` for ``prompts`` with this module's text encoder."""
        from tokgen.sampling.maskgit import sample_from_prompts

        tc = self.train_config
        return sample_from_prompts(
            self.model,
            self.text,
            prompts,
            tuple(codes_shape),
            mask_id=self.transformer_config.mask_id,
            seed=seed,
            steps=steps or tc.sample_steps,
            guidance=tc.sample_guidance if guidance is None else guidance,
            temperature=temperature,
            top_k=tc.sample_top_k,
            schedule=tc.mask_schedule,
            known=known,
            known_mask=known_mask,
            first_frame=DEFAULT_FIRST_FRAME,
        )

    def _sample_preview(self, prompts: list[str], codes_shape, stage: str) -> None:
        """Sample clips for the batch's captions, save a contact sheet, log Shapes adherence."""
        tokenizer = self.tokenizer()
        if tokenizer is None or not prompts:
            return
        was_training = self.model.training
        self.model.eval()
        frames = tokenizer.decode(self.sample_codes(prompts, tuple(codes_shape)))
        self.model.train(was_training)
        from tokgen.io.convert import tensor_to_frames

        clips = list(tensor_to_frames(frames))
        folder = Path(self.trainer.default_root_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        save_png(
            folder / f"{stage}_step_{self.global_step:07d}.png",
            contact_sheet(clips, labels=prompts, scale=2),
            overwrite=True,
        )
        try:  # only meaningful for Shapes captions; other captions simply don't parse
            scores = score_clips(clips, prompts)
            self.log(f"{stage}/adherence_all", float(scores["all"]), batch_size=len(prompts))
        except ValueError:
            pass

    # ------------------------------------------------------------------------------ predict
    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """Generate a clip per prompt: ``{"frames": uint8 (b, T, H, W, 3), "prompt", "seed"}``."""
        from tokgen.io.convert import tensor_to_frames

        tokenizer = self.tokenizer()
        if tokenizer is None:
            raise ValueError("predict needs the tokenizer: the checkpoint has no tokenizer path (model.tokenizer=DIR)")
        prompts, seeds = list(batch["prompt"]), [int(s) for s in batch["seed"]]
        if not self.hparams.codes_shape:
            raise ValueError("this checkpoint does not record the latent grid it was trained on")
        t, h, w = self.hparams.codes_shape
        num_frames = int(batch["num_frames"][0])
        shape = (tokenizer.config.latent_frames(num_frames) if num_frames else t, h, w)
        codes = torch.cat([self.sample_codes([p], shape, seed=s) for p, s in zip(prompts, seeds, strict=True)])
        return {"frames": tensor_to_frames(tokenizer.decode(codes)), "prompt": prompts, "seed": seeds}

    def write_predictions(self, outputs: list[dict], folder: Path, fps: float = 8.0) -> Path:
        """One mp4 + contact sheet per prompt and a ``predictions.json`` with seeds and settings."""
        clips = [frames for batch in outputs for frames in batch["frames"]]
        records = [
            {"prompt": p, "seed": s} for batch in outputs for p, s in zip(batch["prompt"], batch["seed"], strict=True)
        ]
        tc = self.train_config
        settings = dict(steps=tc.sample_steps, guidance=tc.sample_guidance, temperature=DEFAULT_TEMPERATURE)
        settings |= dict(top_k=tc.sample_top_k, first_frame=DEFAULT_FIRST_FRAME, schedule=tc.mask_schedule, fps=fps)
        return write_samples(folder, clips, records, settings, fps=fps, record="predictions.json")
