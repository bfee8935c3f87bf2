"""The one page type of list responses: items, the cursor of the next page, and the stored documents skipped
because they no longer validate (reported, never served)."""
from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import Field

from ..domain.base import AppModel, InvalidDocument

T = TypeVar("T")
INVALID_DOC = "Stored documents on this page that no longer validate: skipped (not served); delete or replace them."


class PageOut(AppModel, Generic[T]):
    """Subclass it per item type (`class ProjectList(PageOut[ProjectOut])`): the subclass names the schema."""

    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null: last.")
    invalid: list[InvalidDocument] = Field(default_factory=list, description=INVALID_DOC)
