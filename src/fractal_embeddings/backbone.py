"""Fine-tuning the last layers of the encoder together with the head (the backbone control).

Everything else in the library trains a head on frozen, cached sentence vectors. The seed's 2 x 2
control asks whether *trainable encoder capacity* could replace hierarchy *alignment*: train the
head together with the encoder's last ``n`` transformer layers. Running the whole encoder for every
step is what makes that slow on a CPU, and the first ``L - n`` layers are frozen anyway, so:

1. :func:`token_states` runs the frozen part once per text and caches its output: the token states
   at the input of layer ``L - n`` (``(rows, seq, hidden)`` float32; padding positions are exact
   zeros, which is how the padding mask travels with the rows). They live in the embedding cache
   like sentence vectors (flattened to 2-D, with the layer and the length in the cache identity).
2. :class:`EncoderTop` is those ``n`` layers (copies of the pretrained ones, trainable) + the
   model's pooling (mean or CLS) + L2 normalisation -- untrained, it reproduces the encoder's
   sentence vectors (tested to 1e-5).
3. :class:`TunedHead` chains the top and a head and presents the head's contract, so every
   objective and the trainer use it unchanged; :meth:`TunedHead.param_groups` gives the encoder
   layers their own learning rate (``TrainConfig.encoder_lr``).

Only encoders that are sentence-transformers folders with a Hugging Face transformer (BERT-style
layers) can be fine-tuned; the packaged ONNX models cannot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .cache import texts_sha256
from .encoders import Encoder
from .errors import EncoderError, FractalError
from .heads import Head
from .model_files import read_json_or_empty

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from .data.taxonomy import Split


def load_transformer(encoder: Encoder) -> Any:  # a BERT-style transformers model (model.encoder.layer)
    """The encoder's Hugging Face transformer (eval mode), or a one-line error if it has none."""
    rm = encoder.resolved
    if any(encoder.prompts.values()):
        raise EncoderError(
            f"{rm.name} adds prompts to its inputs; fine-tuning encoder layers supports models without "
            f"prompts only (e.g. --model minilm-l6)"
        )
    if rm.folder is None:
        raise EncoderError(
            f"{rm.name} ships as ONNX only; fine-tuning encoder layers needs a "
            f"sentence-transformers folder (e.g. --model minilm-l6)"
        )
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(str(rm.folder)).eval()
    except Exception as e:  # noqa: BLE001 - any loader failure becomes one line
        raise EncoderError(f"cannot load the transformer of {rm.name} ({str(e)[:160]})") from None
    if not hasattr(model, "encoder") or not hasattr(model.encoder, "layer"):
        raise EncoderError(f"{rm.name}: fine-tuning encoder layers supports BERT-style models (model.encoder.layer)")
    return model


def _layers(model: Any) -> int:
    return len(model.encoder.layer)


def _check_layers(model: Any, n: int) -> None:
    total = _layers(model)
    if not 1 <= n <= total:
        raise FractalError(f"finetune_layers must be between 1 and {total} for this encoder, got {n}")


def _tokenizer(encoder: Encoder) -> Tokenizer:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(encoder.resolved.tokenizer_path))
    tok.no_padding()
    tok.enable_truncation(encoder.max_seq_length)
    return tok


@torch.no_grad()
def compute_token_states(encoder: Encoder, texts: Iterable[str], n_layers: int, batch_size: int = 64) -> np.ndarray:
    """Token states at the input of the last ``n_layers`` layers, ``(rows, longest, hidden)``,
    zeros at padding positions (not cached; see :func:`token_states`)."""
    model = load_transformer(encoder)
    _check_layers(model, n_layers)
    stop = _layers(model) - n_layers  # hidden_states[stop] is the input of layer `stop`
    tok = _tokenizer(encoder)
    enc = tok.encode_batch(list(texts))
    longest = max((len(e.ids) for e in enc), default=1)
    out = np.zeros((len(enc), longest, model.config.hidden_size), dtype=np.float32)
    order = np.argsort([-len(e.ids) for e in enc], kind="stable")
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        width = max(len(enc[i].ids) for i in idx)
        ids = torch.zeros((len(idx), width), dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, : len(enc[i].ids)] = torch.tensor(enc[i].ids)
            mask[r, : len(enc[i].ids)] = 1
        hidden = model(
            input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids), output_hidden_states=True
        ).hidden_states[stop]
        hidden = hidden * mask[..., None]
        out[idx, :width] = hidden.numpy()
    return out


def token_states(encoder: Encoder, texts: Iterable[str], n_layers: int) -> np.ndarray:
    """:func:`compute_token_states`, through the embedding cache (a hit is a read-only memory map)."""
    texts = list(texts)
    ident = {**encoder.identity().as_dict(), "token_states_for_last_layers": int(n_layers)}
    key = encoder.cache.key(ident, texts_sha256(texts))
    hit = encoder.cache.get(key, ident, len(texts))
    if hit is not None:
        meta_width = hit.shape[1]
        hidden = _hidden_size(encoder)
        return hit.reshape(len(texts), meta_width // hidden, hidden)
    states = compute_token_states(encoder, texts, n_layers)
    encoder.cache.put(key, states.reshape(len(texts), -1), ident, len(texts))
    return states


def split_states(encoder: Encoder, split: Split, n_layers: int) -> np.ndarray:
    """:func:`token_states` of a dataset split's texts."""
    return token_states(encoder, split.texts, n_layers)


def _hidden_size(encoder: Encoder) -> int:
    assert encoder.resolved.folder is not None  # token states exist only for folder models (load_transformer)
    size = read_json_or_empty(encoder.resolved.folder / "config.json").get("hidden_size")
    if not size:
        raise EncoderError(f"{encoder.resolved.name}: config.json has no hidden_size")
    return int(size)


class EncoderTop(nn.Module):
    """The last ``n_layers`` transformer layers of an encoder + its pooling + L2 normalisation.

    Input: token states from :func:`token_states` (padding = zero rows). Output: sentence vectors."""

    def __init__(self, encoder: Encoder, n_layers: int) -> None:
        super().__init__()
        model = load_transformer(encoder)
        _check_layers(model, n_layers)
        self.config = model.config
        self.layers = nn.ModuleList(model.encoder.layer[_layers(model) - n_layers :])
        self.pooling = encoder.resolved.pooling
        self.normalize = encoder.normalize
        self.n_layers = n_layers

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        keep = states.abs().amax(dim=2) > 0  # (rows, seq): real tokens
        width = int(keep.sum(dim=1).max())
        h, keep = states[:, :width], keep[:, :width]
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=h, attention_mask=keep.long())
        for layer in self.layers:
            h = layer(h, attention_mask=mask)
            h = h[0] if isinstance(h, tuple) else h
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            m = keep[..., None].to(h.dtype)
            pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp_min(1e-9)
        return nn.functional.normalize(pooled, dim=1) if self.normalize else pooled


class TunedHead(nn.Module):
    """``head(top(states))`` with the head's contract (embedding, logits, prefixes, config)."""

    def __init__(self, top: EncoderTop, head: Head) -> None:
        super().__init__()
        self.top, self.head = top, head
        self.head_config = head.head_config
        self.n_classes = head.n_classes

    dim = Head.dim
    n_levels = Head.n_levels

    def transform(self, X: np.ndarray, batch_rows: int = 256) -> np.ndarray:
        """Token states (numpy ``(rows, seq, hidden)``) -> embeddings, without gradient."""
        # borrowed: Head.transform reads only what a TunedHead has too (dim, parameters, forward)
        return Head.transform(self, X, batch_rows)  # type: ignore[arg-type]

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.head(self.top(states))

    def logits(self, level: int, e: torch.Tensor) -> torch.Tensor:
        return self.head.logits(level, e)

    def prefix_logits(self, level: int, e: torch.Tensor, j: int) -> torch.Tensor:
        return self.head.prefix_logits(level, e, j)

    def prefix(self, e: torch.Tensor, j: int) -> torch.Tensor:
        return self.head.prefix(e, j)

    def param_groups(self) -> list[tuple[nn.Module, str]]:
        """(module, learning-rate key): the head at ``lr``, the encoder layers at ``encoder_lr``."""
        return [(self.head, "lr"), (self.top, "encoder_lr")]

    def config(self) -> dict:
        return {**self.head.config(), "finetuned_encoder_layers": self.top.n_layers}
