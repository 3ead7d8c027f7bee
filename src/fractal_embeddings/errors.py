"""Exceptions raised by fractal-embeddings.

Every error is meant to be shown to a user as one line: it names the problem and the fix.
The CLI prints ``str(error)`` without a traceback for these classes.
"""

from __future__ import annotations


class FractalError(Exception):
    """Base class for every error the library raises on purpose."""


class DatasetNotFoundError(FractalError, KeyError):
    """An unknown dataset name (and not a path to a readable file)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataFilesMissingError(FractalError, FileNotFoundError):
    """Raw files of a built-in dataset are missing and could not be downloaded."""


class ChecksumError(FractalError, ValueError):
    """A downloaded or stored raw file does not have the published size or sha256."""


class TaxonomyError(FractalError, ValueError):
    """Labels do not form a valid taxonomy (a class under two parents, a level with one class, ...)."""


class InputDataError(FractalError, ValueError):
    """A user file cannot be read as a dataset (missing columns, bad encoding, no rows, ...)."""


class EncoderError(FractalError, RuntimeError):
    """An encoder cannot be loaded or run."""


class ZoomIndexError(FractalError):
    """A zoom index that cannot be built, loaded or searched as asked (one line: problem and fix)."""


class OutputPathError(FractalError):
    """An output folder or file that can't receive what a command writes (one line: the problem and the fix)."""
