"""A text classifier built from torch.nn.TransformerEncoder, and its torchship spec.

The model knows nothing about torchship; the spec below is what a user writes to
bring it: its inputs (token ids below the vocabulary size, a padding mask, with
`batch` and `sequence` axes) and its dict output.
"""

import torch
from torch import nn

from torchship.models import Axis, InputSpec, ModelSpec, OutputSpec

VOCAB, DIM, CLASSES, MAX_LEN = 1000, 32, 4, 128


class TextClassifier(nn.Module):
    def __init__(self, vocab: int = VOCAB, dim: int = DIM, classes: int = CLASSES, max_len: int = MAX_LEN):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=64, dropout=0.1, batch_first=True)
        # enable_nested_tensor=False: the nested-tensor fast path is for inference speed in
        # eager and cannot be exported.
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, input_ids: torch.Tensor, padding_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        # input_ids (B, T) int64; padding_mask (B, T) bool, True where a token is padding
        h = self.embed(input_ids) + self.position[: input_ids.shape[1]]  # (B, T, C)
        h = self.encoder(h, src_key_padding_mask=padding_mask)  # (B, T, C)
        keep = (~padding_mask).unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        pooled = (h * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)  # (B, C): mean over real tokens
        return {"logits": self.head(pooled), "pooled": pooled}


def example_inputs(sizes: dict[str, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Token ids, and a mask that pads the tail of each row but never a whole row."""
    batch, length = sizes["batch"], sizes["sequence"]
    input_ids = torch.randint(0, VOCAB, (batch, length), generator=generator)
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    padding_mask = torch.arange(length).unsqueeze(0) >= lengths.unsqueeze(1)  # (B, T)
    return {"input_ids": input_ids, "padding_mask": padding_mask}


SPEC = ModelSpec(
    name="textclassifier",
    summary="2-layer TransformerEncoder over token ids with a padding mask; logits and pooled features",
    build=TextClassifier,
    inputs=(
        InputSpec("input_ids", dtype="int64", shape=("batch", "sequence"), low=0, high=VOCAB - 1),
        InputSpec("padding_mask", dtype="bool", shape=("batch", "sequence")),
    ),
    outputs=(
        OutputSpec("logits", shape=("batch", CLASSES), role="logits"),
        OutputSpec("pooled", shape=("batch", DIM)),
    ),
    output_structure="dict",
    axes={"batch": Axis(max=4096), "sequence": Axis(max=MAX_LEN, golden=(1, 9, 64), fresh=(3, 17, 128))},
    make_inputs=example_inputs,
    atol=1e-4,
    rtol=1e-3,
)
