"""Mean teacher (Tarvainen & Valpola 2017), the DeepNoise recipe's consistency training.

The teacher is an exponential moving average of the student's weights. Each step, the student's
predictions on a mini-batch are pulled towards the teacher's predictions on the same cells seen
through different noise (another draw of the input jitter and flips): a consistency loss that
needs no labels, so it can also use unlabeled cells. Which cells count as unlabeled is
``mean_teacher.cells``: ``training`` (the training mini-batch itself, default) or ``all`` (an
extra mini-batch drawn from every plate, held-out batches included: transductive, since the
held-out images then shape the model). The teacher is the network that is scored and embedded.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

_STEPS = "mean_teacher.steps"  # the update count, stored beside the weights in a checkpoint


class MeanTeacher:
    """An EMA copy of a network and the student/teacher consistency loss."""

    def __init__(self, student: nn.Module, settings: dict):
        self.net = copy.deepcopy(student)
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)
        self.decay, self.weight = settings["decay"], settings["weight"]
        self.ramp_epochs, self.cells = settings["ramp_epochs"], settings["cells"]
        self.steps = 0

    def weight_at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """The consistency weight, rising linearly from 0 over the first ``ramp_epochs``."""
        if self.ramp_epochs <= 0:
            return self.weight
        progress = (epoch - 1 + step / steps_per_epoch) / self.ramp_epochs
        return self.weight * min(1.0, progress)

    def consistency(
        self, student_logits: torch.Tensor, teacher_input: torch.Tensor
    ) -> torch.Tensor:
        """Squared distance between the student's and the teacher's class probabilities,
        summed over classes and averaged over cells (gradient to the student only)."""
        self.net.train()  # batch statistics, as the student sees them
        with torch.no_grad():
            target = torch.softmax(self.net(teacher_input).float(), dim=1)
        return (torch.softmax(student_logits.float(), dim=1) - target).square().sum(1).mean()

    def update(self, student: nn.Module) -> None:
        """teacher = d x teacher + (1 - d) x student, d = min(decay, 1 - 1 / (steps + 1)) (the
        mean-teacher reference code's warm-up: early on the teacher follows the student instead
        of averaging in its random initialisation). BatchNorm's running statistics are the
        teacher's own (its forward passes in ``consistency`` update them): the student's would
        not match the averaged weights' activations."""
        self.steps += 1
        decay = min(self.decay, 1 - 1 / (self.steps + 1))
        with torch.no_grad():
            for mine, theirs in zip(self.net.parameters(), student.parameters()):
                mine.mul_(decay).add_(theirs.detach(), alpha=1 - decay)

    def state_dict(self) -> dict:
        return {**self.net.state_dict(), _STEPS: torch.tensor(self.steps)}

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        self.steps = int(state.pop(_STEPS))
        self.net.load_state_dict(state)
