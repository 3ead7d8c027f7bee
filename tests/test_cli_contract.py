"""The command line's contract: every usage error (a bad or unknown option, a bad --out, a missing
argument) is one `error:` line with exit status 2, found before any work and leaving the working
directory untouched; property tests draw bad values for the options of `train`, `index build`,
`search` and `export`. Real data: the small CLINC150 user file, its run and index (conftest)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _helpers import assert_one_error, cli, no_leftovers

PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@contextlib.contextmanager
def inside(folder: Path):
    """Run with ``folder`` as the working directory: a relative path a command might write to (a default
    `runs/...`, `--out .`) lands there, never in the repository, even if a check regresses."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(before)


def untouched(scratch: Path) -> None:
    no_leftovers(scratch, {"notes.txt", "mine"})
    no_leftovers(scratch / "mine", {"keep.txt"})


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A working directory for commands given bad paths: holds a file and a folder that is not a run."""
    d = tmp_path_factory.mktemp("scratch")
    (d / "notes.txt").write_text("mine")
    (d / "mine").mkdir()
    (d / "mine" / "keep.txt").write_text("mine")
    return d


# ------------------------------------------- usage errors: one line, 2
@pytest.mark.parametrize(
    "argv,needles",
    [
        (["train", "clinc150", "--epochs", "abc"], ["--epochs", "fractal train --help"]),
        (["train", "clinc150", "--bogus"], ["No such option: --bogus", "fractal train --help"]),
        (["train"], ["Missing argument", "fractal train --help"]),
        (["train", "clinc150", "--seed", str(2**70)], ["--seed", "4294967295"]),
        (["train", "clinc150", "--seed", "-1"], ["--seed"]),
        (["train", "clinc150", "--eval-seed", str(2**32)], ["--eval-seed"]),
        (["index", "build"], ["Missing argument", "fractal index build --help"]),
        (["search", "ix", "q", "-k", "x"], ["-k"]),
        (["nope"], ["No such command", "fractal --help"]),
        (["experiment", "main", "--quick", "--datasets", "trec", "--seeds", "1,x"], ["--seeds", "comma-separated"]),
        (["experiment", "main", "--quick", "--datasets", "trec", "--seeds", f"1,{2**40}"], ["--seeds", "4294967295"]),
    ],
)
def test_usage_errors_are_one_line_with_status_2(scratch, argv, needles):
    """Defect 8: click's usage errors printed a traceback (typer's own click classes escaped main) with
    exit status 1; an oversized seed crashed inside numpy."""
    with inside(scratch):
        rc, out, err = cli(*argv)
    untouched(scratch)
    assert_one_error(rc, err, *needles)
    assert out == ""


def test_search_zoom_that_is_a_unicode_digit_is_one_line(index_dir):
    """Found by the property test's alphabet: '²'.isdigit() is True but int('²') raised ValueError."""
    rc, out, err = cli("search", index_dir, "book a flight", "--zoom", "²")
    assert_one_error(rc, err, "zoom '²' is not one of this index's zooms")


# ------------------------------------------- bad --out paths are refused before any work
def test_check_output_dir_names_the_problem(tmp_path):
    from fractal_embeddings.errors import OutputPathError
    from fractal_embeddings.validation import check_output_dir

    f = tmp_path / "file.txt"
    f.write_text("x")
    for path, msg in [
        (f, "is a file, not a directory"),
        (f / "x", "is a file, not a directory"),
        (f / "x" / "y", "is a file, not a directory"),
    ]:
        with pytest.raises(OutputPathError, match=msg) as e:
            check_output_dir(path, marker="record.json", what="a run")
        assert "choose another --out" in str(e.value) and "\n" not in str(e.value)
    assert check_output_dir(tmp_path / "new" / "deeper", marker="record.json") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # a check creates nothing
    if not os.access("/proc/self", os.W_OK):
        with pytest.raises(OutputPathError, match="can't write in /proc/self"):
            check_output_dir("/proc/self/run", marker="record.json")


@pytest.mark.parametrize("case", ["file", "under-file", "not-a-run", "unwritable"])
def test_train_refuses_a_bad_out_before_training(small_csv, tmp_path, cache_env, case):
    """Defects 1 and 4: `train --out` at a file, under a file, in a non-empty folder that is not a run,
    or where nothing can be written fails at once (no epoch runs), in one line naming the fix."""
    f = tmp_path / "file.txt"
    f.write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    out, msg = {
        "file": (f, "is a file"),
        "under-file": (f / "x", "is a file"),
        "not-a-run": (tmp_path / "mine", "not empty and holds no run"),
        "unwritable": ("/proc/self/run", "can't write"),
    }[case]
    if case == "unwritable" and os.access("/proc/self", os.W_OK):
        pytest.skip("/proc/self is writable here")
    rc, _, err = cli(
        "train", small_csv, "--levels", "domain,intent", "--method", "mrl", "--epochs", "1", "--out", out, "--overwrite"
    )
    assert_one_error(rc, err, msg, "--out")
    assert "epoch" not in err
    assert f.read_text() == "x" and (tmp_path / "mine" / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("case", ["file", "under-file"])
def test_index_build_refuses_a_bad_out_before_encoding(corpus_csv, user_run_dir, tmp_path, case):
    f = tmp_path / "file.txt"
    f.write_text("x")
    out = f if case == "file" else f / "x"
    rc, _, err = cli("index", "build", user_run_dir, corpus_csv, "--levels", "domain,intent", "--out", out)
    assert_one_error(rc, err, "is a file", "--out")


# ------------------------------------------------- property tests of option parsing
NOT_INT = st.sampled_from(["abc", "", " ", "1.5", "nan", "inf", "-inf", "1e3", "0x10", "--", "2**8", "one"])
NON_POSITIVE = st.integers(max_value=0).map(str)
BAD_FLOAT = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "0", "-0", "abc", "", " "]),
    st.floats(max_value=0, allow_nan=False).map(repr),
)
HUGE = st.integers(min_value=2**32, max_value=2**200).map(str)
NEGATIVE = st.integers(max_value=-1).map(str)
OPTION_NAME = st.from_regex(r"--[a-z][a-z-]{1,14}", fullmatch=True)


def _unknown(command_path: list[str]):
    from typer.main import get_command

    from fractal_embeddings.cli import app

    cmd = get_command(app)
    for name in command_path:
        cmd = cmd.commands[name]
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    return OPTION_NAME.filter(lambda o: o not in known)


def _bad_train_option():
    from fractal_embeddings.objectives import OBJECTIVES

    return st.one_of(
        st.tuples(st.just("--epochs"), st.one_of(NOT_INT, NON_POSITIVE)),
        st.tuples(st.just("--batch-size"), st.one_of(NOT_INT, NON_POSITIVE)),
        st.tuples(st.just("--lr"), BAD_FLOAT),
        st.tuples(st.sampled_from(["--seed", "--eval-seed"]), st.one_of(NOT_INT, HUGE, NEGATIVE)),
        st.tuples(
            st.just("--dim"), st.one_of(NOT_INT, NON_POSITIVE, st.integers(1, 10**6).filter(lambda d: d % 64).map(str))
        ),
        st.tuples(st.just("--block-dim"), st.one_of(NOT_INT, NON_POSITIVE)),
        st.tuples(
            st.just("--eval-rows"), st.one_of(st.sampled_from(["abc", "", "1", "0", "-5", "nan", "1.5"]), NEGATIVE)
        ),
        st.tuples(st.just("--method"), st.text("abcxyz-_ ", max_size=8).filter(lambda m: m not in OBJECTIVES)),
        st.tuples(st.just("--out"), st.sampled_from(["", ".", "mine", "notes.txt", "notes.txt/x"])),
        st.tuples(_unknown(["train"]), st.just("1")),
    )


@PROPS
@given(data=st.data())
def test_train_options_property(small_csv, scratch, data):
    """Any bad value of a `fractal train` option (or an unknown option) ends in one `error:` line and
    exit status 2, before anything is encoded or trained."""
    opt, value = data.draw(_bad_train_option())
    out = str(scratch / "prop-train-out")
    extra = [] if opt == "--out" else ["--out", out]
    t0 = time.perf_counter()
    with inside(scratch):
        rc, _, err = cli("train", small_csv, "--levels", "domain,intent", "--method", "mrl", *extra, opt, value)
    assert_one_error(rc, err)
    assert time.perf_counter() - t0 < 5
    untouched(scratch)


@PROPS
@given(data=st.data())
def test_index_build_options_property(corpus_csv, user_run_dir, scratch, data):
    opt, value = data.draw(
        st.one_of(
            st.tuples(
                st.just("--kind"), st.text("abcdefhnsw ", max_size=8).filter(lambda k: k not in ("flat", "hnsw"))
            ),
            st.tuples(st.just("--m"), st.one_of(NOT_INT, st.integers(max_value=1).map(str))),
            st.tuples(st.sampled_from(["--ef-construction", "--ef-search"]), st.one_of(NOT_INT, NON_POSITIVE)),
            st.tuples(st.just("--split"), st.sampled_from(["", "nope", "TEST!"])),
            st.tuples(st.just("--out"), st.sampled_from(["", ".", "mine", "notes.txt", "notes.txt/x"])),
            st.tuples(_unknown(["index", "build"]), st.just("1")),
        )
    )
    out = str(scratch / "prop-index-out")
    extra = [] if opt == "--out" else ["--out", out]
    t0 = time.perf_counter()
    with inside(scratch):
        rc, _, err = cli("index", "build", user_run_dir, corpus_csv, "--levels", "domain,intent", *extra, opt, value)
    assert_one_error(rc, err)
    assert time.perf_counter() - t0 < 5
    untouched(scratch)


@PROPS
@given(data=st.data())
def test_search_options_property(index_dir, data):
    opt, value = data.draw(
        st.one_of(
            st.tuples(st.sampled_from(["-k", "--top-k"]), st.one_of(NOT_INT, NON_POSITIVE)),
            st.tuples(
                st.just("--zoom"),
                st.one_of(
                    st.text(max_size=6).filter(
                        lambda z: z.strip().lower() not in ("coarse", "fine", "64", "128", "192", "256")
                    ),
                    st.integers().filter(lambda d: d not in (64, 128, 192, 256)).map(str),
                ),
            ),
            st.tuples(st.just("--ef-search"), st.one_of(NOT_INT, NON_POSITIVE)),
            st.tuples(_unknown(["search"]), st.just("1")),
        )
    )
    t0 = time.perf_counter()
    rc, out, err = cli("search", index_dir, "book a flight", opt, value)
    assert_one_error(rc, err)
    assert out == "" and time.perf_counter() - t0 < 5


@PROPS
@given(data=st.data())
def test_export_options_property(user_run_dir, scratch, data):
    opt, value = data.draw(
        st.one_of(
            st.tuples(
                st.just("--dims"),
                st.one_of(
                    NOT_INT,
                    NON_POSITIVE,
                    HUGE,
                    st.integers(1, 10**6).filter(lambda d: d not in (64, 128, 192, 256)).map(str),
                ),
            ),
            st.tuples(_unknown(["export"]), st.just("1")),
        )
    )
    out = scratch / "prop-export-out"
    t0 = time.perf_counter()
    with inside(scratch):
        rc, _, err = cli("export", user_run_dir, out, opt, value)
    assert_one_error(rc, err)
    assert time.perf_counter() - t0 < 5
    untouched(scratch)
