"""`ClipDataModule`: the one LightningDataModule, wrapping whichever datasets the config names.

Datasets (Shapes, video folders, image folders, token shards) all yield dicts of tensors, strings
and ints, so torch's default collate batches them and one datamodule serves every source.
"""

from __future__ import annotations

import itertools

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ClipDataModule(L.LightningDataModule):
    """Train/val/test/predict loaders over given datasets.

    Args:
        train: dataset for ``fit``.
        val: held-out dataset for validation; also used for ``test``/``predict`` when those are not given.
        test: dataset for ``test``.
        predict: dataset for ``predict``.
        batch_size: clips per batch.
        num_workers: loader worker processes (0 = load in the main process).
        seed: seeds the training shuffle, so two runs see the same order.
    """

    def __init__(
        self,
        train: Dataset | None = None,
        val: Dataset | None = None,
        test: Dataset | None = None,
        predict: Dataset | None = None,
        *,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.train, self.val, self.test, self.predict = train, val, test, predict
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed

    def _loader(self, dataset: Dataset | None, split: str, *, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise ValueError(f"the data config has no {split!r} dataset; set data.{split} (see conf/data/)")
        sampler = None
        if shuffle:
            # The order of epoch e is a function of (seed, e) alone, split across ranks here (Lightning
            # leaves a DistributedSampler as it is), so a restarted run can find its place again.
            trainer = self.trainer
            replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
            sampler = _ResumableSampler(dataset, num_replicas=replicas, rank=rank, shuffle=True, seed=self.seed)
        return (ResumableDataLoader if shuffle else DataLoader)(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=shuffle and len(dataset) >= self.batch_size,
            num_workers=self.num_workers,
            # Workers copy the dataset when an epoch's iteration starts: a dataset that draws new clips
            # each epoch (set_epoch) needs fresh copies, persistent workers would keep epoch 0's.
            persistent_workers=self.num_workers > 0 and not (shuffle and hasattr(dataset, "set_epoch")),
            # Worker seeds come from this generator, not the global one: making a loader must not move
            # the global random state (a resumed run restores it from the checkpoint).
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> ResumableDataLoader:
        return self._loader(self.train, "train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, "val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test if self.test is not None else self.val, "test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict if self.predict is not None else self.val, "predict", shuffle=False)


class _ResumableSampler(DistributedSampler):
    """A ``DistributedSampler`` (order from ``seed + epoch``) that can start part-way through an epoch."""

    start = 0  # indices of this rank to pass over on the next iteration only

    def __iter__(self):
        start, self.start = self.start, 0
        return itertools.islice(super().__iter__(), start, None)


class ResumableDataLoader(DataLoader):
    """The training loader: its place in the epoch is saved in every Lightning checkpoint.

    Lightning stores ``state_dict()`` (the batches already delivered this epoch) with the checkpoint and
    calls ``load_state_dict`` on restart; the first iteration after that passes over those batches'
    indices without loading them, so a run stopped mid-epoch and resumed sees the same batches as one
    that never stopped.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._delivered = 0  # batches handed out in the current epoch
        self._resume_at = 0  # batches to pass over on the next iteration

    def __iter__(self):
        start, self._resume_at = self._resume_at, 0
        if isinstance(self.sampler, _ResumableSampler):
            self.sampler.start = start * self.batch_size
        else:  # a sampler we did not make (e.g. replaced by Lightning): start the epoch from its beginning
            start = 0
        self._delivered = start
        # Video and image folders with crop="random" draw new clips and squares per epoch; Lightning
        # tells only the sampler which epoch it is, so pass it on (before workers copy the dataset).
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(int(getattr(self.sampler, "epoch", 0)))
        for batch in super().__iter__():
            self._delivered += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        epoch = getattr(self.sampler, "epoch", 0)
        return {"epoch": int(epoch), "batches": self._delivered, "batch_size": int(self.batch_size or 0)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        batches = int(state.get("batches", 0))
        if batches and state.get("batch_size") != self.batch_size:
            rank_zero_warn(
                f"resuming with data.batch_size={self.batch_size}, the checkpoint's was {state.get('batch_size')}: "
                "its place in the epoch does not carry over, so this epoch starts from its first batch"
            )
            batches = 0
        self._resume_at = batches if batches < len(self) else 0  # a finished epoch: the next starts afresh
