"""A user's string is data: a study name is never a path piece nor query text.

Every name from the probe (``../``, ``/``, spaces, ``;``, ``$(...)``, quotes, unicode, 300 characters) is
refused on entry with one line and exit status 2, before anything is written anywhere. Names made from a
file's stem are sanitised (and hashed when long), files named after a study stay inside their folder, and
every MLflow filter value is quoted by one helper that round-trips through a real store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

import reports.build
from core.errors import ConfigError
from core.home import PROJECT_ROOT
from core.names import STUDY_NAME_MAX, check_study_name, file_in, filter_value, study_name_from
from core.planted import make_planted
from core.prepare import DataOptions
from search.run import main, run_study
from search.settings import StudySettings

HOSTILE = [
    "../../README",
    "../../../x/pwn",
    "x/y",
    "/tmp/cftune-absolute",
    "two words",
    "a;b",
    "$(touch canary)",
    "a'b",
    'a"b',
    "é-unicode",
    "x" * 300,
    "",
    ".hidden",
    "-dash-first",
]
#: folders of the project whose files tools rewrite on their own (caches, the virtualenv)
NOT_WATCHED = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def snapshot(root: Path) -> dict[str, int]:
    """Every file under ``root`` (outside tool caches) with its modification time in nanoseconds."""
    files: dict[str, int] = {}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [s for s in subfolders if s not in NOT_WATCHED and not s.endswith(".egg-info")]
        for name in names:
            path = Path(folder, name)
            files[str(path)] = path.lstat().st_mtime_ns
    return files


@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: repr(n[:20]))
def test_a_hostile_study_name_is_one_line_exit_2_and_writes_nothing(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work" / "deep" / "er"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    before = snapshot(PROJECT_ROOT), snapshot(tmp_path)
    argv = ["--model", "als", f"--study-name={name}", "--storage", f"sqlite:///{tmp_path}/optuna.db"]
    assert main([*argv, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a valid study name" in err and "Traceback" not in err
    assert (snapshot(PROJECT_ROOT), snapshot(tmp_path)) == before
    assert not (work / "canary").exists() and not Path("/tmp/cftune-absolute.html").exists()


@pytest.mark.parametrize("name", ["ml-100k", "bpr-amazon_beauty-tpe-1a2b3c4d", "A.1", "x" * STUDY_NAME_MAX])
def test_names_inside_the_rule_are_kept_as_they_are(name: str) -> None:
    assert check_study_name(name) == name
    assert StudySettings(model="als", study_name=name).study_name == name


@pytest.mark.parametrize("stem", HOSTILE, ids=lambda n: repr(n[:20]))
def test_a_name_derived_from_any_stem_follows_the_rule(stem: str) -> None:
    derived = study_name_from("als", stem, "grid", "1a2b3c4d")
    assert check_study_name(derived) == derived and len(derived) <= STUDY_NAME_MAX
    assert derived == study_name_from("als", stem, "grid", "1a2b3c4d")  # the same study resumes


def test_long_derived_names_stay_distinct() -> None:
    first, second = study_name_from("a" * 200 + "1"), study_name_from("a" * 200 + "2")
    assert len(first) == len(second) == STUDY_NAME_MAX and first != second


@pytest.mark.parametrize("name", ["../x", "../../README.md", "/etc/passwd", "a/../../b", ".."])
def test_a_file_named_after_a_string_stays_inside_its_folder(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outside"):
        file_in(tmp_path, name)


def test_a_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "study.html").symlink_to(tmp_path / "elsewhere.html")
    with pytest.raises(ConfigError, match="outside"):
        file_in(tmp_path / "out", "study.html")
    assert file_in(tmp_path / "out", "other.html") == (tmp_path / "out" / "other.html").resolve()


def test_an_old_record_with_any_name_is_reported_in_reports_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Records written before names were checked may hold anything: the default report path sanitises it."""
    seen: list[Path] = []

    def stop_after_path(record: object, storage: object, tracking_uri: object) -> None:
        raise RuntimeError("path chosen")

    def recorded_file_in(folder: Path, name: str) -> Path:
        seen.append(file_in(folder, name))
        return seen[-1]

    monkeypatch.setattr(reports.build, "load_results", stop_after_path)
    monkeypatch.setattr(reports.build, "file_in", recorded_file_in)

    class OldRecord:
        study_name = "../../README"

    with pytest.raises(RuntimeError, match="path chosen"):
        reports.build.build_report(OldRecord(), storage="sqlite://")  # type: ignore[arg-type]
    assert seen and seen[0].parent == reports.build.OUT_DIR.resolve() and seen[0].name == "README.html"


VALUES = ["plain", "a'b", 'a"b', "two words; $(touch canary)", "é-ü-名前", "x" * 300, "a' OR '1'='1"]


def test_every_quoted_filter_value_finds_exactly_its_run(tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("hostile", artifact_location=str(tmp_path / "artifacts"))
    runs = {}
    for value in VALUES:
        run = client.create_run(experiment, tags={"study_name": value})
        runs[value] = run.info.run_id
    for value in VALUES:
        found = client.search_runs([experiment], f"tags.study_name = {filter_value(value)}")
        assert [r.info.run_id for r in found] == [runs[value]], value


def test_a_value_with_both_quotes_is_a_clear_error_not_a_broken_query() -> None:
    with pytest.raises(ConfigError, match="both kinds of quote"):
        filter_value("""a'b"c""")


def test_a_study_on_a_file_with_a_hostile_name_runs_and_stays_in_its_stores(tmp_path: Path) -> None:
    """The derived study name of ``<hostile stem>.csv`` is valid; nothing is written beside the data."""
    folder = tmp_path / "data; $(touch canary)"
    folder.mkdir()
    data = folder / 'it\'s a "log" $(touch canary); é.csv'
    make_planted(n_users=120, n_items=60, rank=4, density=0.15, seed=3).to_frame().to_csv(data, index=False)
    space = tmp_path / "grid.yaml"
    space.write_text("model: als\nfixed: {iterations: 2}\ngrid:\n  factors: [4]\n")
    before = snapshot(PROJECT_ROOT)
    record = run_study(
        StudySettings(
            model="als",
            data=DataOptions(data=str(data)),
            space=str(space),
            storage=f"sqlite:///{tmp_path}/stores/optuna.db",
            tracking_uri=f"sqlite:///{tmp_path}/stores/mlflow.db",
            quiet=True,
            report=False,
        )
    )
    assert check_study_name(record.study_name) == record.study_name
    assert record.registry is not None and record.registry.version == "1"
    assert sorted(p.name for p in folder.iterdir()) == [data.name]
    assert not list(tmp_path.rglob("canary")) and snapshot(PROJECT_ROOT) == before
