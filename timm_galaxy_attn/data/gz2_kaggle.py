"""Galaxy Zoo 2 galaxies of the Kaggle "Galaxy Challenge", read from two public repositories.

Sources (both 424x424 SDSS gri JPEGs named ``<GalaxyID>.jpg``; images: SDSS, labels: Galaxy Zoo 2
volunteers, Willett et al. 2013; credit both):

- ``PELLEGRINI``: github.com/GiovanniPellegrini/Galaxy-zoo at commit 24bc859 (MIT licence, ``license.txt``
  of the later commits), ``data/exercise_3_debug/``: 5,000 images and ``labels.csv`` with 17 Kaggle
  vote columns (``KAGGLE_VOTE_COLUMNS``).
- ``COSMIC``: github.com/isi-mube/Cosmic-Compendium (no licence file), images in its history under
  ``data/[galaxies/[train/|validation/]]{spirals,non_spirals}/``: 6,507 galaxies labelled by the
  repository's rule ``Class1.2 > 0.5 and Class4.1 > 0.5 and Class6.1 > 0.5`` -> spiral, else non-spiral.

:func:`build_gz2_kaggle` writes two parquet datasets in the project's layout, ``gz2_kaggle`` (the vote
fractions) and ``gz2_kaggle_spiral`` (the spiral labels of the galaxies not in ``gz2_kaggle``), with a
``group`` column joining duplicates found by image content and a ``gz1_sdss_split``
column that pins a galaxy also in gz1_sdss to that galaxy's gz1_sdss split (found by
``splits.match_images``). ``BUILD_SCRIPT`` is the user's entry point. The repositories are read with
the ``git`` command line (``ls-tree``, ``cat-file --batch``): past commits too, no Python git library needed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..labels import GZ2_KAGGLE_CLASSES, GZ2_SPIRAL_CLASSES  # the class names live in labels.py
from .hdf5 import GalaxyDataError
from .splits import MATCH_THRESHOLD, PIN_COLUMN, SPLIT_NAMES, match_images

__all__ = [
    "BUILD_SCRIPT",
    "COSMIC",
    "GZ2_KAGGLE_CLASSES",
    "GZ2_SPIRAL_CLASSES",
    "KAGGLE_VOTE_COLUMNS",
    "PELLEGRINI",
    "GitSource",
    "build_gz2_kaggle",
    "duplicate_groups",
    "read_cosmic",
    "read_pellegrini",
    "read_tree",
]

BUILD_SCRIPT = "scripts/build_gz2_kaggle.py"


@dataclass(frozen=True)
class GitSource:
    """A public repository holding galaxy images: where, which commit, and its terms."""

    name: str
    url: str
    commit: str | None  # None: every version in the repository's history
    prefix: str
    licence: str


PELLEGRINI = GitSource(
    name="GiovanniPellegrini/Galaxy-zoo",
    url="https://github.com/GiovanniPellegrini/Galaxy-zoo",
    commit="24bc859823155e24ed3e6fba796de0d725d2995b",
    prefix="data/exercise_3_debug/",
    licence="MIT (repository license.txt); images SDSS, labels Galaxy Zoo 2 (Kaggle Galaxy Challenge)",
)
COSMIC = GitSource(
    name="isi-mube/Cosmic-Compendium",
    url="https://github.com/isi-mube/Cosmic-Compendium",
    commit=None,
    prefix="data/",
    licence="no licence file; images SDSS, labels derived from Galaxy Zoo 2 (Kaggle Galaxy Challenge)",
)

# Kaggle column -> ours. Values are Kaggle's cumulative vote fractions: the share of all volunteers who
# reached the question and chose the answer (Class2.x sums to Class1.2, Class7.x to Class1.1, Class8.x to
# Class6.1; Class1.x and Class6.x sum to 1).
KAGGLE_VOTE_COLUMNS = {
    "Class1.1": "gz2_t01_smooth",
    "Class1.2": "gz2_t01_features_or_disk",
    "Class1.3": "gz2_t01_star_or_artifact",
    "Class2.1": "gz2_t02_edge_on_yes",
    "Class2.2": "gz2_t02_edge_on_no",
    "Class6.1": "gz2_t06_odd_yes",
    "Class6.2": "gz2_t06_odd_no",
    "Class7.1": "gz2_t07_completely_round",
    "Class7.2": "gz2_t07_in_between",
    "Class7.3": "gz2_t07_cigar_shaped",
    "Class8.1": "gz2_t08_ring",
    "Class8.2": "gz2_t08_lens_or_arc",
    "Class8.3": "gz2_t08_disturbed",
    "Class8.4": "gz2_t08_irregular",
    "Class8.5": "gz2_t08_other",
    "Class8.6": "gz2_t08_merger",
    "Class8.7": "gz2_t08_dust_lane",
}
_PELLEGRINI_FILE = re.compile(r"data/exercise_3_debug/(?:labels\.csv|images/\d+\.jpg)$")
_COSMIC_IMAGE = re.compile(r"data/(?:galaxies/(?:train/|validation/)?)?(spirals|non_spirals)/(\d+)\.jpg$")


def _is_git_repo(root: Path) -> bool:
    """A clone (``root/.git``) or a bare repository (``root/HEAD`` and ``root/objects``)."""
    return (root / ".git").exists() or ((root / "HEAD").is_file() and (root / "objects").is_dir())


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise GalaxyDataError("git is not installed: install git to read the source repositories.") from None
    except subprocess.CalledProcessError as err:
        raise GalaxyDataError(f"{root}: git {' '.join(args)} failed: {err.stderr.strip()}") from None
    return done.stdout


def _git_blobs(root: Path, shas: list[str]) -> list[bytes]:
    """The contents of blobs, through one ``git cat-file --batch`` (input fed from a thread: no deadlock)."""
    proc = subprocess.Popen(
        ["git", "-C", str(root), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )

    def feed() -> None:
        try:
            proc.stdin.write("".join(f"{s}\n" for s in shas).encode())
            proc.stdin.close()
        except BrokenPipeError:  # git stopped early: the reader reports why
            pass

    threading.Thread(target=feed, daemon=True).start()
    out = []
    for sha in shas:
        header = proc.stdout.readline().split()
        if len(header) != 3:
            proc.kill()
            raise GalaxyDataError(
                f"{root}: blob {sha} is missing; fetch the full history (git fetch --unshallow)."
            )
        out.append(proc.stdout.read(int(header[2])))
        proc.stdout.read(1)  # the newline after each blob
    proc.wait()
    return out


def read_tree(root: str | Path, rev: str | None, prefix: str, keep: re.Pattern) -> dict[str, bytes]:
    """Files under ``prefix`` of a repository, by path relative to its top.

    Args:
        root: a git clone or bare repository, or a plain folder with the same layout.
        rev: the commit to read; None reads every commit and keeps the first version of each path
            (files deleted later included). Ignored for a plain folder.
        prefix: the folder inside the repository (``data/``).
        keep: the paths to read (``keep.match(path)``); the others are never fetched.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; give the path of a clone ({BUILD_SCRIPT} --help).")
    if not _is_git_repo(root):
        files = {p.relative_to(root).as_posix(): p for p in sorted((root / prefix).rglob("*")) if p.is_file()}
        return {rel: p.read_bytes() for rel, p in files.items() if keep.match(rel)}
    revs = [rev] if rev else _git(root, "rev-list", "--all", "--reverse", "--topo-order").split()
    blob_of: dict[str, str] = {}
    for r in revs:
        for line in _git(root, "ls-tree", "-r", r, "--", prefix).splitlines():
            meta, path = line.split("\t", 1)
            if meta.split()[1] == "blob" and keep.match(path):
                blob_of.setdefault(path, meta.split()[2])
    if not blob_of:
        raise GalaxyDataError(
            f"{root}: no files under {prefix!r} at {rev or 'any commit'}; is it the right clone?"
        )
    paths = sorted(blob_of)
    return dict(zip(paths, _git_blobs(root, [blob_of[p] for p in paths]), strict=True))


def read_pellegrini(root: str | Path) -> list[dict]:
    """Rows of ``PELLEGRINI``: ``galaxy_id``, ``image`` (JPEG bytes) and the vote columns (ours)."""
    files = read_tree(root, PELLEGRINI.commit, PELLEGRINI.prefix, _PELLEGRINI_FILE)
    labels = files.get(PELLEGRINI.prefix + "labels.csv")
    if labels is None:
        raise GalaxyDataError(
            f"{root}: {PELLEGRINI.prefix}labels.csv not found; is it a clone of {PELLEGRINI.url}?"
        )
    table = list(csv.DictReader(io.StringIO(labels.decode())))
    missing = [c for c in ("GalaxyID", *KAGGLE_VOTE_COLUMNS) if table and c not in table[0]]
    if not table or missing:
        raise GalaxyDataError(f"{root}: labels.csv lacks the columns {missing or 'and rows'}.")
    rows = []
    for rec in table:
        path = f"{PELLEGRINI.prefix}images/{rec['GalaxyID']}.jpg"
        if path not in files:
            raise GalaxyDataError(f"{root}: {path} is missing (labels.csv lists GalaxyID {rec['GalaxyID']}).")
        row = {"galaxy_id": int(rec["GalaxyID"]), "image": files[path]}
        row.update({ours: float(rec[kaggle]) for kaggle, ours in KAGGLE_VOTE_COLUMNS.items()})
        rows.append(row)
    return rows


def read_cosmic(root: str | Path) -> tuple[list[dict], int]:
    """Rows of ``COSMIC`` (``galaxy_id``, ``image``, ``spiral`` 0/1) and how many ids were dropped because
    the repository filed them both as spiral and as non-spiral."""
    labels: dict[int, set[int]] = {}
    image: dict[int, bytes] = {}
    for path, data in read_tree(root, COSMIC.commit, COSMIC.prefix, _COSMIC_IMAGE).items():
        m = _COSMIC_IMAGE.match(path)
        if m:
            gid = int(m.group(2))
            labels.setdefault(gid, set()).add(int(m.group(1) == "spirals"))
            image.setdefault(gid, data)  # the same galaxy under several folders: identical pixels
    if not image:
        raise GalaxyDataError(f"{root}: no images under data/.../spirals|non_spirals; is it {COSMIC.url}?")
    rows = [
        {"galaxy_id": gid, "image": image[gid], "spiral": next(iter(lab))}
        for gid, lab in sorted(labels.items())
        if len(lab) == 1
    ]
    return rows, len(labels) - len(rows)


def task1_label(rows: Iterable[dict]) -> np.ndarray:
    """The most voted GZ2 task-1 answer of each row (``GZ2_KAGGLE_CLASSES`` index)."""
    t01 = [KAGGLE_VOTE_COLUMNS[f"Class1.{i}"] for i in (1, 2, 3)]
    return np.asarray([[r[c] for c in t01] for r in rows], dtype=np.float64).reshape(-1, 3).argmax(axis=1)


@dataclass
class DuplicateGroups:
    """``keys[i]``: the group of GZ2 image i; ``twins[i]``: the gz1_sdss rows in it; ``stats``: counts."""

    keys: list[str]
    twins: list[list[int]]
    stats: dict


def duplicate_groups(gz2: list[bytes], gz1: list[bytes], galaxy_ids: list[int]) -> DuplicateGroups:
    """Groups of images showing one object: GZ2 pairs at one scale, GZ2 with gz1_sdss over scales.

    A group's key is ``gz1:<index of its first gz1_sdss row>`` when it holds one, else
    ``gz2:<smallest GalaxyID>``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n2 = len(gz2)
    within = match_images(gz2, gz2, query_crop=1.0, ref_crops=(1.0,), exclude_self=True)
    cross = match_images(gz1, gz2)  # query gz1 (its central 0.8), reference GZ2 over scales
    edges = np.concatenate([within[:, :2], np.stack([cross[:, 0] + n2, cross[:, 1]], axis=1)])
    n = n2 + len(gz1)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for node, c in enumerate(comp):
        members.setdefault(int(c), []).append(node)
    keys, twins = [], []
    for i in range(n2):
        group = members[int(comp[i])]
        gz1_rows = [m - n2 for m in group if m >= n2]
        twins.append(gz1_rows)
        keys.append(f"gz1:{gz1_rows[0]}" if gz1_rows else f"gz2:{min(galaxy_ids[m] for m in group)}")
    stats = {
        "match_threshold": MATCH_THRESHOLD,
        "gz2_pairs_same_object": len({tuple(sorted(p)) for p in within[:, :2].tolist()}),
        "gz2_images_with_gz1_twin": int(sum(bool(t) for t in twins)),
        "gz1_rows_with_gz2_twin": int(len(set(cross[:, 0].tolist()))),
        "cross_pairs": cross.tolist(),
    }
    return DuplicateGroups(keys, twins, stats)


def _gz1_rows(gz1_sdss: Path, seed: int, fractions: tuple[float, float], cache_dir) -> list[dict]:
    """gz1_sdss galaxies (``sdss_objid``, JPEG bytes) with their split under ``load_galaxy_dataset``."""
    import datasets

    from .load import load_galaxy_dataset

    dd = load_galaxy_dataset(
        "gz1_sdss",
        path=gz1_sdss,
        seed=seed,
        val_fraction=fractions[0],
        test_fraction=fractions[1],
        cache_dir=cache_dir,
    )
    rows = []
    for split, ds in dd.items():
        raw = ds.cast_column("image", datasets.Image(decode=False))
        for objid, im in zip(raw["sdss_objid"], raw["image"], strict=True):
            rows.append({"sdss_objid": int(objid), "image": im["bytes"], "split": split})
    return rows


def _write_parquet(rows: list[dict], features, dest: Path) -> None:
    import datasets

    from .._io import atomic_write

    columns = {k: [r[k] for r in rows] for k in features}
    columns["image"] = [{"bytes": b, "path": None} for b in columns["image"]]
    ds = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    atomic_write(dest, lambda tmp: ds.to_parquet(str(tmp)))


def _features(extra: dict, class_names: tuple[str, ...]) -> dict:
    import datasets

    return {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=list(class_names)),
        "galaxy_id": datasets.Value("int64"),
        "source": datasets.Value("string"),
        **extra,
        "group": datasets.Value("string"),
        "gz1_sdss_objid": datasets.Value("int64"),
        PIN_COLUMN: datasets.Value("string"),
    }


def build_gz2_kaggle(
    pellegrini: str | Path,
    cosmic: str | Path,
    out_dir: str | Path,
    gz1_sdss: str | Path | None = None,
    *,
    gz1_seed: int = 0,
    gz1_fractions: tuple[float, float] = (0.1, 0.1),
    cache_dir: str | Path | None = None,
) -> dict:
    """Build ``<out_dir>/gz2_kaggle/data.parquet`` and ``<out_dir>/gz2_kaggle_spiral/data.parquet``.

    A galaxy in both sources (same GalaxyID) is kept once, in gz2_kaggle (its vote fractions), with the
    other source's label in ``cc_spiral`` (-1 where unknown). ``group`` joins galaxies whose images show
    the same object (``splits.match_images``), within the two sets and with gz1_sdss; ``gz1_sdss_split``
    is the split of the gz1_sdss twin under ``load_galaxy_dataset("gz1_sdss", seed=gz1_seed, ...)``.

    Args:
        pellegrini: clone (or bare repository, or plain folder) of ``PELLEGRINI``.
        cosmic: clone of ``COSMIC`` with its history.
        out_dir: where the two dataset folders and ``build.json`` go.
        gz1_sdss: the gz1_sdss parquet to match against; None skips that matching.
        gz1_seed, gz1_fractions: the gz1_sdss split (seed, (validation, test)) whose sides are kept.
        cache_dir: the ``load_galaxy_dataset`` cache for that split.

    Returns:
        The build report (also written to ``<out_dir>/build.json``).
    """
    import datasets

    votes = read_pellegrini(pellegrini)
    spirals, conflicting = read_cosmic(cosmic)
    cc = {r["galaxy_id"]: r["spiral"] for r in spirals}
    spirals = [r for r in spirals if r["galaxy_id"] not in {v["galaxy_id"] for v in votes}]
    for r, label in zip(votes, task1_label(votes), strict=True):
        r.update(label=int(label), source=PELLEGRINI.name, cc_spiral=cc.get(r["galaxy_id"], -1))
    for r in spirals:
        r.update(label=r["spiral"], source=COSMIC.name)
    gz1 = _gz1_rows(Path(gz1_sdss), gz1_seed, gz1_fractions, cache_dir) if gz1_sdss else []
    rows = votes + spirals
    dup = duplicate_groups(
        [r["image"] for r in rows], [r["image"] for r in gz1], [r["galaxy_id"] for r in rows]
    )
    for r, key, twin_rows in zip(rows, dup.keys, dup.twins, strict=True):
        twins = [gz1[j] for j in twin_rows]
        r["group"] = key
        r["gz1_sdss_objid"] = min((t["sdss_objid"] for t in twins), default=-1)
        r[PIN_COLUMN] = max((t["split"] for t in twins), key=SPLIT_NAMES.index, default="")
    out = Path(out_dir)
    float32 = datasets.Value("float32")
    vote_features = {c: float32 for c in KAGGLE_VOTE_COLUMNS.values()} | {"cc_spiral": datasets.Value("int8")}
    _write_parquet(votes, _features(vote_features, GZ2_KAGGLE_CLASSES), out / "gz2_kaggle" / "data.parquet")
    _write_parquet(spirals, _features({}, GZ2_SPIRAL_CLASSES), out / "gz2_kaggle_spiral" / "data.parquet")
    report = _report(votes, spirals, gz1, dup, {"cosmic_ids": len(cc), "cosmic_conflicting_ids": conflicting})
    (out / "build.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def _class_counts(rows: list[dict], names: tuple[str, ...]) -> dict[str, int]:
    counts = np.bincount([r["label"] for r in rows], minlength=len(names)).tolist()
    return dict(zip(names, counts, strict=True))


def _report(votes: list[dict], spirals: list[dict], gz1: list[dict], dup: DuplicateGroups, extra: dict):
    """Sizes, class balance and duplicate counts of a build (``build.json``)."""

    def twins_per_split(rows: list[dict]) -> dict[str, int]:
        return {s: len({r["gz1_sdss_objid"] for r in rows if r[PIN_COLUMN] == s}) for s in SPLIT_NAMES}

    sources = (PELLEGRINI, COSMIC)
    return {
        "sources": {s.name: {"url": s.url, "commit": s.commit, "licence": s.licence} for s in sources},
        "gz2_kaggle": {
            "rows": len(votes),
            "class_counts": _class_counts(votes, GZ2_KAGGLE_CLASSES),
        },
        "gz2_kaggle_spiral": {
            "rows": len(spirals),
            "class_counts": _class_counts(spirals, GZ2_SPIRAL_CLASSES),
        },
        **extra,
        "same_galaxy_id_in_both_sources": sum(r["cc_spiral"] >= 0 for r in votes),
        "gz1_sdss_rows_per_split": {s: sum(r["split"] == s for r in gz1) for s in SPLIT_NAMES},
        "gz1_sdss_galaxies_in_gz2_kaggle_per_split": twins_per_split(votes),
        "gz1_sdss_galaxies_in_gz2_kaggle_spiral_per_split": twins_per_split(spirals),
        "duplicates": dup.stats,
    }
