"""This release's live path against an earlier release's on the same videos, frame by frame and per class.

    python benchmarks/release_compare.py                        # the last commit (HEAD) against the working tree
    python benchmarks/release_compare.py --base 767394c         # any commit, branch or tag as the earlier release
    python benchmarks/release_compare.py --base HEAD~3 --new HEAD~1
    python benchmarks/release_compare.py --video clip.mp4 --segments clip.csv   # a labelled clip of your own

Each release runs its own test.py (its code, its committed model, its defaults) as a user would:
`python test.py --source VIDEO --no-display --log LOG.jsonl`, so a change of framing, face check, smoothing or
model shows here whatever part of the path it touched. The videos:
- a clip of FER test faces drifting on a grey background, three at a time, made as labelled_video.py makes it
  (labels: FER+'s majority): each shown face is right or wrong in each frame;
- the real clips of ../shared/real/videos, which have no labels: how many faces each release shows, and in how
  many frames the two releases' labels of the largest face differ;
- with --video and --segments, a clip of your own and a CSV of `start_s,end_s,label` rows: in each labelled frame,
  the largest shown face's label is right or wrong, and a frame with no face shown counts wrong.
"""
import argparse
import csv
import io
import json
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from benchmarks.labelled_video import make_video, match, sample_faces, write_video
from emotion.constants import DEFAULT_MODEL_PATH
from emotion.model import read_model_class_names
from emotion.records import largest_face
from emotion.sources import VIDEO_SUFFIXES

WORKING_TREE = "working-tree"
DIFFERS = "largest face's label differs"


def add_release_arguments(parser):
    """--base, --new and --real-videos, as the benchmarks that compare two releases take them."""
    parser.add_argument("--base", default="HEAD", help="the earlier release: a git commit, branch or tag")
    parser.add_argument("--new", default=WORKING_TREE,
                        help=f"the release to check: a git ref, or {WORKING_TREE} for the checkout as it is")
    parser.add_argument("--real-videos", type=Path, default=repo_root / "../shared/real/videos",
                        help="folder of real clips ('none' to skip)")


def real_videos(folder):
    """The video files of folder (the suffixes test.py takes for video), sorted; none where folder is 'none' or no
    folder."""
    if str(folder).lower() == "none" or not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in VIDEO_SUFFIXES)


def release_tree(ref, folder):
    """The project as it was at git ref, written into folder; the working tree itself for WORKING_TREE."""
    if ref == WORKING_TREE:
        return repo_root
    archive = subprocess.run(["git", "-C", str(repo_root), "archive", "--format=tar", ref],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"error: git cannot read release {ref!r}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return Path(folder)


def run_release(tree, video, log):
    """Frame records of tree's test.py on video (its --log, JSON Lines), and the seconds the run took."""
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "test.py", "--source", str(video), "--no-display", "--log", str(log)],
                         cwd=tree, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"error: {tree}/test.py failed on {video}: {last}")
    with open(log) as file:
        return [json.loads(line) for line in file], seconds


def largest_label(record):
    """The label of the frame's largest shown face, or None where none is shown."""
    return largest_face(record)["label"] if record["faces"] else None


def score_truth(records, truth, labels, class_names):
    """{class: [right, shown, on screen]} and each frame's [right?] of the labelled FER clip: truth holds each
    frame's [(face index, box)], labels each face's class index; a face not shown is not right."""
    per_class = {name: [0, 0, 0] for name in class_names}
    per_frame = []
    for record, faces in zip(records, truth):
        shown = record["faces"]
        pairs = dict(match([face["box"] for face in shown], faces))
        frame_right = []
        for index, _ in faces:
            name = class_names[labels[index]]
            right = index in pairs and shown[pairs[index]]["label"] == name
            per_class[name][0] += right
            per_class[name][1] += index in pairs
            per_class[name][2] += 1
            frame_right.append(right)
        per_frame.append(frame_right)
    return per_class, per_frame


def read_segments(path, class_names):
    """[(start_s, end_s, label)] of a CSV with start_s,end_s,label rows; one error line for a bad file."""
    try:
        with open(path, newline="") as file:
            segments = [(float(row["start_s"]), float(row["end_s"]), row["label"].strip().lower())
                        for row in csv.DictReader(file)]
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise SystemExit(f"error: cannot read segments {path} (columns start_s,end_s,label): {error}") from None
    unknown = sorted({label for _, _, label in segments} - set(class_names))
    if unknown:
        raise SystemExit(f"error: {path} labels {', '.join(unknown)}, which the model does not know "
                         f"({', '.join(class_names)})")
    return segments


def score_segments(records, segments, class_names):
    """{class: [right, shown, labelled frames]} and each labelled frame's [right?]: a frame belongs to the segment
    its time falls in (start included, end not); its largest shown face's label is what counts."""
    per_class = {name: [0, 0, 0] for name in class_names}
    per_frame = []
    for record in records:
        label = next((label for start, end, label in segments if start <= record["time_s"] < end), None)
        if label is None:
            per_frame.append([])
            continue
        shown = largest_label(record)
        per_class[label][0] += shown == label
        per_class[label][1] += shown is not None
        per_class[label][2] += 1
        per_frame.append([shown == label])
    return per_class, per_frame


def frame_changes(base_frames, new_frames):
    """(faces the new release reads wrong that the earlier read right, and the other way round), frame by frame."""
    lost = sum(old and not new for base, newer in zip(base_frames, new_frames) for old, new in zip(base, newer))
    gained = sum(new and not old for base, newer in zip(base_frames, new_frames) for old, new in zip(base, newer))
    return lost, gained


def unlabelled_summary(base_records, new_records):
    """What the two releases show on a clip without labels: frames with a face and faces shown by each, and the
    frames where both show a face but label the largest one differently."""
    both = [(largest_label(old), largest_label(new)) for old, new in zip(base_records, new_records)]
    return {"frames": len(both),
            "frames with a face": [sum(old is not None for old, _ in both), sum(new is not None for _, new in both)],
            "faces shown": [sum(len(r["faces"]) for r in base_records), sum(len(r["faces"]) for r in new_records)],
            DIFFERS: sum(old is not None and new is not None and old != new for old, new in both),
            "labels": [dict(Counter(old for old, _ in both if old)), dict(Counter(new for _, new in both if new))]}


def accuracy_table(base, new, class_names, names):
    """Markdown: right/on screen per class for each release, and the points between them."""
    rows = [f"| | {names[0]} | {names[1]} | change |", "|---|---:|---:|---:|"]

    total = [[sum(counts[i] for counts in scores.values()) for i in range(3)] for scores in (base, new)]
    for label, old, newer in [("all", *total), *((name, base[name], new[name]) for name in class_names)]:
        if old[2]:  # a class the clip does not show has no row
            rows.append(f"| {label} ({old[2]}) | {old[0] / old[2]:.1%} | {newer[0] / newer[2]:.1%} | "
                        f"{(newer[0] / newer[2] - old[0] / old[2]) * 100:+.1f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_release_arguments(parser)
    parser.add_argument("--data-dir", type=Path, default=repo_root / "../shared/fer2013/test",
                        help="FER test faces as <class>/*.jpg, for the labelled clip")
    parser.add_argument("--votes", default=str(repo_root / "../shared/ferplus/test.csv"),
                        help="FER+ votes of --data-dir's faces, their labels in the clip; 'none': the folder labels")
    parser.add_argument("--faces-per-class", type=int, default=20, help="faces of each class in the labelled clip")
    parser.add_argument("--video", type=Path, help="a labelled clip of your own (with --segments)")
    parser.add_argument("--segments", type=Path, help="--video's labels: CSV rows start_s,end_s,label")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if (args.video is None) != (args.segments is None):
        parser.error("--video and --segments go together")

    class_names = read_model_class_names(DEFAULT_MODEL_PATH)
    names = [args.base, args.new]
    results = {"command": "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
               "releases": names, "labelled": {}, "unlabelled": {}}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        trees = [release_tree(ref, folder / f"release{i}") for i, ref in enumerate(names)]
        labelled = []
        if args.data_dir.is_dir():
            votes = None if args.votes.lower() == "none" else args.votes
            images, labels = sample_faces(args.data_dir, class_names, args.faces_per_class, seed=0, votes=votes)
            clip = folder / "fer_faces.mp4"
            truth = write_video(clip, make_video(images, per_frame=3, frames_per_face=8, seed=0))
            labelled.append((f"FER test faces ({'FER+ majority' if votes else 'FER2013 labels'})", clip,
                             lambda records, truth=truth, labels=labels: score_truth(records, truth, labels,
                                                                                      class_names)))
        else:
            print(f"no labelled FER clip: {args.data_dir} does not exist", file=sys.stderr)
        if args.video:
            segments = read_segments(args.segments, class_names)
            labelled.append((args.video.name, args.video,
                             lambda records: score_segments(records, segments, class_names)))
        for title, clip, score in labelled:
            runs = [run_release(tree, clip, folder / f"labelled{i}_{clip.stem}.jsonl") for i, tree in enumerate(trees)]
            (base, base_frames), (new, new_frames) = (score(records) for records, _ in runs)
            lost, gained = frame_changes(base_frames, new_frames)
            print(f"\n{title}: {clip.name}, {len(runs[0][0])} frames; right = the shown label of a face on screen "
                  f"(a face not shown counts wrong); {runs[0][1]:.0f} s and {runs[1][1]:.0f} s\n")
            print(accuracy_table(base, new, class_names, names))
            print(f"\nframe by frame: {lost} faces read right by {names[0]} and wrong by {names[1]}, "
                  f"{gained} the other way round")
            results["labelled"][title] = {"per_class": [base, new], "lost": lost, "gained": gained}
        videos = real_videos(args.real_videos)
        for video in videos:
            runs = [run_release(tree, video, folder / f"real{i}_{video.stem}.jsonl") for i, tree in enumerate(trees)]
            summary = unlabelled_summary(runs[0][0], runs[1][0])
            print(f"\n{video.name} (no labels), {summary['frames']} frames, {names[0]} | {names[1]}: frames with a "
                  f"face {summary['frames with a face'][0]} | {summary['frames with a face'][1]}, faces shown "
                  f"{summary['faces shown'][0]} | {summary['faces shown'][1]}; the largest face's label differs "
                  f"in {summary[DIFFERS]} frames\n"
                  f"  labels of the largest face: {summary['labels'][0]} | {summary['labels'][1]}")
            results["unlabelled"][video.name] = summary
    print(f"\ncommand: {results['command']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
