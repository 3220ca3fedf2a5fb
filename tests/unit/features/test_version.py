"""The feature code's version follows its code (churn.features.version)."""

from __future__ import annotations

from churn.features import version


def test_feature_code_digest_is_current() -> None:
    digest = version.source_digest()
    assert digest == version.SOURCE_DIGEST, (
        f"the feature code changed ({', '.join(version.SOURCES)}): if a fitted pipeline now holds "
        "or computes something else, bump FEATURE_CODE_VERSION in src/churn/features/version.py; "
        f"either way set SOURCE_DIGEST = {digest!r} there"
    )


def test_digest_ignores_docstrings_but_not_code(tmp_path, monkeypatch) -> None:
    package = tmp_path / "churn"
    for name in version.SOURCES:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text('"""doc"""\n\ndef f():\n    """doc"""\n    return 1\n')
    monkeypatch.setattr(version, "_PACKAGE", package)
    before = version.source_digest()
    (package / version.SOURCES[0]).write_text('"""other"""\n# note\ndef f():\n    return 1\n')
    assert version.source_digest() == before
    (package / version.SOURCES[0]).write_text("def f():\n    return 2\n")
    assert version.source_digest() != before
