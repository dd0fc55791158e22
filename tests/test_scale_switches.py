"""Execution switches for GPU scale: gradient checkpointing, torch.compile, bf16-mixed; and the trainer presets.

Checkpointing and the wiring of compile run on the CPU. Training with bf16-mixed, compile and
checkpointing together needs a CUDA GPU and is skipped without one.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tokgen.cli import compose_config, run
from tokgen.tokenizer.lit import TokenizerLit
from tokgen.transformer.lit import TransformerLit

CUDA = torch.cuda.is_available()
NO_GPU = (
    "needs a CUDA GPU: bf16-mixed with torch.compile is the GPU configuration (trainer=gpu); on this CPU-only "
    "machine inductor would compile C++ for minutes and bf16 autocast is emulated"
)

TRANSFORMER = ["experiment=transformer_tiny", "tokenize.out=/unused", "tokenize.tokenizer=null"]


def _lit(overrides: list[str]):
    torch.manual_seed(0)
    return instantiate(compose_config(overrides).model)


def _tokenizer_grads(lit: TokenizerLit, video: torch.Tensor) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)  # the quantizer's dead-code restarts draw random codes: same draws in both runs
    out = lit.model(video)
    (torch.nn.functional.l1_loss(out.recon, video) + out.quantizer_loss).backward()
    return {name: p.grad.clone() for name, p in lit.model.named_parameters() if p.grad is not None}


def test_tokenizer_checkpointing_gives_the_same_gradients() -> None:
    plain = _lit(["experiment=tokenizer_tiny"])
    checkpointed = copy.deepcopy(plain)
    checkpointed.train_config.checkpointing = True
    checkpointed.configure_model()
    blocks = [m for m in checkpointed.model.modules() if type(m).__name__ == "Transformer"]
    assert blocks and all(m.checkpointing for m in blocks)
    video = torch.rand(2, 3, 9, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    calls = {"plain": 0, "checkpointed": 0}
    for name, lit in (("plain", plain), ("checkpointed", checkpointed)):
        block = next(m for m in lit.model.modules() if type(m).__name__ == "Block")
        block.register_forward_pre_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    want, got = _tokenizer_grads(plain, video), _tokenizer_grads(checkpointed, video)
    assert calls == {"plain": 1, "checkpointed": 2}  # the block really ran again in backward
    assert want.keys() == got.keys() and len(want) > 10
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-6, msg=name)


def test_transformer_checkpointing_gives_the_same_gradients_and_keeps_parameter_names() -> None:
    plain = _lit(TRANSFORMER)
    checkpointed = copy.deepcopy(plain)
    checkpointed.train_config.checkpointing = True
    checkpointed.configure_model()
    checkpointed.configure_model()  # Lightning may call the hook again: wrapping is idempotent
    wrapped = [m for m in checkpointed.model.modules() if type(m).__name__ == "CheckpointWrapper"]
    assert len(wrapped) == 3  # self-attention, cross-attention, feed-forward of the one layer
    assert list(checkpointed.state_dict()) == list(plain.state_dict())  # checkpoints stay interchangeable
    plain.load_state_dict(checkpointed.state_dict())

    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 65, (3, 5, 4, 4), generator=g)  # 64 = [MASK]
    text, mask = torch.randn(3, 6, 32, generator=g), torch.ones(3, 6, dtype=torch.bool)
    target = torch.randint(0, 64, (3, 5, 4, 4), generator=g)
    grads = []
    for lit in (plain, checkpointed):
        logits = lit.model(codes, text, mask)
        torch.nn.functional.cross_entropy(logits.flatten(0, 3), target.flatten()).backward()
        # named_parameters (unlike state_dict) shows the wrapper: compare by the wrapped module's names
        params = lit.model.named_parameters()
        grads.append(
            {n.replace("._checkpoint_wrapped_module", ""): p.grad.clone() for n, p in params if p.grad is not None}
        )
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize("overrides", [["experiment=tokenizer_tiny"], TRANSFORMER], ids=["tokenizer", "transformer"])
def test_compile_switch_compiles_in_place(overrides: list[str]) -> None:
    lit = _lit([*overrides, "model.train.compile=true", "model.train.checkpointing=true"])
    keys = list(lit.state_dict())
    assert lit.model._compiled_call_impl is None
    lit.configure_model()
    # Compiled lazily on the first call; the module and its parameter names stay as they were. The
    # tokenizer compiles each transformer block (regional), the transformer the whole model.
    compiled = [m for m in lit.model.modules() if m._compiled_call_impl is not None]
    if "experiment=tokenizer_tiny" in overrides:
        assert compiled and all(type(m).__name__ == "Block" for m in compiled)
    else:
        assert compiled == [lit.model]
    assert list(lit.state_dict()) == keys


def test_trainer_presets_configure_lightning_strategies() -> None:
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    ddp = compose_config(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"])
    trainer = instantiate(ddp.trainer, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.num_devices == 2
    assert compose_config(["trainer=ddp"]).trainer.precision == "bf16-mixed"
    # FSDP needs GPUs to build a Trainer; its strategy (and wrap policy) is checked on its own.
    fsdp = instantiate(compose_config(["trainer=fsdp"]).trainer.strategy)
    assert isinstance(fsdp, FSDPStrategy)
    wrapped = {c.__name__ for c in fsdp.kwargs["auto_wrap_policy"]._module_classes}
    assert wrapped == {"Block", "Attention", "FeedForward"}


@pytest.mark.skipif(not CUDA, reason=NO_GPU)
def test_bf16_compile_and_checkpointing_compose_on_gpu(tmp_path: Path) -> None:
    switches = ["trainer=gpu", "model.train.compile=true", "model.train.checkpointing=true", "~callbacks.progress"]
    folder = run(
        compose_config(["experiment=tokenizer_tiny", *switches, "trainer.max_steps=3", f"run_dir={tmp_path / 'tok'}"]),
        "fit",
    )
    assert (folder / "checkpoints" / "last.ckpt").is_file()

    import lightning as L

    from tokgen.data.datamodule import ClipDataModule

    cfg = compose_config([*TRANSFORMER, *switches])
    lit: TransformerLit = instantiate(cfg.model)
    g = torch.Generator().manual_seed(0)
    clips = [{"codes": torch.randint(0, 64, (5, 4, 4), generator=g), "caption": "a red circle moves up"}] * 8
    trainer = instantiate(
        OmegaConf.merge(cfg.trainer, {"max_steps": 3, "default_root_dir": str(tmp_path / "tf")}),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    assert isinstance(trainer, L.Trainer) and trainer.precision == "bf16-mixed"
    trainer.fit(lit, datamodule=ClipDataModule(train=clips, val=clips[:4], batch_size=4))
    assert trainer.global_step == 3 and torch.isfinite(torch.tensor(trainer.callback_metrics["train/loss"].item()))


@pytest.mark.parametrize("native", [True, False])
def test_precision_auto_picks_bf16_only_where_the_cpu_does_it_natively(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    from tokgen import precision

    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    expected = "bf16-mixed" if native else "32-true"
    assert precision.resolve_precision("auto", "auto") == expected
    assert precision.resolve_precision("auto", "cpu") == expected
    assert precision.resolve_precision("auto", "mps") == "32-true"
    assert precision.resolve_precision("16-mixed", "cpu") == "16-mixed"  # anything else passes through
    for preset in ("tokenizer_small_shapes", "transformer_small_shapes"):
        assert compose_config([f"experiment={preset}"]).trainer.precision == "auto"
    note = precision.slow_cpu_note()
    assert (note is None) if native else ("no native bf16" in note and "fp32" in note)
    if not native:  # the longer demo it suggests is a command the CLI takes
        from tokgen.cli import parse_options
        from tokgen.commands import DemoOptions

        verb, *args = note.split("`")[1].split()[1:]
        assert verb == "demo" and parse_options(DemoOptions, args, verb).tokenizer_minutes == 15


def test_precision_auto_trains_in_bf16_on_a_cpu_and_records_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokgen import precision
    from tokgen.tokenizer import blocks as tokenizer_blocks

    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    dtypes, attend = set(), tokenizer_blocks.attend
    monkeypatch.setattr(tokenizer_blocks, "attend", lambda q, *a, **kw: dtypes.add(q.dtype) or attend(q, *a, **kw))
    overrides = ["experiment=tokenizer_tiny", "trainer.precision=auto", "trainer.max_steps=2", "~callbacks.progress"]
    folder = run(compose_config([*overrides, f"run_dir={tmp_path / 'run'}"]), "fit")
    assert OmegaConf.load(folder / "config.yaml").trainer.precision == "bf16-mixed"
    state = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] >= 2 and torch.bfloat16 in dtypes  # the steps ran under bf16 autocast
    weights = [v for k, v in state["state_dict"].items() if k.startswith("model.") and v.is_floating_point()]
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights)  # fp32 master weights


@pytest.mark.parametrize(("accelerator", "applied"), [("auto", True), ("gpu", True), ("cpu", False)])
def test_matmul_precision_applies_only_to_gpu_training(
    monkeypatch: pytest.MonkeyPatch, accelerator: str, applied: bool
) -> None:
    from tokgen import cli

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch, "set_float32_matmul_precision", calls.append)
    cfg = compose_config([f"trainer.accelerator={accelerator}"])
    assert cfg.matmul_precision == "high"
    cli._set_matmul_precision(cfg)
    assert calls == (["high"] if applied else [])
