"""BibTeX for the model cards, written from the references of the repository's CITATION.cff.

CITATION.cff is the one place each citation lives; a reference's ``abbreviation`` is its BibTeX key.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hub_common import PublishError

CITATION_FILE = Path(__file__).resolve().parents[1] / "CITATION.cff"
_ENTRY_TYPE = {"article": "article", "conference-paper": "inproceedings", "generic": "misc"}


def references(path: Path = CITATION_FILE) -> dict[str, dict[str, Any]]:
    """The ``references:`` of ``path``, by BibTeX key."""
    refs = yaml.safe_load(path.read_text()).get("references") or []
    return {str(ref["abbreviation"]): ref for ref in refs}


def _authors(ref: dict[str, Any]) -> str:
    names = []
    for person in ref["authors"]:
        if "family-names" in person:
            names.append(f"{person['family-names']}, {person['given-names']}".rstrip(", "))
        else:
            names.append(str(person["name"]))  # an entity, or BibTeX's "others"
    return " and ".join(names)


def _fields(ref: dict[str, Any]) -> list[tuple[str, str]]:
    fields = [("title", " ".join(str(ref["title"]).split())), ("author", _authors(ref))]
    if ref.get("collection-title"):
        fields.append(("booktitle", str(ref["collection-title"])))
    for key in ("journal", "volume"):
        if ref.get(key) is not None:
            fields.append((key, str(ref[key])))
    if ref.get("start") is not None:
        end = ref.get("end")
        fields.append(("pages", f"{ref['start']}--{end}" if end is not None else str(ref["start"])))
    fields.append(("year", str(ref["year"])))
    for ident in ref.get("identifiers") or []:
        value = str(ident.get("value", ""))
        if value.startswith("arXiv:"):
            fields += [("eprint", value.removeprefix("arXiv:")), ("archivePrefix", "arXiv")]
    if ref.get("notes"):
        fields.append(("note", str(ref["notes"])))
    return fields


def bibtex(key: str, ref: dict[str, Any]) -> str:
    """One reference as a BibTeX entry, its field names aligned."""
    fields = _fields(ref)
    width = max(len(name) for name, _ in fields)
    body = ",\n".join(f"  {name:<{width}} = {{{value}}}" for name, value in fields)
    return f"@{_ENTRY_TYPE.get(ref.get('type'), 'misc')}{{{key},\n{body}\n}}"


def bibtex_block(keys: Sequence[str], path: Path = CITATION_FILE) -> str:
    """The BibTeX entries of ``keys`` (CITATION.cff keys), in that order, separated by blank lines."""
    refs = references(path)
    missing = [k for k in keys if k not in refs]
    if missing:
        raise PublishError(f"{path} has no reference with abbreviation {', '.join(missing)}.")
    return "\n\n".join(bibtex(k, refs[k]) for k in keys)
