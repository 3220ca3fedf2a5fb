"""``params.yaml``'s ``ingest`` and ``dataset`` blocks written from a data set's profile
(``churn init-dataset``), keeping every other block and comment (round-trip YAML)."""

from __future__ import annotations

import io
import re
from typing import Any

from churn.config.features import FeatureParams, column_problem
from churn.config.params import DatasetConfig, Params, label_text
from churn.data.profiling import (
    CODE_MAX_LEVELS,
    RANGE_SLACK,
    DatasetProfile,
    ProfileError,
    suggest_segments,
)


def lineage_slug(stem: str) -> str:
    """A lineage name from a file's stem: lower case, runs of other characters as ``-``."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", stem.lower()).strip("-._")[:63].rstrip("-._")
    return slug or "dataset"


def render_params(
    text: str, profile: DatasetProfile, name: str | None = None
) -> tuple[str, list[str]]:
    """``params.yaml``'s text with the profile's ``ingest`` and ``dataset`` blocks written in.

    Every other block and comment is kept (round-trip YAML). ``features`` entries and
    ``train.monotone`` entries that name columns or levels this data set does not have are
    removed, each named in the returned notes. The result is validated as ``Params``.

    Returns:
        The new text, and what was removed from ``features`` and ``train.monotone``.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import SingleQuotedScalarString

    yaml = YAML()
    yaml.width = 4096  # comments explain decisions on one line each
    yaml.preserve_quotes = True
    yaml.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    doc = yaml.load(text)
    ds = profile.dataset

    ingest = doc.setdefault("ingest", CommentedMap())
    ingest["kind"] = "file"
    paths = profile.ingest.paths
    ingest["path"] = (
        _scalar(paths[0]) if len(paths) == 1 else _flow(CommentedSeq(map(_scalar, paths)))
    )
    ingest.yaml_add_eol_comment("# written by churn init-dataset", "path", column=24)
    if profile.ingest.sep is not None:
        position = list(ingest).index("path") + 1
        for offset, key in enumerate(("sep", "encoding", "decimal")):
            value = SingleQuotedScalarString(getattr(profile.ingest, key))
            if key in ingest:
                ingest[key] = value
            else:
                ingest.insert(position + offset, key, value)
        ingest.yaml_add_eol_comment("# detected in the file (CSV only)", "sep", column=24)
        if profile.encoding_how:
            how = f"# CSV text encoding: {profile.encoding_how} (init-dataset --encoding)"
            ingest.yaml_add_eol_comment(how, "encoding", column=24)

    block = CommentedMap()
    if name:
        block["name"] = _scalar(name)
    block["id_column"] = _scalar(ds.id_column)
    if ds.id_type != "string":
        block["id_type"] = ds.id_type
    block["label_column"] = _scalar(ds.label_column)
    block["positive_label"] = _level(ds.positive_label)
    block["negative_label"] = _level(ds.negative_label)
    block["time_column"] = None
    reasons = {c.name: c.why for c in profile.columns}
    if ds.id_column:
        reasons[ds.id_column] = "the id: hashed in the prediction log, never a feature"
    block["pii_columns"] = _listed(ds.pii_columns, reasons)
    block["ignore_columns"] = _listed(ds.ignore_columns, reasons)
    top = {
        "name": "the lineage: its own registered model, champion and monitoring (--name)",
        "id_column": profile.id_why,
        "id_type": "integers in the file: the API takes a number or a string of digits",
        "label_column": "given (--label)",
        "positive_label": profile.label_why,
        "time_column": "not inferred: set it to split by time (oldest rows train)",
    }
    for key, comment in top.items():
        if key in block:
            block.yaml_add_eol_comment("# " + comment, key, column=24)
    numeric = CommentedMap()
    widths = []
    for name, spec in ds.numeric.items():
        entry = _flow(CommentedMap({"min": _num(spec.min), "max": _num(spec.max)}))
        if spec.integer:
            entry["integer"] = True
        if spec.nullable:
            entry["nullable"] = True
        numeric[_scalar(name)] = entry
        widths.append(len(name) + len(_flow_text(entry)))
    categorical = CommentedMap()
    for name, levels in ds.categorical.items():
        categorical[_scalar(name)] = _flow(CommentedSeq([_level(level) for level in levels]))
        widths.append(len(name) + len(_flow_text(levels)))
    column = min(max(widths, default=0) + 8, 64)
    for name in ds.numeric:
        observed = next(c.summary for c in profile.columns if c.name == name).split(" (")[0]
        blanks = ", blanks allowed" if ds.numeric[name].nullable else ""
        numeric.yaml_add_eol_comment(f"# observed {observed}{blanks}", name, column=column)
    for name in ds.categorical:
        categorical.yaml_add_eol_comment("# " + reasons[name], name, column=column)
    block["numeric"] = numeric
    block["categorical"] = categorical
    rows = f"{profile.n_rows} rows"
    if profile.total_rows is not None:
        rows = (
            f"a seeded uniform sample of {profile.n_rows} of\n{profile.total_rows} rows "
            "(--sample-rows: levels only in other rows are quarantined)"
        )
    block.yaml_set_comment_before_after_key(
        "numeric",
        before=f"Written by `churn init-dataset` from {rows}. Ranges: the observed "
        f"range widened by\n{RANGE_SLACK:.0%} of its span (the minimum is 0 when no value is "
        "negative). Integers with at most\n"
        f"{CODE_MAX_LEVELS} distinct values are codes (categorical): move one to numeric if "
        "it is a quantity.",
        indent=2,
    )
    doc["dataset"] = block

    removed = _prune_features(doc, ds)
    out = io.StringIO()
    yaml.dump(doc, out)
    rendered = _blank_line_before_blocks(out.getvalue())
    import yaml as pyyaml

    # Never write a file that will not load, or that reads back other levels than the file's.
    loaded = Params.model_validate(pyyaml.safe_load(rendered)).dataset
    for key in ("id_column", "label_column", "positive_label", "negative_label", "categorical"):
        if getattr(loaded, key) != getattr(ds, key):
            raise ProfileError(
                f"dataset.{key} would not read back as profiled ({getattr(ds, key)!r}); "
                "rename the column or map its values in the file"
            )
    return rendered, removed


def _listed(names: list[str], reasons: dict[str, str]) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    seq = CommentedSeq([_scalar(name) for name in names])
    if not names:
        return _flow(seq)
    column = max(len(name) for name in names) + 8
    for i, name in enumerate(names):
        seq.yaml_add_eol_comment("# " + reasons.get(name, ""), i, column=column)
    return seq


def _scalar(value: Any) -> Any:
    """A name that a YAML 1.1 reader (PyYAML, DVC) would take for something else, quoted.

    ``No``, ``Yes``, ``on``, ``1.0`` or ``null`` written bare would come back as a boolean, a
    number or nothing, and ``@x``, ``!x``, ``*x`` or ``a: b`` would not load at all; ``"No"`` stays
    the name the file holds. Other names stay bare (``tenure``, not ``"tenure"``).
    """
    import yaml as pyyaml
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if not isinstance(value, str):
        return value
    try:
        plain = pyyaml.safe_load(f"k: {value}" if value else "k: ''") == {"k": value}
    except pyyaml.YAMLError:
        plain = False
    plain = plain and value.isprintable() and "#" not in value
    return value if plain else DoubleQuotedScalarString(value)


def _level(value: Any) -> Any:
    """A level or label value: text always double-quoted, so any string reads back as itself.

    Double quotes escape what YAML cannot hold bare (a leading ``@``, ``*``, ``&``, ``!``, ``%``,
    ``|``, ``>``, ``#``, quotes, control characters); ``"yes"``, ``"~"`` and ``"123"`` stay text.
    Numbers (integer codes) stay numbers.
    """
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    return DoubleQuotedScalarString(value) if isinstance(value, str) else value


def _flow_text(node: Any) -> str:
    """About how a flow-style map or list is written (to align the comments after it)."""
    if isinstance(node, dict):
        items = (f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in node.items())
        return "{" + ", ".join(items) + "}"
    return "[" + ", ".join(str(v) for v in node) + "]"


def _flow(node: Any) -> Any:
    node.fa.set_flow_style()
    return node


def _num(value: float | None) -> float | int | None:
    return int(value) if value is not None and float(value).is_integer() else value


def _prune_features(doc: Any, ds: DatasetConfig) -> list[str]:
    """Remove ``features``, ``train.monotone`` and ``fairness.segments`` entries that name what
    the data lacks (segments left empty get the profile's suggestion, ``suggest_segments``)."""
    from ruamel.yaml.comments import CommentedSeq

    removed = []
    features = doc.get("features") or {}
    # Every kind of the features block, read through its table (churn.config.features): an entry
    # is removed when a column it reads is not in this data set with the role its kind needs.
    parsed = FeatureParams.model_validate(_plain(features))
    for kind, name, entry in parsed.entries():
        if column_problem(kind, name, entry, ds.numeric, ds.feature_columns):
            del features[kind][name]
            removed.append(f"features.{kind}.{name} (uses {list(entry.reads())})")
    for kind in parsed.kinds():
        if kind in features and not features[kind]:
            _empty(features, kind)
    monotone = (doc.get("train") or {}).get("monotone") or {}
    for column, levels in list(monotone.items()):
        known = {label_text(level) for level in ds.categorical.get(column, [])}
        if column not in ds.categorical or not {label_text(lv) for lv in levels} <= known:
            del monotone[column]
            removed.append(f"train.monotone.{column}")
    if "train" in doc and "monotone" in doc["train"] and not monotone:
        _empty(doc["train"], "monotone")
    fairness = doc.get("fairness") or {}
    if "segments" in fairness:
        segments = [c for c in fairness["segments"] or [] if c in ds.categorical]
        removed += [
            f"fairness.segments {c}" for c in fairness["segments"] or [] if c not in segments
        ]
        segments = segments or suggest_segments(ds)
        fairness["segments"] = _flow(CommentedSeq(map(_scalar, segments)))
    return removed


def _plain(node: Any) -> Any:
    """A round-trip YAML node as plain lists, dicts and scalars (what the params models read)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _empty(parent: Any, key: str) -> None:
    """Set ``parent[key]`` to ``{}`` in flow style, keeping the key's comment on its line."""
    from ruamel.yaml.comments import CommentedMap

    token = parent.ca.items.get(key, [None, None, None, None])[2]
    comment = token.value.strip().splitlines()[0] if token is not None else None
    parent[key] = _flow(CommentedMap())
    parent.ca.items.pop(key, None)
    if comment:
        parent.yaml_add_eol_comment(comment, key, column=24)


def _blank_line_before_blocks(text: str) -> str:
    """One blank line before each top-level key, as the file is laid out by hand."""
    lines = text.splitlines()
    out: list[str] = []
    for line in lines:
        top = bool(line) and not line[0].isspace() and not line.startswith("#")
        if top and out and out[-1].strip() and not out[-1].startswith("#"):
            out.append("")
        out.append(line)
    return "\n".join(out) + "\n"
