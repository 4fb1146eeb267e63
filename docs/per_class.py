"""Draw docs/per_class.png: recall per class on FER2013's test faces, each model of the README's first "How good is it" table.

    python docs/per_class.py

The figures are read from README.md's table, as benchmarks/compare_fer.py measured them, so that the picture is
redrawn from the README whenever the table changes; nothing is measured here.
"""
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]


def first_table(markdown, heading="## How good is it"):
    """(column names, {row name: [cells]}) of the first Markdown table after heading."""
    lines = markdown.split(heading, 1)[1].splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, body = rows[0], rows[2:]
    return header[1:], {row[0]: row[1:] for row in body}


def main(out=ROOT / "docs" / "per_class.png"):
    columns, rows = first_table((ROOT / "README.md").read_text())
    recall = {name.removeprefix("recall "): cells for name, cells in rows.items() if name.startswith("recall ")}
    if not recall:
        sys.exit("error: no 'recall <class>' rows in README.md's first How good is it table")
    classes = list(recall)
    figure, axes = plt.subplots(figsize=(8, 4.2), dpi=100)
    width = 0.8 / len(columns)
    for index, column in enumerate(columns):
        values = [float(re.sub(r"[^0-9.]", "", recall[name][index]) or "nan") for name in classes]
        positions = [position + (index - (len(columns) - 1) / 2) * width for position in range(len(classes))]
        axes.bar(positions, values, width, label=column)
    axes.set_xticks(range(len(classes)), classes)
    axes.set_ylabel("recall, %")
    axes.set_ylim(0, 100)
    axes.set_title("FER2013 PublicTest, five classes, FER+ majority labels: recall per class")
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
