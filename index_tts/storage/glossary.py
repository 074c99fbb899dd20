"""Custom term pronunciations: glossary.json, {term: {"zh": reading, "en": reading}}."""

from __future__ import annotations

import unicodedata
from typing import Any

from index_tts.storage.base import JsonDocumentStore

GLOSSARY_FILE = "glossary.json"
GLOSSARY_FORMAT_VERSION = 1
MAX_GLOSSARY_CHARS = 100
MAX_GLOSSARY_TERMS = 1000

Glossary = dict[str, dict[str, str]]


def _check_glossary_text(value: object, field_name: str, required: bool) -> str:
    """Strip and check one term or reading; raise ValueError starting with the field's name."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValueError(f"{field_name} must be text, got {type(value).__name__}")
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        if required:
            raise ValueError(f"{field_name} is empty")
        return value
    if len(value) > MAX_GLOSSARY_CHARS:
        raise ValueError(f"{field_name} is too long ({len(value)} characters; at most {MAX_GLOSSARY_CHARS})")
    # Control characters (newlines, tabs, NUL...) would change how the text is segmented or break
    # the table; they have no place in a word or its reading.
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise ValueError(f"{field_name} must not contain control characters")
    return value


def _by_term(glossary: Glossary) -> Glossary:
    return dict(sorted(glossary.items(), key=lambda kv: kv[0].casefold()))


class GlossaryStore(JsonDocumentStore):
    """A term has a Chinese reading (used on the Chinese text path), an English reading (English
    path), or both; a missing reading leaves the term as written on that path. Terms match
    case-insensitively, so adding "gpu" replaces an existing "GPU"."""

    WHAT = "glossary"
    KEY = "terms"
    FORMAT_VERSION = GLOSSARY_FORMAT_VERSION

    def _parse(self, document: Any) -> Glossary:
        # Also reads a bare {term: readings} object, the shape a user is likely to write by hand.
        terms = document["terms"] if isinstance(document, dict) and "terms" in document else document
        if not isinstance(terms, dict):
            raise ValueError("expected an object of terms")
        glossary: Glossary = {}
        for term, readings in terms.items():
            if isinstance(readings, str):  # {term: reading}: one reading for both paths
                readings = {"zh": readings, "en": readings}
            glossary.update(self._entry(term, readings.get("zh"), readings.get("en")))
        return _by_term(glossary)

    def load(self) -> Glossary:
        """{term: {"zh": reading, "en": reading}} with only non-empty readings, sorted by term."""
        return self._read({})

    def list(self) -> list[tuple[str, str, str]]:
        """(term, zh reading, en reading) rows for a table."""
        return [(term, r.get("zh", ""), r.get("en", "")) for term, r in self.load().items()]

    def add(self, term: str, zh: str | None = None, en: str | None = None) -> tuple[Glossary, bool]:
        """Add or replace a term; returns the new glossary and whether a term was replaced."""
        entry = self._entry(term, zh, en)
        (term,) = entry
        with self._lock:
            glossary = self.load()
            same = [t for t in glossary if t.casefold() == term.casefold()]
            for t in same:
                del glossary[t]
            if not same and len(glossary) >= MAX_GLOSSARY_TERMS:
                raise ValueError(f"term: the glossary is full ({MAX_GLOSSARY_TERMS} terms)")
            glossary.update(entry)
            self._write(_by_term(glossary))
        return self.load(), bool(same)

    def remove(self, term: str) -> bool:
        """Remove a term (case-insensitively); False when it was not there."""
        if not isinstance(term, str) or not term.strip():
            return False
        key = unicodedata.normalize("NFC", term).strip().casefold()
        with self._lock:
            glossary = self.load()
            kept = {t: r for t, r in glossary.items() if t.casefold() != key}
            if len(kept) == len(glossary):
                return False
            self._write(kept)
        return True

    @staticmethod
    def _entry(term: object, zh: object, en: object) -> Glossary:
        term = _check_glossary_text(term, "term", required=True)
        readings = {"zh": _check_glossary_text(zh, "zh", required=False), "en": _check_glossary_text(en, "en", required=False)}
        readings = {lang: r for lang, r in readings.items() if r}
        if not readings:
            raise ValueError("zh: give a Chinese or an English reading (or both)")
        return {term: readings}
