"""Knowledge distillation: a student trained on its task loss plus the softened predictions of one
teacher checkpoint or of several averaged (Hinton et al. 2015).

    loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * task loss

The teacher sees exactly the batch the student sees, after batch augmentation and MixUp/CutMix,
so its targets are computed on the fly, one teacher forward per step (about a third of a student
step per teacher of the same size). A cache of teacher logits would only be valid for un-augmented
inputs, and every ferops recipe augments every batch.

Teachers are opened as untrusted, through `ferops.models.checkpoint.load_deployable`, and must
predict the student's classes from the same input size. A teacher trained on other data or
another split may have seen this run's val or test rows; that is refused unless
``distill.allow_other_data=true``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ferops.typed_config import build_dataclass


@dataclass
class DistillConfig:
    """The ``distill`` config group (unknown keys are errors: `ferops.typed_config.build_dataclass`)."""

    teachers: Sequence[str] = ()
    temperature: float = 4.0
    alpha: float = 0.5
    allow_other_data: bool = False

    def __post_init__(self) -> None:
        self.teachers = (self.teachers,) if isinstance(self.teachers, str) else tuple(str(t) for t in self.teachers or ())
        if self.temperature <= 0:
            raise ValueError(f"distill.temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"distill.alpha must be in [0, 1], got {self.alpha}")

    @property
    def enabled(self) -> bool:
        return bool(self.teachers)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> DistillConfig:
        return build_dataclass(cls, dict(cfg or {}), "distill")


class TeacherEnsemble(nn.Module):
    """Deployable teachers (raw pixels in, logits out); `soft_targets` averages their tempered
    probabilities. Always in eval mode and without gradients: batch norms use their running
    statistics and dropout is off, whatever mode the student is in."""

    def __init__(self, teachers: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(teachers).requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> TeacherEnsemble:
        return super().train(False)

    @torch.no_grad()
    def soft_targets(self, images: torch.Tensor, temperature: float) -> torch.Tensor:
        """float [B, 1, H, W] raw pixels -> mean of softmax(logits / T) over the teachers, [B, C]."""
        probs = [F.softmax(m(images).float() / temperature, dim=-1) for m in self.members]
        return torch.stack(probs).mean(0)


def distillation_loss(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, task_loss: torch.Tensor, temperature: float, alpha: float
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * task_loss. T^2 keeps the soft term's
    gradient on the scale of the hard one's when T changes (Hinton et al.)."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = F.kl_div(log_student, teacher_probs, reduction="batchmean")
    return alpha * temperature**2 * kl + (1.0 - alpha) * task_loss


@dataclass
class Distiller:
    """What the LightningModule needs during training. Not an nn.Module attribute of it (see
    `FERClassifier`), so the teachers' weights never enter the student's checkpoint."""

    teacher: TeacherEnsemble
    config: DistillConfig
    record: dict[str, Any] = field(default_factory=dict)

    def follow(self, student: nn.Module) -> None:
        """Put the teachers on the student's device and memory format (channels_last: about twice the
        forward speed with bf16 on CPU). A 1-input-channel conv weight is both contiguous and
        channels_last, so the format is read off the first weight that tells them apart."""
        weights = [p for p in student.parameters() if p.ndim == 4]
        nhwc = any(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in weights)
        self.teacher.to(next(student.parameters()).device)
        fmt = torch.channels_last if nhwc else torch.contiguous_format
        self.teacher.to(memory_format=fmt)  # type: ignore[call-overload]  # nn.Module.to takes it; the stubs lack it

    def loss(self, student_logits: torch.Tensor, images: torch.Tensor, task_loss: torch.Tensor) -> torch.Tensor:
        targets = self.teacher.soft_targets(images, self.config.temperature)
        return distillation_loss(student_logits, targets, task_loss, self.config.temperature, self.config.alpha)


def _input_shape(pre: Mapping[str, Any]) -> tuple[int, int]:
    return int(pre.get("input_size", 48)), int(pre.get("in_chans", 1))


def load_teachers(
    config: DistillConfig, class_names: Sequence[str], preprocessing: Mapping[str, Any], data_fingerprint: str
) -> Distiller:
    """Open each teacher checkpoint (as untrusted) and check it can teach this student."""
    from ferops.models.checkpoint import load_deployable

    members, record = [], []
    for path in config.teachers:
        model, meta = load_deployable(path)
        theirs = list(meta["class_names"])
        if theirs != list(class_names):
            raise ValueError(f"distill.teachers: {path} predicts {theirs}, this run's classes are {list(class_names)}")
        if _input_shape(meta["preprocessing"]) != _input_shape(preprocessing):
            raise ValueError(
                f"distill.teachers: {path} takes (input_size, in_chans) {_input_shape(meta['preprocessing'])}, "
                f"this run's images are {_input_shape(preprocessing)}"
            )
        if meta.get("data_fingerprint") != data_fingerprint and not config.allow_other_data:
            raise ValueError(
                f"distill.teachers: {path} was trained on other data or another split (data fingerprint "
                f"{meta.get('data_fingerprint')}, this run's {data_fingerprint}): it may have seen this run's val or "
                "test rows. Train the teacher on this run's data, or set distill.allow_other_data=true"
            )
        members.append(model)
        record.append({"path": str(path), "model_name": meta.get("model_name"), "data_fingerprint": meta.get("data_fingerprint")})
    meta = {
        "teachers": record,
        "temperature": config.temperature,
        "alpha": config.alpha,
        "targets": "on the fly, on the augmented and mixed batch",
    }
    return Distiller(TeacherEnsemble(members), config, meta)
