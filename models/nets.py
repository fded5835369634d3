"""The three seed networks, written with today's API and kept scriptable.

Each forward is the one a reader of the tutorials expects; anything export needs
beyond that (DynamicNet's while_loop twin for ONNX) lives in export/.
"""

from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

MAX_DEPTH = 3  # DynamicNet's deepest path, as in the tutorial's random.randint(0, 3)


class TwoLayerNet(nn.Module):
    """Linear(D_in, H) -> clamp(min=0) -> Linear(H, D_out) (seed 001, "Custom nn Modules")."""

    def __init__(self, d_in: int = 1000, hidden: int = 100, d_out: int = 10):
        super().__init__()
        self.linear1 = nn.Linear(d_in, hidden)
        self.linear2 = nn.Linear(hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h_relu = self.linear1(x).clamp(min=0)  # (B, H)
        return self.linear2(h_relu)  # (B, D_out)


class DynamicNet(nn.Module):
    """The tutorial's DynamicNet: one shared middle layer applied `depth` times.

    `depth` is an input so that a caller (and every check) can choose the path.
    When it is omitted the model draws it from torch's generator, as the tutorial
    draws it from `random`; torch.randint keeps the forward scriptable and makes
    the draw follow `torch.manual_seed`.
    """

    def __init__(self, d_in: int = 1000, hidden: int = 100, d_out: int = 10):
        super().__init__()
        self.max_depth = MAX_DEPTH
        self.input_linear = nn.Linear(d_in, hidden)
        self.middle_linear = nn.Linear(hidden, hidden)
        self.output_linear = nn.Linear(hidden, d_out)

    def forward(self, x: torch.Tensor, depth: Optional[int] = None) -> torch.Tensor:
        if depth is None:
            depth = int(torch.randint(0, self.max_depth + 1, [1]).item())
        h_relu = self.input_linear(x).clamp(min=0)  # (B, H)
        for _ in range(depth):
            h_relu = self.middle_linear(h_relu).clamp(min=0)  # (B, H), shared weights
        return self.output_linear(h_relu)  # (B, D_out)

    def forward_for_export(self, x: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """forward() as torch.export needs it: the same layers, the loop as a while_loop.

        `depth` is a 0-dim int64 tensor, so the ONNX graph keeps a Loop whose trip
        count comes from a graph input instead of a chain unrolled for one depth.
        """
        from torch._higher_order_ops.while_loop import while_loop

        def keep_going(i: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
            return i < depth

        def middle(i: torch.Tensor, h: torch.Tensor):
            return i + 1, self.middle_linear(h).clamp(min=0)

        h_relu = self.input_linear(x).clamp(min=0)  # (B, H)
        _, h_relu = while_loop(keep_going, middle, (torch.zeros_like(depth), h_relu))
        return self.output_linear(h_relu)  # (B, D_out)


class ConvNet(nn.Module):
    """The LeNet of the 60-minute blitz (seed 004): 1x32x32 image -> 10 class logits."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 6, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 16, 5, 5)
        x = torch.flatten(x, 1)  # (B, 400)
        x = F.relu(self.fc1(x))  # (B, 120)
        x = F.relu(self.fc2(x))  # (B, 84)
        return self.fc3(x)  # (B, 10)
