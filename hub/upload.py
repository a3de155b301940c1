"""Upload a repository folder to the Hugging Face Hub, refusing to overwrite a model of another dataset."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from hub_common import CARD_NAME, PublishError


def card_datasets(card_text: str) -> list[str]:
    """The ``datasets:`` of a model card's YAML metadata (empty when it has none or is not valid YAML)."""
    if not card_text.startswith("---"):
        return []
    try:
        meta = yaml.safe_load(card_text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return []
    datasets = meta.get("datasets") or []
    return [datasets] if isinstance(datasets, str) else [str(d) for d in datasets]


def upload_folder(
    folder: str | os.PathLike, repo_id: str, *, private: bool = False, force: bool = False
) -> str:
    """Upload ``folder`` to the model repository ``repo_id``; return the commit URL.

    Refuses (PublishError) when the repository's existing card names another dataset, unless ``force``.
    """
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    folder = Path(folder)
    ours = card_datasets((folder / CARD_NAME).read_text())
    api = HfApi()
    try:
        existing = Path(hf_hub_download(repo_id, CARD_NAME, repo_type="model")).read_text()
    except (RepositoryNotFoundError, EntryNotFoundError):
        existing = ""
    theirs = card_datasets(existing)
    if theirs and set(theirs) != set(ours) and not force:
        raise PublishError(
            f"{repo_id} already holds a model trained on {theirs}, not {ours}; publish under another "
            "--repo-id or pass --force to overwrite it."
        )
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="model",
        commit_message="Upload GalaxyAttnVGG weights and card",
    )
    return str(getattr(info, "commit_url", info))
