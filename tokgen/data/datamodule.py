"""`ClipDataModule`: the one LightningDataModule, wrapping whichever datasets the config names.

Datasets (Shapes, video folders, image folders, token shards) all yield dicts of tensors, strings
and ints, so torch's default collate batches them and one datamodule serves every source.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset


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
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(dataset) >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, "train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, "val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test if self.test is not None else self.val, "test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict if self.predict is not None else self.val, "predict", shuffle=False)
