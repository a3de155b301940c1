"""Where the data lives: official Galaxy10 files (local, env var or download) and the shared real sample.

Official sources
----------------
- Galaxy10 DECaLS, astroNN HDF5 (``Galaxy10_DECals.h5``, 2.7 GB, 17,736 images 256x256, with ra/dec):
  ``GALAXY10_URLS["galaxy10_decals"]``; env var ``GALAXY10_DECALS_PATH``.
- Galaxy10 SDSS, astroNN HDF5 (``Galaxy10.h5``, ~200 MB, 21,785 images 69x69, no coordinates):
  ``GALAXY10_URLS["galaxy10_sdss"]``; env var ``GALAXY10_SDSS_PATH``.
- Galaxy10 DECaLS on the Hugging Face Hub as parquet with its own 90/10 train/test split and no
  coordinates: ``HUB_REPOS["galaxy10_decals"]`` (used with ``split="hub"``).
- The real SDSS / Galaxy Zoo 1 sample ``gz1_sdss``: env var ``GZ1_SDSS_PATH``, else
  ``gz1_sdss/data.parquet`` in the data root: ``$GALAXY_ATTN_DATA_DIR`` (the folder of the real samples; the
  repository's tests set it to ``../shared/data``), see :func:`data_root`.
- The Kaggle Galaxy Zoo 2 sets ``gz2_kaggle`` and ``gz2_kaggle_spiral``, built by
  ``scripts/build_gz2_kaggle.py`` (``gz2_kaggle.py``): ``path``, ``$GZ2_KAGGLE_DIR/<name>/data.parquet``
  or ``<name>/data.parquet`` in the data root, see :func:`resolve_gz2_kaggle`.

Downloads go to ``<cache>/downloads`` through ``_io.atomic_write`` (temp file, checksum, ``os.replace``).
Offline (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` set, or the host unreachable within ~1.5 s) they fail at
once with a message that names the file and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

from .._io import atomic_write

__all__ = [
    "DATA_DIR_ENV",
    "ENV_VARS",
    "GALAXY10_FILES",
    "GALAXY10_SHA256",
    "GALAXY10_URLS",
    "HUB_REPOS",
    "SOURCE_CROP_PCT",
    "DataSourceUnavailable",
    "default_cache_dir",
    "data_root",
    "download_galaxy10",
    "find_data",
    "find_shared_data",
    "is_offline",
    "resolve_gz1_sdss",
    "resolve_gz2_kaggle",
    "resolve_official_file",
]

GALAXY10_FILES = {"galaxy10_decals": "Galaxy10_DECals.h5", "galaxy10_sdss": "Galaxy10.h5"}
GALAXY10_URLS = {
    "galaxy10_decals": "https://www.astro.utoronto.ca/~hleung/shared/Galaxy10/Galaxy10_DECals.h5",
    "galaxy10_sdss": "https://www.astro.utoronto.ca/~hleung/shared/Galaxy10/Galaxy10.h5",
}
GALAXY10_SHA256 = {
    "galaxy10_decals": "19aefc477c41bb7f77ff07599a6b82a038dc042f889a111b0d4d98bb755c1571",
}
# A parquet copy of Galaxy10 DECaLS (columns image, label; splits train 15,962 / test 1,774).
HUB_REPOS = {"galaxy10_decals": "matthieulel/galaxy10_decals"}
ENV_VARS = {
    "galaxy10_decals": "GALAXY10_DECALS_PATH",
    "galaxy10_sdss": "GALAXY10_SDSS_PATH",
    "gz1_sdss": "GZ1_SDSS_PATH",
}
GZ2_KAGGLE_NAMES = ("gz2_kaggle", "gz2_kaggle_spiral")
GZ2_KAGGLE_DIR_ENV = "GZ2_KAGGLE_DIR"  # the build script's output folder (holding gz2_kaggle/, ...)
DATA_DIR_ENV = "GALAXY_ATTN_DATA_DIR"  # the folder of the real samples (gz1_sdss/, ...)
_PROBE_TIMEOUT_S = 1.5
# The eval crop of each named source (timm ``crop_pct``: the central share of the image kept before resizing).
# Galaxy10 DECaLS (256x256, 0.262"/px): the galaxy fills the central half. Galaxy10 SDSS (69x69) is already
# the central 207 px of the SDSS cutouts: the whole image. gz1_sdss (423x423): Galaxy10 SDSS's crop, about
# half. A user's own files keep the whole image (1.0).
# The Kaggle GZ2 images (424x424) are SDSS cutouts framed like gz1_sdss's: the same crop.
SOURCE_CROP_PCT = {
    "galaxy10_decals": 0.5,
    "galaxy10_sdss": 1.0,
    "gz1_sdss": 0.5,
    "gz2_kaggle": 0.5,
    "gz2_kaggle_spiral": 0.5,
}


class DataSourceUnavailable(FileNotFoundError):
    """A dataset file is missing and cannot be downloaded here; the message says where to put it."""


def default_cache_dir() -> Path:
    """``$GALAXY_ATTN_CACHE``, else ``<HF datasets cache>/timm_galaxy_attn``."""
    env = os.environ.get("GALAXY_ATTN_CACHE")
    if env:
        return Path(env).expanduser()
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "timm_galaxy_attn"


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set to a true value."""
    return any(
        os.environ.get(k, "").strip().lower() in {"1", "true", "yes", "on"}
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _host_reachable(url: str, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout`` s (DNS included)."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ok: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def _where_to_put(name: str, cache: Path) -> str:
    fname = GALAXY10_FILES.get(name, "data.parquet")
    lines = [
        f"pass path='/path/to/{fname}' to load_galaxy_dataset",
        f"or set the environment variable {ENV_VARS[name]}=/path/to/{fname}",
    ]
    if name in GALAXY10_FILES:
        lines.append(f"or place it at {cache / 'downloads' / fname}")
    return "; ".join(lines)


def _unavailable(name: str, cache: Path, why: str) -> DataSourceUnavailable:
    fname = GALAXY10_FILES.get(name, "data.parquet")
    url = GALAXY10_URLS.get(name, "")
    source = f" Download {fname} from {url} on a machine with internet access, then" if url else ""
    return DataSourceUnavailable(
        f"{name}: {fname} not found and {why}.{source} {_where_to_put(name, cache)}."
    )


def resolve_official_file(
    name: str, path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Local path of the official Galaxy10 HDF5 for ``name``; downloads it if it is nowhere local.

    Order: ``path``, the env var (``ENV_VARS[name]``), ``<cache>/downloads/<file>``, download.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    for candidate, origin in ((path, "path argument"), (os.environ.get(ENV_VARS[name]), ENV_VARS[name])):
        if candidate:
            p = Path(candidate).expanduser()
            if not p.is_file():
                raise FileNotFoundError(
                    f"{name}: {origin} points to {p}, which is not a file. Fix the path to "
                    f"{GALAXY10_FILES[name]} ({_where_to_put(name, cache)})."
                )
            return p
    local = cache / "downloads" / GALAXY10_FILES[name]
    if local.is_file():
        return local
    return download_galaxy10(name, cache)


def download_galaxy10(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Download the astroNN HDF5 of ``name`` into ``<cache>/downloads`` (atomic, SHA-256 checked)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    url = GALAXY10_URLS[name]
    if is_offline():
        raise _unavailable(name, cache, "downloads are disabled (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set)")
    if not _host_reachable(url):
        raise _unavailable(name, cache, f"{urllib.parse.urlsplit(url).hostname} cannot be reached")
    dest = cache / "downloads" / GALAXY10_FILES[name]

    def fetch(tmp: Path) -> None:
        from tqdm.auto import tqdm

        sha = hashlib.sha256()  # hashed while streaming: the file is never read twice
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}") as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    sha.update(chunk)
                    bar.update(len(chunk))
        expected = GALAXY10_SHA256.get(name)
        if expected and sha.hexdigest() != expected:
            raise OSError(f"{dest.name} from {url} has SHA-256 {sha.hexdigest()}, expected {expected}")

    atomic_write(dest, fetch)
    return dest


def hub_available(name: str) -> None:
    """Raise :class:`DataSourceUnavailable` at once when the Hub copy of ``name`` cannot be fetched."""
    repo = HUB_REPOS[name]
    if is_offline():
        raise DataSourceUnavailable(
            f"{name}: split='hub' reads the Hugging Face dataset {repo!r}, but HF_HUB_OFFLINE/"
            f"HF_DATASETS_OFFLINE is set. Download its parquet files elsewhere "
            f"(huggingface-cli download {repo} --repo-type dataset) and pass path='/that/folder' "
            f"with split='hub'; or use the astroNN file: {_where_to_put(name, default_cache_dir())}."
        )
    if not _host_reachable("https://huggingface.co"):
        raise DataSourceUnavailable(
            f"{name}: huggingface.co cannot be reached to read {repo!r}. Download its parquet files "
            f"elsewhere and pass path='/that/folder' with split='hub'."
        )


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of the real samples (``gz1_sdss/``, ``galaxy10_decals_examples/``, ...).

    ``data_dir``, else ``$GALAXY_ATTN_DATA_DIR``; else, for the repository's scripts that do not pass one
    yet, a ``shared/data`` folder upward of the working directory. FileNotFoundError naming both otherwise.
    """
    for candidate, origin in ((data_dir, "data_dir"), (os.environ.get(DATA_DIR_ENV), DATA_DIR_ENV)):
        if candidate:
            root = Path(candidate).expanduser()
            if not root.is_dir():
                raise FileNotFoundError(f"{origin} points to {root}, which is not a folder.")
            return root
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):  # legacy: training/train.py and benchmarks/ rely on it
        if (d / "shared" / "data").is_dir():
            return d / "shared" / "data"
    raise FileNotFoundError(
        f"no data folder: pass data_dir='/path/to/data' or set {DATA_DIR_ENV}=/path/to/data (the folder "
        "holding gz1_sdss/, galaxy10_decals_examples/, ...)."
    )


def find_data(rel: str, data_dir: str | os.PathLike | None = None) -> Path:
    """``<data root>/<rel>`` (see :func:`data_root`); FileNotFoundError naming data_dir and the env var."""
    root = data_root(data_dir)
    found = root / rel
    if not found.exists():
        raise FileNotFoundError(
            f"{rel} not found in {root}; pass data_dir= or set {DATA_DIR_ENV} to the folder that holds it."
        )
    return found


find_shared_data = find_data  # the former name (benchmarks/synthetic_vs_real.py)


def resolve_gz1_sdss(
    path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> Path:
    """Locate the gz1_sdss parquet file: ``path``, ``$GZ1_SDSS_PATH``, then ``gz1_sdss/data.parquet`` in
    the data root (``data_dir`` or ``$GALAXY_ATTN_DATA_DIR``, see :func:`data_root`)."""
    for candidate, origin in ((path, "path argument"), (os.environ.get("GZ1_SDSS_PATH"), "GZ1_SDSS_PATH")):
        if candidate:
            p = Path(candidate).expanduser()
            if p.is_dir():
                p = p / "data.parquet"
            if not p.is_file():
                raise FileNotFoundError(f"gz1_sdss: {origin} points to {p}, which is not a file.")
            return p
    try:
        return find_data("gz1_sdss/data.parquet", data_dir)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"gz1_sdss: data.parquet not found: {e} Or pass path='/path/to/gz1_sdss/data.parquet' or set "
            "GZ1_SDSS_PATH."
        ) from None


def resolve_gz2_kaggle(
    name: str, path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> Path:
    """Locate the parquet file of ``name`` (``"gz2_kaggle"`` or ``"gz2_kaggle_spiral"``).

    Order: ``path`` (the file, its folder or the build's output folder), ``$GZ2_KAGGLE_DIR/<name>/``,
    ``<name>/`` in the data root. DataSourceUnavailable naming the build script otherwise.
    """
    tried = []
    roots = [(path, "path argument"), (os.environ.get(GZ2_KAGGLE_DIR_ENV), GZ2_KAGGLE_DIR_ENV)]
    for candidate, origin in roots:
        if not candidate:
            continue
        p = Path(candidate).expanduser()
        for f in (p, p / "data.parquet", p / name / "data.parquet"):
            if f.is_file():
                return f
        tried.append(f"{origin} -> {p}")
    try:
        return find_data(f"{name}/data.parquet", data_dir)
    except FileNotFoundError:
        tried.append(f"{name}/data.parquet in the data folder ({DATA_DIR_ENV})")
    raise DataSourceUnavailable(
        f"{name}: data.parquet not found (looked at: {'; '.join(tried)}). It is built from public GitHub "
        f"repositories, not shipped: run `python scripts/build_gz2_kaggle.py --download --out runs/data` "
        f"(see docs/data_gz2.md), then pass path='runs/data' or set {GZ2_KAGGLE_DIR_ENV}=runs/data."
    )
