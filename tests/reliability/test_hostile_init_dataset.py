"""``churn init-dataset`` on hostile files (the real command, Typer's runner): levels YAML cannot
hold bare, legacy and UTF-16 encodings, an encoding nobody can tell, and a file larger than the
sample it is profiled on. Each writes a params.yaml the project's own loader reads back as the
file's values, or stops with a message naming the option to pass (no traceback).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churn.config.params import load_params
from churn.data.ingest import read_source
from pipelines.cli.commands import app

ROOT = Path(__file__).resolve().parents[2]

# Levels a bare YAML scalar would break, turn into something else, or refuse.
HOSTILE_LEVELS = [
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "*alias",
    "&anchor",
    "!tag",
    "!!python/object:os.system",
    "%YAML",
    "|block",
    ">folded",
    "#not a comment",
    ": colon",
    "a: b",
    "a #b",
    "'single'",
    '"double"',
    "yes",
    "No",
    "off",
    "null",
    "~",
    "true",
    "123",
    "1.5",
    "0x1F",
    "1e3",
    "-dash",
    "? question",
    "[list]",
    "{map}",
    " leading space",
    "trailing space ",
    "日本語",
    "Besançon",
    "emoji 🙂",
    "bell\x07",
    "next-line\x85",
]


def _init(project: Path, data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["-C", str(project), "init-dataset", str(data), "--label", "Churn", *args],
        prog_name="churn",
    )
    return result.exit_code, result.output


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    return root


def _frame(levels: list[str], n: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = np.array(levels * (n // len(levels) + 1))[:n]
    rng.shuffle(plan)
    return pd.DataFrame(
        {
            "cid": [f"C{i:05d}" for i in range(n)],
            "Plan": plan,
            "tenure": rng.integers(0, 72, n),
            "Churn": rng.choice(["Yes", "No"], n, p=[0.3, 0.7]),
        }
    )


def test_every_hostile_level_reads_back_equal_through_the_params_loader(project, tmp_path):
    """A level starting ``@``, ``*``, ``&``, ``!``, ``%``, ``|``, ``>``, ``#``, ``:``, quotes,
    ``yes``/``no``/``null``/``~``, numbers as text, unicode and control characters: written
    double-quoted, read back by ``load_params`` as the very string the file holds."""
    frame = _frame(HOSTILE_LEVELS)
    data = tmp_path / "hostile.csv"
    frame.to_csv(data, index=False)
    code, output = _init(project, data)
    assert code == 0, output
    assert "Traceback" not in output
    params = load_params(project / "params.yaml")
    expected = sorted(set(pd.read_csv(data, dtype=str, keep_default_na=False)["Plan"]))
    assert params.dataset.categorical["Plan"] == expected
    assert set(expected) == set(HOSTILE_LEVELS)
    # The ingest stage reads the file with what was written, levels unchanged.
    read = read_source(params.ingest, base_dir=project)
    assert set(read["Plan"]) <= set(params.dataset.categorical["Plan"])


@pytest.mark.parametrize(
    ("encoding", "written", "how"),
    [
        ("shift_jis", "cp932", "guessed by charset-normalizer"),
        ("utf-16", "utf-16", "byte-order mark"),
        ("utf-8-sig", "utf-8-sig", "byte-order mark"),
    ],
)
def test_a_legacy_or_bom_encoded_file_is_read_with_its_encoding(
    project, tmp_path, encoding, written, how
):
    """Shift-JIS (no mark: charset-normalizer), UTF-16 and UTF-8 with a byte-order mark: the
    encoding is printed and written to ``ingest.encoding``, and the Japanese levels read back
    as the frame holds them (not cp1252 mojibake, not a garbled header). The file is larger
    than the 64 KiB the detection reads, so a character is cut there."""
    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame(
        {
            "顧客ID": [f"J{i:05d}" for i in range(n)],
            "都市": rng.choice(["東京", "大阪", "名古屋", "札幌"], n),
            "契約": rng.choice(["月ごと", "一年", "二年"], n),
            "tenure": rng.integers(0, 72, n),
            "Churn": rng.choice(["はい", "いいえ"], n, p=[0.3, 0.7]),
        }
    )
    data = tmp_path / f"{encoding}.csv"
    frame.to_csv(data, index=False, encoding=encoding)
    assert data.stat().st_size > 65536
    code, output = _init(project, data)
    assert code == 0, output
    assert f"encoding {written} ({how}" in output
    params = load_params(project / "params.yaml")
    assert params.ingest.encoding == written
    assert params.dataset.categorical["都市"] == sorted(set(frame["都市"]))
    assert params.dataset.categorical["契約"] == sorted(set(frame["契約"]))
    assert params.dataset.positive_label == "はい" and params.dataset.id_column == "顧客ID"
    read = read_source(params.ingest, base_dir=project)
    assert read["都市"].tolist() == frame["都市"].tolist()


def test_an_encoding_nobody_can_tell_is_refused_naming_the_option(project, tmp_path):
    """A file whose rows were exported in five encodings (no encoding reads it as clean text):
    exit 2 naming ``--encoding``, params.yaml untouched; with ``--encoding`` the file is
    profiled and the encoding written."""
    noise = [
        "東京".encode(),
        "大阪".encode("shift_jis"),
        "Москва".encode("cp1251"),
        "Besançon".encode("cp1252"),
        "名古屋".encode("euc-jp"),
    ]
    rows = [b"cid,Plan,Churn"] + [
        b"C%04d,%s,%s" % (i, noise[i % 5], b"Yes" if i % 3 == 0 else b"No") for i in range(300)
    ]
    data = tmp_path / "noise.csv"
    data.write_bytes(b"\n".join(rows) + b"\n")
    before = (project / "params.yaml").read_bytes()
    code, output = _init(project, data)
    assert code == 2, output
    assert "cannot tell the encoding" in output and "--encoding" in output
    assert "Traceback" not in output
    assert (project / "params.yaml").read_bytes() == before
    code, output = _init(project, data, "--encoding", "latin-1")
    assert code == 0, output
    assert "encoding latin-1 (--encoding" in output
    params = load_params(project / "params.yaml")
    assert params.ingest.encoding == "latin-1"
    assert params.dataset.categorical["Plan"] == sorted(n.decode("latin-1") for n in set(noise))
    code, output = _init(project, data, "--encoding", "klingon")
    assert code == 2 and "--encoding 'klingon' is not an encoding" in output


def test_a_file_larger_than_the_sample_is_profiled_on_a_seeded_uniform_sample(project, tmp_path):
    """A file sorted by its label (the churners last): its first rows alone would hold one label
    value. With ``--sample-rows`` below its size, a seeded uniform sample of the whole file is
    profiled: both label values at their share, the sample stated in the output and in
    params.yaml's comment, a row-number column still recognised, and the same sample each run."""
    n = 6000
    rng = np.random.default_rng(1)
    churn = np.sort(rng.random(n) < 0.25)  # False first: every churner at the end
    frame = pd.DataFrame(
        {
            "RowNumber": np.arange(1, n + 1),
            "Plan": rng.choice(["A", "B", "C"], n),
            "Balance": rng.normal(1000, 300, n).round(2),
            "Churn": np.where(churn, "Yes", "No"),
        }
    )
    data = tmp_path / "sorted.csv"
    frame.to_csv(data, index=False)
    code, output = _init(project, data, "--sample-rows", "1000", "--dry-run")
    assert code == 0, output
    assert "1,000 of 6,000 rows (sampled)" in output
    assert "profiled a seeded uniform sample of 1,000 of 6,000 rows" in output
    share = float(re.search(r"minority: \d+/1000 \((\d+\.\d)%\)", output).group(1))
    assert 20 < share < 30  # the file's 25 %, not the head's 0 %
    assert re.search(r"RowNumber\s+ignored\s+integer\s+\S+\s+a row number", output)
    assert "a seeded uniform sample of 1000 of\n  # 6000 rows" in output
    again = _init(project, data, "--sample-rows", "1000", "--dry-run")[1]
    assert again == output
    code, output = _init(project, data, "--sample-rows", "0", "--dry-run")
    assert code == 0 and "6000 rows; id" in output and "sampled" not in output
