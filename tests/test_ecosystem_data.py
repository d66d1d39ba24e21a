"""Hugging Face ``datasets`` as a data source (``kind: hf``): local parquet, JSON Lines, CSV and
``save_to_disk`` (arrow) data the test writes, column mapping, split slicing, a held-out split,
bad rows, and a Hub dataset id read offline from a cache the test builds."""

from __future__ import annotations

import json

import pytest

datasets = pytest.importorskip("datasets")

from brorl.errors import ConfigError, DataFormatError  # noqa: E402
from brorl.train import config as C  # noqa: E402
from brorl.train.data import _hf_items, read_hf  # noqa: E402

ROWS = [{"question": f"What is {i} + {i}?", "solution": str(2 * i), "level": i % 3} for i in range(20)]


def _src(path, **kw) -> C.DataSource:
    kw.setdefault("columns", {"prompt": "question", "answer": "solution"})
    return C.DataSource(kind="hf", path=str(path), **kw)


@pytest.fixture
def files(tmp_path):
    ds = datasets.Dataset.from_list(ROWS)
    out = {"parquet": tmp_path / "d.parquet", "jsonl": tmp_path / "d.jsonl", "csv": tmp_path / "d.csv",
           "arrow_dir": tmp_path / "saved"}
    ds.to_parquet(str(out["parquet"]))
    out["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    ds.to_csv(str(out["csv"]), index=False)
    datasets.DatasetDict({"train": ds.select(range(15)), "test": ds.select(range(15, 20))}).save_to_disk(str(out["arrow_dir"]))
    return out


@pytest.mark.parametrize("kind", ["parquet", "jsonl", "csv"])
def test_local_files_with_column_mapping(files, kind):
    rows, bad = read_hf(_src(files[kind]), "train")
    assert not bad and len(rows) == 20
    n, first = rows[3]
    assert n == 4 and first["prompt"] == "What is 3 + 3?" and str(first["answer"]) == "6"
    # unmapped columns stay, for custom reward functions
    assert first["level"] == 0
    train, ev, bad, name = _hf_items(_src(files[kind]), C.DataConfig(eval_size=3))
    assert (len(train), len(ev)) == (17, 3) and train[0]["domain"] == "math"
    assert train[3]["meta"]["answer"] == "6" and train[3]["meta"]["level"] == 0
    assert ev[-1]["user"] == "What is 19 + 19?"


def test_split_slicing_and_held_out_split(files):
    train, ev, _, _ = _hf_items(_src(files["parquet"], split="train[:50%]", eval_split="train[50%:]"),
                                C.DataConfig(eval_size=100))
    assert [t["user"] for t in train] == [r["question"] for r in ROWS[:10]]
    assert [e["user"] for e in ev] == [r["question"] for r in ROWS[10:]]
    # a save_to_disk directory with named splits (arrow files)
    train, ev, _, _ = _hf_items(_src(files["arrow_dir"], split="train", eval_split="test[:2]"), C.DataConfig(eval_size=100))
    assert len(train) == 15 and [e["user"] for e in ev] == [r["question"] for r in ROWS[15:17]]


def test_bad_rows_and_missing_columns_are_named(files, tmp_path):
    rows = ROWS[:5] + [{"question": "no answer here", "solution": None, "level": 0}]
    p = tmp_path / "bad.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got, bad = read_hf(_src(p), "train")
    assert len(got) == 5 and len(bad) == 1 and "line 6" in bad[0] and "'answer'" in bad[0]
    with pytest.raises(DataFormatError, match="line 6: field 'answer'"):
        read_hf(_src(p), "train", on_bad_row="raise")
    with pytest.raises(ConfigError, match="has no column 'problem'"):
        read_hf(_src(files["parquet"], columns={"prompt": "problem"}), "train")
    with pytest.raises(ConfigError, match="split 'validation'"):
        read_hf(_src(files["arrow_dir"]), "validation")


def test_config_validation_of_hf_sources(files):
    ok = C.load_config(overrides=[f"data.sources=[{{kind: hf, path: {files['parquet']}, columns: {{prompt: question, answer: solution}}}}]"])
    assert ok.data.sources[0].columns == {"prompt": "question", "answer": "solution"}
    with pytest.raises(ConfigError, match=r"data.sources\[0\].columns"):
        C.load_config(overrides=[f"data.sources=[{{kind: hf, path: {files['parquet']}, columns: {{question: prompt}}}}]"])
    with pytest.raises(ConfigError, match=r"data.sources\[0\].path"):
        C.load_config(overrides=["data.sources=[{kind: hf}]"])


def _hub_dataset_cache(hf_home, repo_id: str) -> None:
    """The Hugging Face hub cache layout of a dataset repo holding one parquet file, as a
    download would leave it (refs/main -> snapshot)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_home / "hub" / ("datasets--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit / "data"
    snap.mkdir(parents=True)
    datasets.Dataset.from_list(ROWS).to_parquet(str(snap / "train-00000-of-00001.parquet"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_hub_dataset_id_offline_from_cache_and_clear_error_when_missing(tmp_path, monkeypatch):
    import subprocess
    import sys

    hf_home = tmp_path / "hf"
    _hub_dataset_cache(hf_home, "someorg/sums")
    # a fresh interpreter: datasets reads HF_HOME/offline flags at import
    code = (
        "import sys; from brorl.train import config as C; from brorl.train.data import read_hf\n"
        "from brorl.errors import ConfigError\n"
        "src = C.DataSource(kind='hf', path='someorg/sums', columns={'prompt': 'question', 'answer': 'solution'})\n"
        "rows, bad = read_hf(src, 'train')\n"
        "print('ROWS', len(rows), rows[0][1]['prompt'])\n"
        "try:\n"
        "    read_hf(C.DataSource(kind='hf', path='someorg/not-cached'), 'train')\n"
        "except ConfigError as e:\n"
        "    print('ERR', e)\n"
    )
    env = dict(__import__("os").environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(tmp_path / "dc"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ROWS 20 What is 0 + 0?" in out.stdout, out.stdout + out.stderr[-2000:]
    err = [line for line in out.stdout.splitlines() if line.startswith("ERR")]
    assert err and "'someorg/not-cached'" in err[0] and "HF_HUB_OFFLINE=1" in err[0], out.stdout
