"""Knowledge distillation: the loss, the teacher term in the training step, and a run from teacher checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from checkpoints import train_tiny_checkpoint
from hydra.utils import instantiate

from confutil import TINY, compose_config
from ferops.models.checkpoint import load_deployable
from ferops.training.distill import DistillConfig, Distiller, TeacherEnsemble, distillation_loss
from ferops.training.run import build_module


def test_distillation_loss_is_hintons():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 7), torch.randn(8, 7)
    task = torch.tensor(1.7)
    t = 3.0
    probs = F.softmax(teacher / t, -1)
    assert distillation_loss(student, probs, task, t, alpha=0.0) == task
    kl = (probs * (probs.log() - F.log_softmax(student / t, -1))).sum(-1).mean()
    torch.testing.assert_close(distillation_loss(student, probs, task, t, alpha=0.4), 0.4 * t**2 * kl + 0.6 * task)
    # no soft term when the student already matches the teacher
    torch.testing.assert_close(distillation_loss(teacher, probs, torch.tensor(0.0), t, alpha=1.0), torch.tensor(0.0))


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    return train_tiny_checkpoint(tmp_path_factory.mktemp("teacher"), [])


def test_the_training_step_adds_the_teachers_term_on_the_same_batch(teacher_ckpt):
    """With a distiller the step's loss is alpha T^2 KL(teacher_T || student_T) + (1 - alpha) task loss,
    the teacher (two copies averaged) scoring exactly the images the student scored."""
    cfg = compose_config(["experiment=smoke", *TINY, "optim.mixup.prob=0"])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    batch = next(iter(datamodule.train_dataloader()))
    plain = module.training_step(batch, 0)

    teachers = [load_deployable(teacher_ckpt)[0] for _ in range(2)]
    config = DistillConfig(teachers=("a", "b"), temperature=2.0, alpha=0.7)
    module.distiller = Distiller(TeacherEnsemble(teachers), config)
    module.distiller.follow(module.net)
    distilled = module.training_step(batch, 0)

    with torch.no_grad():
        images = batch["image"].float()
        probs = F.softmax(teachers[0](images) / 2.0, -1)  # both copies agree: their mean is either
        module._reseed_step()  # the step's dropout draws, as training_step makes them
        logits = module(images)
    expected = distillation_loss(logits, probs, plain.detach(), 2.0, 0.7)
    torch.testing.assert_close(distilled.detach(), expected, rtol=1e-4, atol=1e-5)
    assert not torch.isclose(distilled, plain)
    assert not module.distiller.teacher.training and not any(p.requires_grad for p in module.distiller.teacher.parameters())


def test_teachers_follow_the_students_memory_format(teacher_ckpt):
    student = load_deployable(teacher_ckpt)[0].to(memory_format=torch.channels_last)
    distiller = Distiller(TeacherEnsemble([load_deployable(teacher_ckpt)[0]]), DistillConfig(teachers=("a",)))
    distiller.follow(student)
    convs = [p for p in distiller.teacher.parameters() if p.ndim == 4 and p.shape[1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs)
    distiller.follow(student.to(memory_format=torch.contiguous_format))
    assert all(p.is_contiguous() for p in convs)


def test_a_run_distils_from_teacher_checkpoints_without_keeping_them(tmp_path, teacher_ckpt):
    student = train_tiny_checkpoint(
        tmp_path / "student", [f"distill.teachers=[{teacher_ckpt},{teacher_ckpt}]", "distill.alpha=0.9"]
    )
    _, meta = load_deployable(student)
    assert [t["path"] for t in meta["distill"]["teachers"]] == [str(teacher_ckpt)] * 2
    assert meta["distill"]["alpha"] == 0.9 and meta["config"]["distill"]["temperature"] == 4.0
    state = torch.load(student, map_location="cpu", weights_only=True)["state_dict"]
    teacher_state = torch.load(teacher_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert state.keys() == teacher_state.keys()  # the student's own weights only


def test_teachers_of_other_classes_or_other_data_are_refused(tmp_path, teacher_ckpt):
    with pytest.raises(ValueError, match=r"predicts \[.*\], this run's classes are"):
        train_tiny_checkpoint(tmp_path / "a", [f"distill.teachers=[{teacher_ckpt}]", "data/class_map=fer5"])
    with pytest.raises(ValueError, match="trained on other data or another split"):
        train_tiny_checkpoint(tmp_path / "b", [f"distill.teachers=[{teacher_ckpt}]", "data.source.n_per_class=21"])
    with pytest.raises(ValueError, match=r"unknown distill option\(s\): teacher"):
        DistillConfig.from_mapping({"teacher": "x.ckpt"})
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        DistillConfig.from_mapping({"teachers": ["x.ckpt"], "alpha": 1.5})
