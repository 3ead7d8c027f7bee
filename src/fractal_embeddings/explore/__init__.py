"""Explorer: a local web app that shows semantic zoom on a trained run and its corpus.

>>> from fractal_embeddings.explore import Explorer, open_index, create_app
>>> ix, source = open_index("runs/clinc-fractal")          # or an index directory
>>> ex = Explorer(ix, source)
>>> ex.search("book me a flight to paris", zoom="coarse", k=10)["predicted"]
>>> app = create_app(ex)                                   # a Starlette app; `fractal explore` serves it

What it serves (``fractal explore RUN_DIR|INDEX_DIR``, 127.0.0.1:8765 by default)
--------------------------------------------------------------------------------
* ``/``: one page (HTML, CSS and vanilla JS from ``explore/static/``, nothing fetched from the
  network) with a search box, a zoom slider over the prefix lengths (64 = coarse ... 256 = fine),
  the hits with their labels at every level, a 2-D map of the corpus at the chosen prefix, and the
  run's per-prefix k-NN accuracy curve with S.
* ``/api/search?q=&zoom=&k=[&mode=zoom|funnel|routed&candidates=N]``: the ``k`` nearest corpus items of
  ``q`` at a zoom, in a search mode (:mod:`~fractal_embeddings.index.modes`; a routed search also
  returns ``route``: the class it was sent to), with the query's
  predicted coarse class: the majority coarse label of its ``k`` nearest neighbours at the coarse
  zoom (a tie goes to the label of the nearest of the tied rows). Each hit says whether its coarse
  label is that class.
* ``/api/map?zoom=&color=coarse|fine``: 2-D coordinates of the corpus (at most
  :data:`MAP_MAX_POINTS` rows, a seeded sample beyond that) at a prefix: the first two principal
  components (an SVD of the centred, L2-normalised prefixes: the cosine geometry the search uses),
  computed once per prefix and kept in memory; ``color`` picks the level whose class codes come
  back. ``/api/corpus``: the texts and labels of those rows (fetched once by the page).
* ``/api/run``: the run record's identity, per-prefix x level accuracy (trained and untrained
  encoder), steerability, and what the index holds.

Input is checked (query at most :data:`MAX_QUERY_CHARS` characters, ``k`` from 1 to :data:`MAX_K`,
a zoom the index has, a known colour level); a bad request gets a 400 with ``{"error": message}``,
an unknown path a 404, and any unexpected failure a 500 ``{"error": "internal error ..."}`` without
a traceback (the server logs one line).

Before any of that, every request is screened: its ``Host`` header must name this server
(``127.0.0.1``, ``localhost``, ``::1``, or a name given in ``allowed_hosts`` / ``--allow-host``;
``*`` allows any), else a 400 -- a web page elsewhere can't reach the explorer through a DNS name
rebound to 127.0.0.1; a path + query string over :data:`MAX_URL_BYTES` bytes is a 414; and a
request body (the API takes none) is a 413.

Given a run directory, :func:`open_index` builds a flat :class:`~fractal_embeddings.index.ZoomIndex`
over the corpus (default: the split ``test`` of the dataset the run was trained on, subset included;
``corpus=`` takes what ``fractal index build`` takes) and keeps it under
``$FRACTAL_CACHE/explore/<key>`` (key: the run id, its weights' sha256, the encoder fingerprint and
the corpus), so the next start loads it instead of encoding again.

The package: :mod:`.logic` (the :class:`Explorer`: search, map and run information, input checks),
:mod:`.loading` (:func:`open_index`: an index directory, or a run's corpus built once and cached),
:mod:`.app` (the Starlette app: routes, JSON answers, the page from ``static/``) and :mod:`.server`
(the host guard, binding a port, serving).
"""

from .app import STATIC_DIR, check_installed, create_app
from .loading import CACHE_SUBDIR, open_index
from .logic import (
    DEFAULT_K,
    MAP_MAX_POINTS,
    MAX_K,
    MAX_QUERY_CHARS,
    PREDICTED_RULE,
    BadRequest,
    ExploreError,
    Explorer,
)
from .server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    LOOPBACK_HOSTS,
    MAX_URL_BYTES,
    HostGuard,
    ServerThread,
    allowed_host_names,
    bind,
    serve,
    url_of,
)

__all__ = [
    "CACHE_SUBDIR",
    "DEFAULT_HOST",
    "DEFAULT_K",
    "DEFAULT_PORT",
    "LOOPBACK_HOSTS",
    "MAP_MAX_POINTS",
    "MAX_K",
    "MAX_QUERY_CHARS",
    "MAX_URL_BYTES",
    "PREDICTED_RULE",
    "STATIC_DIR",
    "BadRequest",
    "ExploreError",
    "Explorer",
    "HostGuard",
    "ServerThread",
    "allowed_host_names",
    "bind",
    "check_installed",
    "create_app",
    "open_index",
    "serve",
    "url_of",
]
