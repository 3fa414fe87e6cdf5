"""`sqnn report`: the HTML is one self-contained page with every section, every user string
escaped; the Markdown's tables are well formed; gates exit 1 after the report is written;
outputs are checked like every other output.

One tiny bundle and one tiny sweep are made per module, on a table whose group and column
names hold markup (<, &, quotes, |, $), so that every test reads a hostile report.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from sqnn_cli import document
from sqnn_cli.cli import app

from .conftest import TINY_MODEL, synthetic_table

runner = CliRunner()
HOSTILE_GROUP = '<b>&"x"'
PIPE_GROUP = "a|b $x$ [y](http://example.com)"
HOSTILE_COLUMN = "col<our>&"
SECTIONS = ("data", "model", "evaluation", "gates", "caveats")


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def hostile_table(seed: int):
    frame = synthetic_table(n=400, seed=seed)
    frame["group"] = frame["group"].map({"a": HOSTILE_GROUP, "b": PIPE_GROUP})
    return frame.rename(columns={"colour": HOSTILE_COLUMN})


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny bundle trained on one table, a second table to report on, a tiny sweep."""
    root = tmp_path_factory.mktemp("report")
    train, test = root / "train.csv", root / "test.csv"
    hostile_table(0).to_csv(train, index=False)
    hostile_table(1).to_csv(test, index=False)
    trained = invoke("train", train, "-s", "group", "--out", root / "model", *TINY_MODEL)
    assert trained.exit_code == 0, trained.output
    swept = invoke("sweep-gamma", train, "-s", "group", "--gammas", "0,0.5", "--folds", "2", "--out", root / "sweep", *TINY_MODEL)
    assert swept.exit_code == 0, swept.output
    return root


@pytest.fixture(scope="module")
def full_report(made):
    """Every section: audit, sweep, intervals and a gate that fails."""
    html_path, md_path = made / "full.html", made / "full.md"
    result = invoke(
        "report", made / "model", made / "test.csv", "--sweep", made / "sweep", "--audit", "--trees", "5", "--ci", "0.9",
        "--bootstrap", "50", "--max-dp", "0", "--min-auc", "0", "--out", html_path, "--markdown", md_path,
    )  # fmt: skip
    return result, html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")


class Page(HTMLParser):
    """Every start tag with its attributes, the ids, and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def test_html_is_one_self_contained_page(full_report):
    result, html_text, _ = full_report
    page = parse(html_text)
    names = [tag for tag, _ in page.tags]
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(names)
    for _, attrs in page.tags:
        for key in ("src", "href", "action", "srcset"):
            value = attrs.get(key) or ""
            assert not re.match(r"\s*(https?:)?//", value, re.IGNORECASE), (key, value)
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 2  # the per-group rates and the sweep's trade-off curve
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "url(" not in html_text  # no stylesheet reaches out either
    ids = {attrs.get("id") for _, attrs in page.tags}
    assert set(SECTIONS) | {"audit", "sweep"} <= ids


BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium here (apt-get install chromium-headless-shell)")
def test_a_real_browser_renders_the_page_without_the_network(full_report, made, tmp_path):
    """Chromium, its proxy a dead port, logs every address the page asks for: none."""
    net_log = tmp_path / "net.json"
    rendered = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=http://127.0.0.1:9",
         f"--log-net-log={net_log}", "--dump-dom", (made / "full.html").as_uri()],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "What these figures do not show" in rendered.stdout
    events = json.loads(net_log.read_text())["events"]
    assert not {event["params"]["url"] for event in events if "url" in event.get("params", {})}


def test_every_user_string_is_escaped(full_report):
    _, html_text, md_text = full_report
    page = parse(html_text)
    assert "b" not in [tag for tag, _ in page.tags]  # the group name opened no tag
    text = "".join(page.text)
    for name in (HOSTILE_GROUP, PIPE_GROUP, HOSTILE_COLUMN):
        assert name in text
    assert "&lt;b&gt;&amp;&quot;x&quot;" in html_text
    rendered = MarkdownIt("commonmark").enable("table").render(md_text)
    assert "<b>" not in rendered and "<a " not in rendered  # no tag, no link from a group name
    assert "&lt;b&gt;&amp;&quot;x&quot;" in rendered
    assert PIPE_GROUP in "".join(parse(rendered).text)


def test_markdown_tables_are_well_formed(full_report):
    _, _, md_text = full_report
    tables, current = [], []
    for line in md_text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    assert len(tables) >= 8
    for table in tables:
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
        assert len(widths) == 1, table
        assert re.fullmatch(r"\|( --- \|)+", table[1]), table[1]
    # and a real Markdown parser sees the same tables, each row as wide as its header
    page = parse(MarkdownIt("commonmark").enable("table").render(md_text))
    assert [tag for tag, _ in page.tags].count("table") == len(tables)


def test_the_sections_say_what_was_measured(full_report):
    result, html_text, md_text = full_report
    text = "".join(parse(html_text).text)
    for fragment in (
        "Data and roles", "Model", "Evaluation", "Gates", "Representation audit", "Trade-off curve",
        "What these figures do not show", "90% interval", "demographic parity ratio", "leakage AUC",
        "Group fairness is not individual fairness", "decision threshold",
    ):  # fmt: skip
        assert fragment in text, fragment
    assert "## Trade" in md_text and "in the HTML report" in md_text


def test_a_failed_gate_exits_1_after_the_report_is_written(full_report):
    result, html_text, md_text = full_report
    assert result.exit_code == 1, result.output
    assert "gate --max-dp" in result.stderr and "FAILED" in result.stderr
    assert "FAILED: 1 of 2 gate(s) breached (--max-dp)" in html_text
    assert "**FAILED: 1 of 2 gate(s) breached (--max-dp)**" in md_text
    assert 'class="failed"' in html_text


def test_passing_gates_exit_0_and_markdown_goes_to_stdout(made):
    result = invoke("report", made / "model", made / "test.csv", "--min-auc", "0", "--format", "md", "--out", "-")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# sqnn report: model on test.csv\n\n**passed: all 1 gate(s) met**")
    assert "The representation was not audited" in result.stdout
    assert not (Path.cwd() / "report.md").exists()


def test_outputs_are_checked_before_any_work(made):
    data = made / "test.csv"
    before = data.read_bytes()
    for out in (data, made / "model" / "meta.json", made / "sweep" / "summary.json"):
        result = invoke("report", made / "model", data, "--sweep", made / "sweep", "--out", out, "--overwrite")
        assert result.exit_code == 2, result.output
        assert "is the input" in result.stderr
    assert data.read_bytes() == before
    existing = made / "existing.html"
    existing.write_text("keep me")
    refused = invoke("report", made / "model", data, "--out", existing)
    assert refused.exit_code == 2 and "already exists; pass --overwrite" in refused.stderr
    assert existing.read_text() == "keep me"
    replaced = invoke("report", made / "model", data, "--out", existing, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert existing.read_text().startswith("<!DOCTYPE html>")
    assert not [p for p in made.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--out", "r.md"], "ends in .md but --format is html"),
        (["--format", "md", "--out", "r.html"], "ends in .html but --format is md"),
        (["--out", "same.md", "--format", "md", "--markdown", "same.md"], "name the same file"),
        (["--out", "-", "--markdown", "-"], "name the same file"),
        (["--bootstrap", "10"], "add --ci 0.95"),
        (["--gate-on", "bound", "--max-dp", "0.1"], "add --ci 0.95"),
        (["--trees", "5"], "--trees sets the forests of --audit; add --audit"),
        (["--seed", "3"], "--seed seeds --ci's resamples and --audit's forests"),
    ],
)
def test_contradictory_options_are_refused(made, tmp_path, options, fragment):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        result = invoke("report", made / "model", made / "test.csv", *options)
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_directory_that_holds_no_sweep_is_refused(made, tmp_path):
    result = invoke("report", made / "model", made / "test.csv", "--sweep", tmp_path, "--out", tmp_path / "r.html")
    assert result.exit_code == 2 and "holds no summary.json" in result.stderr
    for content in ("{", '{"gammas": [{"gamma": "x", "auc_mean": 1}]}', "[]", '{"gammas": [{"gamma": 0.1, "auc_mean": NaN}]}'):
        (tmp_path / "summary.json").write_text(content)
        result = invoke("report", made / "model", made / "test.csv", "--sweep", tmp_path, "--out", tmp_path / "r.html")
        assert result.exit_code == 2, (content, result.output)
        assert "is not a summary sqnn sweep-gamma wrote" in result.stderr
        assert "Traceback" not in result.output
    assert not (tmp_path / "r.html").exists()


def test_a_sweep_summary_reads_back_as_written(made):
    record = document.read_sweep(made / "sweep")
    written = json.loads((made / "sweep" / "summary.json").read_text())
    assert record.summary.to_dict() == written
    assert record.name == "sweep" and record.data_sha256 is not None


def test_report_on_the_training_table_says_it_is_in_sample_and_warns(made):
    result = invoke("report", made / "model", made / "train.csv", "--min-group-size", "1000", "--format", "md", "--out", "-")
    assert result.exit_code == 0, result.output
    assert "is the very table the model was trained on" in result.stdout
    warnings = result.stdout.split("## Warnings", 1)[1].split("##", 1)[0]
    assert "have fewer than 1000 rows" in warnings
