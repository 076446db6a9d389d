"""The EMA weights (what validation, test and export use) are the warm-up average of the network's
weights after each optimizer step, the last step included."""

from __future__ import annotations

import functools

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ferops.training.module import FERClassifier

STEPS, DECAY = 4, 0.5  # the warm-up min(decay, (1 + n) / (10 + n)) stays below DECAY for n < 9


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.BatchNorm1d(6), nn.ReLU())
        self.head = nn.Linear(6, 7)

    def forward(self, x):
        return self.head(self.backbone(x))


class Batches(Dataset):
    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, 1, 4, 4), generator=g).float()
        self.labels = torch.randint(0, 7, (n,), generator=g)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i]}


class RecordWeights(L.Callback):
    """The raw network's weights after every optimizer step."""

    def __init__(self):
        self.after_step: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after_step.append({k: v.detach().clone() for k, v in pl_module.net.state_dict().items()})


def test_ema_is_the_warmup_average_of_the_weights_after_each_step(tmp_path):
    torch.manual_seed(0)
    net = TinyNet()
    init = {k: v.detach().clone() for k, v in net.state_dict().items()}
    module = FERClassifier(
        net=net,
        preprocess=nn.Identity(),
        loss=nn.CrossEntropyLoss(),
        optimizer=functools.partial(torch.optim.SGD, lr=0.5),
        class_names=[str(i) for i in range(7)],
        ema_decay=DECAY,
        warmup_epochs=0.0,
        seed=0,
    )
    record = RecordWeights()
    trainer = L.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[record],
    )
    trainer.fit(module, DataLoader(Batches(8 * STEPS), batch_size=8))
    assert len(record.after_step) == STEPS

    params = dict(net.named_parameters())

    def average(steps: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        avg = {k: v.clone() for k, v in init.items()}
        for n, weights in enumerate(steps, start=1):
            d = min(DECAY, (1 + n) / (10 + n))
            for k, w in weights.items():
                avg[k] = d * avg[k] + (1 - d) * w if k in params else w.clone()  # BN statistics: copied
        return avg

    expected = average(record.after_step)
    got = module.eval_net.state_dict()
    assert module.eval_net is module.ema.module
    for k, v in expected.items():
        torch.testing.assert_close(got[k], v, msg=k)
    # the last step counts: the average one step behind (the old update point) is another one
    lagging = average([init, *record.after_step[:-1]])
    assert not torch.allclose(got["head.weight"], lagging["head.weight"])
    assert all(not p.requires_grad for p in module.ema.parameters())
