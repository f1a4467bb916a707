"""The CLI for people, run as the installed console script: `index`, `search`, `search --image`, `jobs`, `indexes`.

Every command runs as a subprocess on the local backend with the tiny CLIP test model, in plain (rich) and
`--json` form. `COLUMNS=200` gives rich a wide "terminal" so table rows are not folded; without a TTY rich
draws no live progress, so `NOVA_MCP_PROGRESS=1` is what makes `index` render its bar (on stderr).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.media import BLUE, RED, make_image

SCRIPT = str(Path(sys.executable).parent / "nova-multimodal-mcp")
BAR = "━"  # rich's bar glyph
CAR = "the red car on the road [/b] and [red] stay literal"


class Cli:
    """Runs the console script against one data dir and one folder of documents."""

    def __init__(self, root: Path, tiny_model: Path) -> None:
        self.root = root
        self.docs = root / "docs"
        self.data = root / "data"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NOVA_MCP_")}
        self.env.update(
            NOVA_MCP_DATA_DIR=str(self.data),
            NOVA_MCP_LOCAL_MODEL_PATH=str(tiny_model),
            NOVA_MCP_ALLOWED_ROOTS=str(root),
            HF_HUB_OFFLINE="1",
            COLUMNS="200",
        )

    def __call__(self, *args: str, progress: bool = False) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "NOVA_MCP_PROGRESS": "1"} if progress else self.env
        return subprocess.run([SCRIPT, *args], env=env, cwd=self.root, capture_output=True, text=True, timeout=60)

    def json(self, *args: str) -> object:
        proc = self(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)  # stdout is exactly one JSON document


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Cli:
    runner = Cli(tmp_path_factory.mktemp("cli"), tiny_model)
    runner.docs.mkdir()
    (runner.docs / "grass.txt").write_text("green grass in spring")
    (runner.docs / "car.md").write_text(CAR)
    make_image(runner.docs / "red.png", color=RED)
    make_image(runner.docs / "blue.png", color=BLUE)
    return runner


@pytest.fixture(scope="module")
def first_index(cli: Cli) -> subprocess.CompletedProcess[str]:
    """`nova-multimodal-mcp index docs --index docs` with the progress bar forced on."""
    return cli("index", str(cli.docs), "--index", "docs", progress=True)


def test_index_prints_a_summary_and_renders_the_progress_bar_on_stderr(
    first_index: subprocess.CompletedProcess[str],
) -> None:
    assert first_index.returncode == 0, first_index.stderr
    assert first_index.stdout.splitlines()[0] == (
        "index docs: 4 source(s) indexed (4 segments), 0 unchanged, 0 failed, 0 async job(s)"
    )
    assert re.search(f"{BAR}+ 4/4 ", first_index.stderr), first_index.stderr  # the completed bar, N of N
    assert BAR not in first_index.stdout


def test_reindex_skips_unchanged_sources_and_draws_no_bar_without_a_tty(
    cli: Cli, first_index: subprocess.CompletedProcess[str]
) -> None:
    again = cli("index", str(cli.docs), "--index", "docs")
    assert again.returncode == 0, again.stderr
    assert "0 source(s) indexed (0 segments), 4 unchanged, 0 failed" in again.stdout
    assert BAR not in again.stderr


def test_index_json_reports_indexed_and_failed_sources(cli: Cli) -> None:
    extra = cli.root / "extra.txt"
    extra.write_text("blue sky over the sea")
    report = cli.json("index", str(extra), "/etc/hostname", "--index", "extra", "--metadata", '{"team": "cli"}')
    assert report["index"] == "extra"
    assert (report["indexed_sources"], report["indexed_segments"], report["skipped_unchanged"]) == (1, 1, 0)
    [failure] = report["failed"]
    assert failure["source"] == "/etc/hostname" and "outside the allowed roots" in failure["reason"]
    hits = cli.json("search", "blue sky", "--index", "extra")["hits"]
    assert hits[0]["metadata"] == {"team": "cli"}


def test_search_text_table(cli: Cli, first_index: subprocess.CompletedProcess[str]) -> None:
    """One row per hit; indexed text is data, so `[/b]` and `[red]` in a snippet print literally (they crashed rich)."""
    proc = cli("search", "car on the road", "--index", "docs", "--top-k", "1")
    assert proc.returncode == 0, proc.stderr
    assert "1 hit(s) in 'docs' (GENERIC_RETRIEVAL)" in proc.stdout
    first = next(line for line in proc.stdout.splitlines() if line.startswith("│ 1 "))
    cells = [c.strip() for c in first.strip("│").split("│")]
    assert cells[2:] == ["text", str(cli.docs / "car.md"), "chars 0-51", CAR]


def test_search_text_json(cli: Cli, first_index: subprocess.CompletedProcess[str]) -> None:
    result = cli.json("search", "green grass", "--index", "docs", "--top-k", "4")
    hits = result["hits"]
    assert result["index"] == "docs" and [h["rank"] for h in hits] == [1, 2, 3, 4]
    assert (hits[0]["source"], hits[0]["modality"]) == (str(cli.docs / "grass.txt"), "text")
    assert (hits[0]["char_start"], hits[0]["char_end"], hits[0]["snippet"]) == (0, 21, "green grass in spring")
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_search_by_image(cli: Cli, first_index: subprocess.CompletedProcess[str]) -> None:
    image = str(cli.docs / "red.png")
    hits = cli.json("search", "--image", image, "--index", "docs")["hits"]
    assert hits[0]["source"] == image and hits[0]["modality"] == "image" and hits[0]["score"] > 0.99
    assert hits[1]["source"] == str(cli.docs / "car.md")  # the red text beats grass and the blue image
    proc = cli("search", "--image", image, "--index", "docs", "--top-k", "1")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"│ 1 │ 1\.000 +│ image +│ " + re.escape(image), proc.stdout), proc.stdout


def test_search_wants_exactly_one_of_query_and_image(cli: Cli) -> None:
    proc = cli("search", "red", "--image", str(cli.docs / "red.png"), "--index", "docs")
    assert proc.returncode == 2 and "exactly one" in proc.stderr and proc.stdout == ""


def test_jobs_finishes_a_job_a_stopped_server_left_behind(cli: Cli) -> None:
    """A background index job whose server stopped before running it is completed by `nova-multimodal-mcp jobs`."""
    from nova_mcp_server.jobstore import JobStore
    from nova_mcp_server.services.jobs import INDEX_JOB

    cli.data.mkdir(exist_ok=True)
    payload = {"items": [{"text": "purple flowers in the garden"}], "index": "from-job", "options": {}}
    job_id = JobStore(cli.data / "jobs.sqlite").create(
        kind=INDEX_JOB, index="from-job", source="inline text", payload=payload
    )

    jobs = cli.json("jobs")
    [job] = [j for j in jobs if j["id"] == job_id]
    assert (job["status"], job["index"], job["vectors_written"]) == ("completed", "from-job", 1)

    table = cli("jobs", job_id)
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if job_id in line)
    assert [c.strip() for c in row.strip("│").split("│")][:4] == [job_id, "completed", "from-job", "inline text"]

    missing = cli("jobs", "job-nope")
    assert missing.returncode == 1 and "No job 'job-nope'" in missing.stderr


def test_indexes_table_and_json(cli: Cli, first_index: subprocess.CompletedProcess[str]) -> None:
    listed = {i["name"]: i for i in cli.json("indexes")}
    docs = listed["docs"]
    assert (docs["vector_count"], docs["dimension"], docs["provider"], docs["model"]) == (
        4,
        16,
        "local",
        "tiny-clip-test",
    )
    assert docs["uri"] == "nova://indexes/docs"
    proc = cli("indexes")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"│ docs +│ 4 +│ 16 +│ local/tiny-clip-test +│", proc.stdout), proc.stdout


def test_the_old_script_name_is_an_alias_of_the_new_one() -> None:
    """`nova-multimodal-mcp` (the distribution's name, what `uvx` runs) and `nova-mcp-server` are the same CLI."""
    alias = str(Path(SCRIPT).with_name("nova-mcp-server"))
    new, old = (subprocess.run([s, "--version"], capture_output=True, text=True, timeout=60) for s in (SCRIPT, alias))
    assert new.returncode == old.returncode == 0, new.stderr + old.stderr
    assert new.stdout == old.stdout and new.stdout.startswith("nova-multimodal-mcp ")


def test_doctor_on_the_local_backend(cli: Cli) -> None:
    """`doctor` needs no core: it prints one line per check and exits 0 when nothing fails."""
    proc = cli("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("doctor (local backend): all good")
    assert "[PASS] local model:" in proc.stdout and "[SKIP] identity: local backend" in proc.stdout
    report = cli.json("doctor")
    assert isinstance(report, dict) and report["ok"] is True
    assert {c["name"]: c["status"] for c in report["checks"]}["allowed folders"] == "pass"


def test_doctor_exits_1_and_names_the_fix(cli: Cli) -> None:
    env = {**cli.env, "NOVA_MCP_ALLOWED_ROOTS": str(cli.root / "does-not-exist")}
    proc = subprocess.run([SCRIPT, "doctor"], env=env, cwd=cli.root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "[FAIL] allowed folders: not folders:" in proc.stdout and "fix: Fix NOVA_MCP_ALLOWED_ROOTS." in proc.stdout


def test_download_model_with_a_model_folder_has_nothing_to_fetch(cli: Cli) -> None:
    proc = cli("download-model")
    assert proc.returncode == 0, proc.stderr
    assert "uses the model folder" in proc.stdout
    status = cli.json("download-model")
    assert isinstance(status, dict) and (status["state"], status["source"]) == ("ready", "model folder")


def test_download_model_with_speech_offline_says_so(cli: Cli) -> None:
    """`--with-speech` also readies the audio extra's speech model; offline and uncached, that part fails at once."""
    proc = cli("download-model", "--with-speech")
    assert proc.returncode == 1
    assert "uses the model folder" in proc.stdout  # the CLIP model is still reported ready
    assert "speech model tiny.en:" in proc.stderr


def test_index_dry_run_estimates_and_writes_nothing(cli: Cli) -> None:
    doc = cli.root / "plan.txt"
    doc.write_text("plans for the garden " * 50)
    report = cli.json("index", str(doc), "--index", "planned", "--dry-run")
    assert report["dry_run"] is True and report["indexed_sources"] == 0
    assert report["estimate"]["counts"]["sources"] == 1 and report["estimate"]["counts"]["segments"] >= 1
    assert report["estimate"]["backend"] == "local" and report["estimate"]["total_once_usd"] == 0
    listed = cli("indexes")
    assert listed.returncode == 0 and "planned" not in listed.stdout
    human = cli("index", str(doc), "--index", "planned", "--dry-run")
    assert human.returncode == 0 and "nothing embedded or written" in human.stdout


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"NOVA_MCP_CONCURRENCY": "abc"}, ("NOVA_MCP_CONCURRENCY", "--concurrency", "an integer", "'abc'")),
        ({"NOVA_MCP_VECTOR_BUCKET": "Bad_Bucket!"}, ("NOVA_MCP_VECTOR_BUCKET", "--vector-bucket", "Bad_Bucket!")),
    ],
)
def test_an_invalid_setting_names_its_variable(
    env: dict[str, str], names: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value the settings refuse says which variable (or flag) holds it, so the user knows what to fix."""
    from nova_mcp_server.cli import main

    for key in [k for k in os.environ if k.startswith("NOVA_MCP_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["serve"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout belongs to the protocol
    for name in names:
        assert name in captured.err, captured.err
    assert "Value error" not in captured.err
