"""The README as a user's guide and docs/ for the rest: short, linked, every link and anchor leading somewhere."""
import importlib.util
import re
import shlex

import pytest

from tests.conftest import ROOT, doc_section

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose(markdown):
    """Markdown without its code blocks and inline code, where brackets and hashes are not links or headings."""
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", markdown)


def anchors(path):
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens, and -1, -2, ...
    after a repeated one."""
    seen, result = {}, set()
    for heading in re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", path.read_text(),
                                                   flags=re.MULTILINE | re.DOTALL), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(path):
    """The relative links and pictures of a page: [(target file, anchor or '')]."""
    found = []
    for target in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", prose(path.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        found.append((path if not file else (path.parent / file).resolve(), anchor))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_leads_somewhere(page):
    assert links(page) or page.name != "README.md"
    for target, anchor in links(page):
        assert target.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert target.suffix == ".md" and anchor in anchors(target), f"{page.name}: no #{anchor} in {target.name}"


def test_every_page_of_docs_is_linked_from_the_readme():
    linked = {target for target, _ in links(ROOT / "README.md")}
    for page in PAGES[1:]:
        assert page in linked, f"README.md does not link {page.relative_to(ROOT)}"


def test_the_readme_is_short_and_starts_with_install_and_run():
    text = (ROOT / "README.md").read_text()
    assert len(text) <= 20_000, f"README.md has {len(text)} characters"
    first_screen = "\n".join(text.splitlines()[:60])
    assert "## Install and run" in first_screen and first_screen.count("```") >= 2
    commands = doc_section("Install and run").split("```", 2)[1]
    assert commands in first_screen
    for command in ("pip install -r requirements.txt", "python test.py ", "--source demo", "--source clip.mp4",
                    "--source photos/", "--source rtsp://"):
        assert command in commands, command


def test_ci_runs_exactly_the_test_command_that_the_readme_gives():
    block = doc_section("Tests").split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.startswith("python")]
    assert shlex.split(ci[0])[-1] == "requirements-dev.txt" and "requirements-dev.txt" in block
    pytest_command = next(line for line in commands if "pytest" in line)
    assert [line for line in ci if "pytest" in line] == [pytest_command]


def test_the_per_class_picture_s_script_reads_the_readme_s_table():
    spec = importlib.util.spec_from_file_location("per_class", ROOT / "docs" / "per_class.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    columns, rows = module.first_table((ROOT / "README.md").read_text())
    recall = [name for name in rows if name.startswith("recall ")]
    assert len(columns) >= 2 and len(recall) == 5
    assert all(len(rows[name]) == len(columns) for name in recall)
    assert (ROOT / "docs" / "per_class.png").is_file()
