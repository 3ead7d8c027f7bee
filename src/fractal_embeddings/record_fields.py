"""How a run record's blocks are read and written: each block is a dataclass whose fields say how
(:func:`spec`: what the value must be, whether the key is optional, how a nested block converts), and
:class:`Block` walks them: one ``from_dict`` with one-line errors naming the field, one ``to_dict``.
The blocks themselves are :mod:`~fractal_embeddings.record_blocks`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, cast

from .errors import FractalError


class RunRecordError(FractalError):
    """A run directory, record or weights file that is missing, malformed or doesn't match."""


def bad_field(where: str, key: str, want: str, got: Any) -> RunRecordError:
    return RunRecordError(
        f"{where}.{key} is {got!r}, expected {want}; restore the field (the record was edited?) or train the run again"
    )


def missing_field(where: str, key: str) -> RunRecordError:
    return RunRecordError(
        f"{where}.{key} is missing; restore the field (the record was edited?) or train the run again"
    )


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def is_dict(v: Any) -> bool:
    return isinstance(v, dict)


def is_str(v: Any) -> bool:
    return isinstance(v, str)


def rest(d: dict, known: Iterable[str]) -> dict:
    return {k: v for k, v in d.items() if k not in known}


@dataclass(frozen=True)
class Spec:
    """How a block field is read and written.

    ``want``: what the value must be, for the one-line error (``None``: not checked; a callable gets
    the fields read so far); ``check(value, read so far)``; ``required``: the key must be there (else
    ``default``); ``omit_none``: a ``None`` value is not written (an optional key); ``load(value,
    label)`` / ``dump(value)``: a nested block's conversion (``label`` names it in errors)."""

    want: str | Callable[[dict], str] | None = None
    check: Callable[[Any, dict], bool] | None = None
    required: bool = True
    default: Any = None
    omit_none: bool = False
    load: Callable[[Any, str], Any] | None = None
    dump: Callable[[Any], Any] | None = None


def spec(
    want: str | Callable[[dict], str] | None = None,
    check: Callable[[Any], bool] | Callable[[Any, dict], bool] | None = None,
    *,
    sibling: bool = False,
    required: bool = True,
    default: Any = None,
    omit_none: bool = False,
    block: type[Block] | None = None,
) -> Any:
    """A dataclass field read by :meth:`Block.from_dict` (``sibling``: ``check`` takes the fields read
    so far too; ``block``: a nested block, read from an object)."""
    chk: Callable[[Any, dict], bool] | None = None
    if check is not None:
        one = cast("Callable[[Any], bool]", check)
        chk = cast("Callable[[Any, dict], bool]", check) if sibling else (lambda v, _read: one(v))
    load = dump = None
    if block is not None:
        load, dump = block.from_dict, block.to_dict
        if want is None:
            want, chk = "an object", chk or (lambda v, _read: is_dict(v))
    meta = {"record": Spec(want, chk, required, default, omit_none, load, dump)}
    if required:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


class Block:
    """A record block: a dataclass of :func:`spec` fields plus ``extra`` (the keys it does not model).
    ``ORDER``: the order fields are read (and so checked) in, when not the declared one."""

    ORDER: ClassVar[tuple[str, ...]] = ()
    extra: dict

    @classmethod
    def _specs(cls) -> list[tuple[str, Spec]]:
        found = {f.name: f.metadata["record"] for f in fields(cls) if "record" in f.metadata}  # type: ignore[arg-type]
        names = [*cls.ORDER, *(n for n in found if n not in cls.ORDER)]
        return [(n, found[n]) for n in names]

    @classmethod
    def read(cls, d: dict, label: str, child: Callable[[str], str] | None = None) -> dict[str, Any]:
        """The fields of ``d`` checked and converted (``label`` names the block in errors, ``child(key)``
        a nested block; default ``<label>.<key>``)."""
        out: dict[str, Any] = {}
        for name, sp in cls._specs():
            if name not in d:
                if sp.required:
                    raise missing_field(label, name)
                out[name] = sp.default
                continue
            v = d[name]
            if sp.check is not None and not sp.check(v, out):
                want = sp.want(out) if callable(sp.want) else sp.want
                raise bad_field(label, name, str(want), v)
            if sp.load is not None and v is not None:
                v = sp.load(v, child(name) if child else f"{label}.{name}")
            out[name] = v
        out["extra"] = rest(d, [n for n, _ in cls._specs()])
        return out

    @classmethod
    def from_dict(cls, d: dict, label: str) -> Any:
        """The block read from ``d``; ``label`` (``<file>: config.eval``) names it in a one-line error."""
        return cls(**cls.read(d, label))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for name, sp in self._specs():
            v = getattr(self, name)
            if v is None and sp.omit_none:
                continue
            out[name] = sp.dump(v) if sp.dump is not None and v is not None else v
        return {**out, **self.extra}


class MappingBlock(Block, Mapping[str, Any]):
    """A block also read as the mapping it was (``timing["train_s"]``): its :meth:`to_dict`."""

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())
