"""Models torchship did not design, registered as a user would, with `--spec tests/user_models/models.py:NAME`.

None of torchship's own code knows them: each is an ordinary nn.Module (or a PyPI
package's model) plus the spec that describes its inputs and outputs.
"""

import torch
import torch.nn.functional as F
from torch import nn

from torchship.models import Axis, InputSpec, ModelSpec, OutputSpec


# 1. A model from a PyPI package, built from a small config with random weights.
def tiny_bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=500, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    return BertModel(config, add_pooling_layer=True)


def bert_inputs(sizes: dict[str, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
    batch, length = sizes["batch"], sizes["sequence"]
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    return {"input_ids": torch.randint(0, 500, (batch, length), generator=generator),
            "attention_mask": (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).long()}


BERT = ModelSpec(
    name="tinybert",
    summary="transformers' BertModel from a 2-layer, 32-wide BertConfig (random weights)",
    build=tiny_bert,
    inputs=(InputSpec("input_ids", dtype="int64", shape=("batch", "sequence"), low=0, high=499),
            InputSpec("attention_mask", dtype="int64", shape=("batch", "sequence"), low=0, high=1)),
    outputs=(OutputSpec("last_hidden_state", shape=("batch", "sequence", 32)),
             OutputSpec("pooler_output", shape=("batch", 32))),
    output_structure="dict",
    axes={"batch": Axis(max=1024), "sequence": Axis(max=64, golden=(1, 9, 64), fresh=(3, 17, 40))},
    make_inputs=bert_inputs,
    atol=1e-4,
    rtol=1e-3,
)


# 2. A CNN with BatchNorm, Dropout and a residual connection (exported in eval mode).
class ResidualCNN(nn.Module):
    def __init__(self, classes: int = 5):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv = nn.Conv2d(8, 8, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(8, classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.stem(image)))  # (B, 8, H, W)
        h = F.relu(h + self.bn2(self.conv(h)))  # (B, 8, H, W), residual
        h = h.mean(dim=(2, 3))  # (B, 8)
        return self.head(self.dropout(h))  # (B, classes)


RESIDUAL_CNN = ModelSpec(
    name="residualcnn",
    summary="conv-BN-ReLU, a residual conv-BN block, global average pool, dropout, linear",
    build=ResidualCNN,
    inputs=(InputSpec("image", shape=("batch", 3, 16, 16)),),
    outputs=(OutputSpec("logits", shape=("batch", 5), role="logits"),),
    axes={"batch": Axis(max=4096)},
    atol=1e-4,
    rtol=1e-3,
)


# 3. A tuple output of two different shapes.
class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(16, 32)
        self.scores = nn.Linear(32, 3)
        self.embedding = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.body(x))  # (B, 32)
        return self.scores(h), self.embedding(h).unsqueeze(1)  # (B, 3), (B, 1, 8)


TWO_HEADS = ModelSpec(
    name="twoheads",
    summary="one body, two heads: scores (B, 3) and an embedding (B, 1, 8), returned as a tuple",
    build=TwoHeads,
    inputs=(InputSpec("x", shape=("batch", 16)),),
    outputs=(OutputSpec("scores", shape=("batch", 3)), OutputSpec("embedding", shape=("batch", 1, 8))),
    output_structure="tuple",
)

ALL = [BERT, RESIDUAL_CNN, TWO_HEADS]


def save_random_checkpoint(spec: ModelSpec, path, seed: int = 0) -> None:
    """A checkpoint as a user's training would leave it (BatchNorm statistics included)."""
    torch.manual_seed(seed)
    model = spec.build()
    for module in model.modules():  # running statistics that are not the defaults
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    torch.save(model.state_dict(), path)
