"""The model card (``README.md``) of an export: ``templates/model_card.md`` filled from the run record.

The template holds the card's fixed text; :func:`render_card` computes each ``${field}`` (tables,
the paragraphs that depend on the head, the dims or the layout) from the record and the export
check, every number from them. :func:`fractal_embeddings.export.model_card` calls it with the
export's own constants.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

import numpy as np

from .objectives import OBJECTIVES, schedule_weights
from .records import HeadInfo, RunRecord

TEMPLATE_FILE = Path(__file__).parent / "templates" / "model_card.md"

#: the training settings the card lists, in order (record.config.train key -> row label)
TRAIN_ROWS = (
    ("epochs", "epochs"),
    ("lr", "learning rate"),
    ("encoder_lr", "encoder learning rate"),
    ("max_train_rows", "training rows (cap)"),
    ("batch_size", "batch size"),
    ("weight_decay", "weight decay"),
    ("lr_schedule", "lr schedule"),
)


def _fmt(v: float, signed: bool = False) -> str:
    return f"{v:+.4f}" if signed else f"{v:.4f}"


def _hub_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name or ""))


def schedule_rows(record: RunRecord, dims: int) -> list[str] | None:
    """``| dims | trained on |`` rows of the label schedule, or None when the method has none."""
    schedule = record.config.objective.get("schedule")
    if schedule is None:
        return None
    h = record.head
    levels = record.level_names
    W = schedule_weights(schedule, h.n_blocks, len(levels))
    rows = []
    for j in range(dims // h.block_dim):
        parts = [(w, levels[lv]) for lv, w in enumerate(W[j]) if w > 0]
        label = " + ".join(name if np.isclose(w, 1.0) else f"{w:g} x {name}" for w, name in parts)
        rows.append(f"| {(j + 1) * h.block_dim} | {label} |")
    return rows


def architecture(h: HeadInfo, dims: int, portable: bool) -> str:
    """The exported head in words: the ``FractalHead`` module, or its built-in ``Dense`` layers."""
    if not portable:
        assert h.kind is not None  # export_dims refused runs without a head
        parts = [h.kind, f"{h.n_blocks} x {h.block_dim} dims"]
        if h.kind in ("mlp", "heal"):
            parts.append(f"hidden {h.get('hidden_dim')}")
        if h.get("block_norm"):
            parts.append("each block L2-normalised")
        return "FractalHead(" + ", ".join(parts) + ")"
    return (
        f"Dense({h.get('input_dim')} -> {h.get('hidden_dim')}, GELU) + Dense({h.get('hidden_dim')} -> {dims})"
        if h.kind == "mlp"
        else f"Dense({h.get('input_dim')} -> {dims})"
    )


def _intro(record: RunRecord, dims: int, portable: bool, finetuned: bool) -> str:
    """What the folder holds and which dims carry which level (plus why a portable export is shorter)."""
    h, levels = record.head, record.level_names
    enc = record.encoder.base or record.encoder  # a fine-tuned run: the encoder it started from
    block, full = h.block_dim, h.dim
    arch = architecture(h, dims, portable)
    body = (
        f"the encoder `{enc.name}` fine-tuned end to end together with a `{h.kind}` head ({arch})"
        if finetuned
        else f"the frozen encoder `{enc.name}` followed by the run's trained `{h.kind}` head, as "
        + (f"built-in sentence-transformers modules only ({arch})" if portable else f"a {arch} module")
    )
    intro = (
        f'Steerable ("semantic zoom") sentence embeddings exported from a fractal-embeddings run: {body}. '
        f"The output has {dims} dims in blocks of {block}: "
        f"the first {block} dims carry the coarsest level (`{levels[0]}`)"
    )
    intro += f", the full {dims} dims the finest level (`{levels[-1]}`)." if dims == full else "."
    if dims == full:
        return intro
    why = (
        f"The run's head L2-normalises each {block}-d block of its {full}-d output, which built-in "
        f"sentence-transformers modules cannot reproduce beyond the first block, so this export holds "
        f"the first {dims} dims only (exact)."
        if h.get("block_norm")
        else f"This export holds the first {dims} of the head's {full} dims."
    )
    return (
        f"{intro}\n\n{why} The finest level (`{levels[-1]}`) is served by the run's full {full} dims, which are "
        "not in this export."
    )


def _usage(levels: list[str], block: int, dims: int, folder_name: str, portable: bool) -> list[str]:
    """The usage example after its ``texts = [...]`` line, closing fence included."""
    trust = "" if portable else ", trust_remote_code=True"
    if dims <= block:
        return [
            f'coarse = SentenceTransformer("{folder_name}"{trust})  # {dims} dims: {levels[0]}',
            "coarse.encode(texts, normalize_embeddings=True)",
            "```",
        ]
    return [
        f'coarse = SentenceTransformer("{folder_name}"{trust}, truncate_dim={block})  # zoomed out: {levels[0]}',
        f'fine = SentenceTransformer("{folder_name}"{trust})  # all {dims} dims: {levels[-1]}',
        "coarse.encode(texts, normalize_embeddings=True)",
        "fine.encode(texts, normalize_embeddings=True)",
        "```",
        "",
        f"`truncate_dim` may be any multiple of {block} up to {dims}: the prefixes in the tables below.",
    ]


def _loading(levels: list[str], block: int, dims: int, portable: bool) -> list[str]:
    """How to load the folder, with and without fractal-embeddings, what ``trust_remote_code`` means
    here, which dims serve which level, and what re-saving with ``truncate_dim`` does."""
    if portable:
        L = [
            "Built-in sentence-transformers modules only: no `trust_remote_code`, no other package. "
            "fractal-embeddings loads the folder the same way."
        ]
    else:
        L = [
            "**With sentence-transformers (>= 6) alone**, without fractal-embeddings: "
            "`SentenceTransformer(path, trust_remote_code=True)`. The flag lets sentence-transformers import "
            "`fractal_head.py` from this folder: the head's module, which needs only torch and "
            "sentence-transformers (read it before you trust it; without the flag the folder is refused). "
            "Saving the loaded model again writes that file to the new folder's root too, so copies of copies "
            "load the same way.",
            "",
            "**With fractal-embeddings installed** (the library that wrote this folder): "
            "`fractal_embeddings.trust.load_model_folder(path)` loads it *without* `trust_remote_code`: the "
            "library checks that `fractal_head.py` is byte-identical to the file it ships, uses its own "
            "installed class, and refuses a folder whose code differs.",
        ]
    finest = levels[-1] if dims > block else levels[0]
    return L + [
        "",
        f"Which dims serve which level: the first {block} dims `{levels[0]}`, all {dims} dims `{finest}` (every "
        f"prefix: the zoom table below). Pick the zoom per call (`model.encode(texts, truncate_dim={block}, "
        f"normalize_embeddings=True)`) or per model (`SentenceTransformer(path, truncate_dim={block})`).",
        "",
        f'Re-saving: a model loaded with `truncate_dim=d` and saved again keeps `"truncate_dim": d` in the '
        f"copy's `config_sentence_transformers.json`, so the copy outputs only d dims by default (`encode(..., "
        f"truncate_dim={dims})` still gives the full vector), while this card, copied unchanged, describes all "
        f"{dims} dims. To keep a copy whole, load it without `truncate_dim` and pass the zoom per call.",
    ]


def _schedule(record: RunRecord, dims: int) -> list[str]:
    """Which level each prefix was trained on, and the method's one-line description."""
    method = record.method
    rows = schedule_rows(record, dims)
    doc = (OBJECTIVES[method].__doc__ or "").strip().splitlines()[0].replace("``", "`") if method in OBJECTIVES else ""
    if rows is None:
        return [f"Method `{method}` assigns no taxonomy level to a prefix. {doc}"]
    L = [
        f"Which level each prefix was trained on (the label schedule of the run's objective, "
        f"`{record.config.objective['schedule']}`):",
        "",
        "| dims | trained on |",
        "|---|---|",
        *rows,
    ]
    return L + (["", f"Method: {doc}"] if doc else [])


def _accuracy_table(record: RunRecord, dims: int) -> list[str]:
    """Per prefix up to ``dims``: the run's k-NN accuracy at every level, then the untrained encoder's."""
    levels = record.level_names
    L = [
        "| dims | " + " | ".join(levels) + " | " + " | ".join(f"{n} (untrained)" for n in levels) + " |",
        "|---" * (1 + 2 * len(levels)) + "|",
    ]
    base = record.baseline.accuracy
    for d, row in sorted(record.accuracy.items(), key=lambda kv: int(kv[0])):
        if int(d) <= dims:
            b = base.get(d, {})
            trained = " | ".join(_fmt(row[n]) for n in levels)
            untrained = " | ".join(_fmt(b[n]) if n in b else "-" for n in levels)
            L.append(f"| {d} | {trained} | {untrained} |")
    return L


def _training_table(record: RunRecord) -> list[str]:
    """The ``| setting | value |`` rows: method, seed, dataset, encoder, head and the training settings."""
    h, method = record.head, record.method
    enc = record.encoder.base or record.encoder
    train = record.config.train or {}
    prompt = f", prompt `{enc.prompt}` (applied by default)" if enc.prompt else ""
    head = (
        f"{h.kind}, {h.n_blocks} x {h.block_dim} dims"
        + (f", hidden {h.get('hidden_dim')}" if h.kind == "mlp" else "")
        + (", block norm" if h.get("block_norm") else "")
    )
    L = [
        f"| method | `{method}` |",
        f"| seed | {record.seed} |",
        f"| dataset | `{record.dataset.name}` |",
        f"| encoder | `{enc.name}` ({enc.pooling} pooling, max {enc.max_seq_length} tokens{prompt}) |",
        f"| head | {head} |",
    ]
    L += [f"| {label} | {train[key]} |" for key, label in TRAIN_ROWS if key in train]
    if record.training is not None:
        L.append(f"| best epoch | {record.training.best_epoch} |")
    obj = {k: v for k, v in record.config.objective.items() if k != "method"}
    if obj:
        L.append("| objective options | " + ", ".join(f"{k}={v}" for k, v in sorted(obj.items())) + " |")
    return L


def render_card(
    record: RunRecord,
    dims: int,
    check: dict[str, float],
    *,
    folder_name: str,
    portable: bool,
    finetuned: bool,
    n_probes: int,
    tolerance: float,
    export_file: str,
) -> str:
    """The card: :data:`TEMPLATE_FILE` with every field computed from the record and the export check."""
    h, ds, ev = record.head, record.dataset, record.eval
    enc = record.encoder.base or record.encoder
    levels = record.level_names
    subset = ""
    if ds.subset:
        rows = ", ".join(f"{k} {v}" for k, v in ds.subset["rows"].items())
        subset = f" (a seeded subset: {rows} rows, seed {ds.subset['seed']})"
    st, bst = record.steerability, record.baseline.steerability
    checks = [f"| {k} dims, normalised | {v:.2e} |" for k, v in check.items() if k != "raw"]
    fields = {
        "base_model": f"base_model: {enc.name}\n" if _hub_id(enc.name) else "",
        "run_id": record.run_id,
        "intro": _intro(record, dims, portable, finetuned),
        "usage": "\n".join(_usage(levels, h.block_dim, dims, folder_name, portable)),
        "loading": "\n".join(_loading(levels, h.block_dim, dims, portable)),
        "dataset": ds.name,
        "subset": subset,
        "split_rows": ", ".join(f"{k} {v}" for k, v in ds.rows.items()),
        "levels_table": "\n".join(f"| L{i} | {lv.name} | {lv.n_classes} |" for i, lv in enumerate(ds.levels)),
        "schedule": "\n".join(_schedule(record, dims)),
        "eval_k": ev.k,
        "eval_rows": ev.n_rows,
        "eval_split": ev.split,
        "accuracy_table": "\n".join(_accuracy_table(record, dims)),
        "steerability": ", ".join(f"{k} = {_fmt(v, signed=k != 'S_mono')}" for k, v in st.items() if v is not None),
        "base_S": _fmt(bst["S"], signed=True),
        "block": h.block_dim,
        "full": h.dim,
        "training_table": "\n".join(_training_table(record)),
        "n_probes": n_probes,
        "tolerance": f"{tolerance:g}",
        "check_table": "\n".join([*checks, f"| {dims} dims, unnormalised | {check['raw']:.2e} |"]),
        "export_file": export_file,
    }
    return Template(TEMPLATE_FILE.read_text(encoding="utf-8")).substitute(fields)
