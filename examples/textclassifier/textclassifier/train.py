"""The user's own training, outside torchship: `python -m textclassifier.train CKPT`.

Learns a toy task (is token 7 in the sentence, and is it in the first half) for a few
hundred steps and saves the state_dict, the checkpoint `export-model --weights` takes.
"""

import sys

import torch
from torch import nn

from textclassifier import SPEC, TextClassifier, example_inputs

STEPS = 200


def labels(input_ids: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    seven = (input_ids == 7) & ~padding_mask
    first_half = seven[:, : input_ids.shape[1] // 2].any(dim=1)
    return seven.any(dim=1).long() * 2 + first_half.long()  # 0..3


def main(path: str, seed: int = 0) -> None:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = TextClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(STEPS):
        feed = example_inputs({"batch": 32, "sequence": 24}, generator)
        feed["input_ids"][:, ::5] = 7 * (torch.rand(32, 1, generator=generator) < 0.5)  # make 7 common
        loss = nn.functional.cross_entropy(model(**feed)["logits"], labels(**feed))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.save(model.state_dict(), path)
    print(f"{SPEC.name}: final loss {loss.item():.3f}, saved {path}")


if __name__ == "__main__":
    main(sys.argv[1])
