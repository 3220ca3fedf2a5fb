"""The feature code's version: recorded on every model, checked before a service swaps to one.

A fitted model carries instances of the feature pipeline's classes (``churn.features.pipeline``)
and its entries' models (``churn.config.features``); code that changes them can make a stored
model raise, or score differently, under the new code. ``FEATURE_CODE_VERSION`` names the code a
model was fitted with (``ChampionInfo.feature_code``): a service only swaps to a model of its own
feature code version.

``SOURCE_DIGEST`` is the digest of that code (:func:`source_digest`: the modules' syntax trees,
without docstrings or comments). ``tests/unit/features/test_version.py`` fails when the code
changes and the digest was not updated: bump ``FEATURE_CODE_VERSION`` when the change alters what
a fitted pipeline holds or computes, then set ``SOURCE_DIGEST`` to the digest the test prints.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

FEATURE_CODE_VERSION = 1
SOURCE_DIGEST = "da7421e64e12"

_PACKAGE = Path(__file__).resolve().parents[1]
# The modules whose classes a fitted model pickles or whose arithmetic it replays.
SOURCES = ("features/pipeline.py", "features/kinds.py", "config/features.py")


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            first = body[0].value if body and isinstance(body[0], ast.Expr) else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest() -> str:
    """12 hex digits of the SHA-256 of the feature modules' syntax trees (no docstrings)."""
    digest = hashlib.sha256()
    for name in SOURCES:
        tree = _without_docstrings(ast.parse((_PACKAGE / name).read_text(encoding="utf-8")))
        digest.update(name.encode())
        digest.update(ast.dump(tree, annotate_fields=False).encode())
    return digest.hexdigest()[:12]
