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
import json
import sys
import tempfile
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from benchmarks.common import (
    DIFFERS,
    add_release_arguments,
    benchmark_parser,
    command_line,
    frame_changes,
    make_video,
    read_segments,
    real_videos,
    release_tree,
    run_release,
    sample_faces,
    score_segments,
    score_truth,
    unlabelled_summary,
    write_video,
)
from emotion.constants import DEFAULT_MODEL_PATH
from emotion.model import read_model_class_names


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
    parser = benchmark_parser(__doc__, model=False)
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
    results = {"command": command_line(argv),
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
